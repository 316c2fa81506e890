"""What a run needs from outside, passed in by `copilot.service` (the one wiring place)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from copilot.config import Settings
from copilot.llm import Models
from copilot.llm.pricing import PriceTable
from copilot.retriever import Retriever
from copilot.store import Store, utcnow


class ToolOutcomeLike(Protocol):
    @property
    def status(self) -> str: ...  # "done" | "error"

    @property
    def output(self) -> dict[str, Any] | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def latency_ms(self) -> float: ...


class PreparedLike(Protocol):
    @property
    def args(self) -> dict[str, Any] | None: ...  # None: the change could not be made

    @property
    def preview(self) -> dict[str, str]: ...  # {"kind": "diff" | "fields" | "none", "text"}

    @property
    def note(self) -> str: ...


class ToolRunner(Protocol):
    """The tool registry as the engine sees it (copilot.tools.Toolbox)."""

    def writes(self, name: str) -> bool | None:
        """True for writes, False for reads, None for a tool nobody registered."""
        ...

    def target(self, name: str, args: dict[str, Any]) -> str: ...

    def mode(self, name: str) -> str: ...

    def prepare(self, name: str, args: dict[str, Any], *, task: str) -> PreparedLike:
        """Canonical arguments (InputError when invalid) and, for file changes, the edit
        made against the file as it is now, with its diff."""
        ...

    def validate(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Canonical arguments, or InputError naming what is wrong."""
        ...

    def planner_doc(self) -> str: ...

    def call(
        self, name: str, args: dict[str, Any], *, key: str | None = None
    ) -> ToolOutcomeLike: ...

    def lookup(self, name: str, args: dict[str, Any], key: str) -> dict[str, Any] | None:
        """What an earlier attempt with this idempotency key created, if anything."""
        ...


@dataclass(frozen=True)
class PolicyDecision:
    """What the policy said about one tool call, with the rule that decided and why.
    `allowed`: runs now; `needs_approval`: runs once a person approves; neither: denied."""

    allowed: bool
    needs_approval: bool
    rule: str
    reason: str
    policy_hash: str = ""


class PolicyPort(Protocol):
    def decide(
        self, user: str, role: str, tool: str, *, writes: bool | None, target: str, tainted: bool
    ) -> PolicyDecision: ...

    def can_approve(
        self,
        approver: str,
        role: str,
        *,
        approval_id: str,
        requested_by: str,
        tool: str,
        target: str,
    ) -> PolicyDecision: ...


class RunHooks:
    """Progress callbacks; the default does nothing. The chat page draws live status here.

    Steps of one wave run in worker threads, so implementations must be thread-safe (the
    chat page only puts events on a queue).
    """

    streams = False
    """True when the caller wants answer text piece by piece through on_text."""

    def on_step(self, agent: str, title: str, status: str) -> None:
        pass

    def on_text(self, position: int, delta: str) -> None:
        pass


@dataclass
class RunContext:
    settings: Settings
    store: Store
    retriever: Retriever
    models: Models
    tools: ToolRunner
    policy: PolicyPort
    prices: PriceTable = field(default_factory=PriceTable.load)
    clock: Callable[[], datetime] = utcnow
    workers: int = 4
    approval_ttl: timedelta = timedelta(hours=24)
    role_of: Callable[[str], str] = lambda user: "admin"
    """The role a user acts in (the identity module's answer)."""
    guard: bool = True
    """Scan the task, runbooks and tool output for injection (taint). Off only in the
    evaluation's baseline configuration, which measures what the guard is worth."""
    review: bool = True
    """Review each answer (citations, line checks, injection). Off only in that baseline."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards the shared state while the steps of one wave run in threads."""
