"""Wiring: the one place that builds the store, retriever, tools, policy and run engine from
Settings, for every entry point (app, CLI, sidecar)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from copilot import policy
from copilot.config import Settings
from copilot.embeddings import get_embedder
from copilot.guard import Redactor
from copilot.index import Encoder
from copilot.llm import Models, get_provider
from copilot.retriever import Retriever
from copilot.run.context import PolicyDecision, RunContext
from copilot.run.engine import Engine, sweep
from copilot.run.state import RunState
from copilot.store import Store
from copilot.tools import TOOLS, Sandbox, ToolOutcome, run_tool


def open_store(settings: Settings) -> Store:
    return Store(
        settings.db_path,
        lock_timeout_s=settings.db_lock_timeout_s,
        redact=Redactor(settings.secret_values()),
    )


def make_retriever(settings: Settings, encoder: Callable[[], Encoder] = get_embedder) -> Retriever:
    return Retriever(settings.corpus, settings.index_dir, encoder)


class SandboxTools:
    """The offline tools as the engine's ToolRunner."""

    def __init__(self, settings: Settings) -> None:
        self.sandbox = Sandbox(settings.home)

    def writes(self, name: str) -> bool | None:
        spec = TOOLS.get(name)
        return spec.writes if spec else None

    def target(self, name: str, args: dict[str, Any]) -> str:
        return "sandbox"

    def mode(self, name: str) -> str:
        return "sandbox"

    def call(self, name: str, args: dict[str, Any], *, key: str | None = None) -> ToolOutcome:
        return run_tool(self.sandbox, name, args)

    def lookup(self, name: str, args: dict[str, Any], key: str) -> dict[str, Any] | None:
        return None


class RulePolicy:
    """The built-in rules as the engine's policy port."""

    def decide(
        self, user: str, tool: str, *, writes: bool | None, target: str, tainted: bool
    ) -> PolicyDecision:
        d = policy.decide(tool, injection_suspected=tainted)
        return PolicyDecision(d.allowed, d.needs_approval, d.rule, d.reason)


@dataclass
class Services:
    settings: Settings
    store: Store = field(init=False)
    retriever: Retriever = field(init=False)

    def __post_init__(self) -> None:
        self.store = open_store(self.settings)
        self.retriever = make_retriever(self.settings)

    def engine(self, provider: str | None = None) -> Engine:
        settings = self.settings.with_provider(provider) if provider else self.settings
        return Engine(
            RunContext(
                settings=settings,
                store=self.store,
                retriever=self.retriever,
                models=Models(get_provider(settings)),
                tools=SandboxTools(settings),
                policy=RulePolicy(),
            )
        )

    def run(
        self,
        task: str,
        *,
        user: str | None = None,
        provider: str | None = None,
        **kwargs: Any,
    ) -> RunState:
        """Start a run as `user` (default COPILOT_USER) and advance it as far as it goes."""
        return self.engine(provider).start(task, user=user or self.settings.user, **kwargs)

    def sweep(self) -> list[str]:
        """Called once when an entry point starts: runs whose process died become
        `interrupted`, requests past their expiry expire. Returns the interrupted run ids."""
        with self.store.transaction() as tx:
            return sweep(tx)
