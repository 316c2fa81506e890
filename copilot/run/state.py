"""The durable state of one run: everything needed to continue it in another process.

It serialises to JSON (`runs.state_json`) at every step boundary. Plan steps are numbered
1..N, and that position is the step's id everywhere: steps, approvals and tool calls.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from copilot.llm.base import Passage


class RunStatus(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class StepStatus(StrEnum):
    PLANNED = "planned"
    DONE = "done"
    ERROR = "error"
    DENIED = "denied"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"  # decided; the call is being made (or was cut off while made)
    REJECTED = "rejected"
    EXPIRED = "expired"
    SKIPPED = "skipped"  # the action could not be prepared (no such file or field)


@dataclass
class StepState:
    position: int
    title: str
    action: str  # "answer" | "tool"
    citations: list[str] = field(default_factory=list)
    tool: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    status: str = StepStatus.PLANNED
    answer: str = ""
    detail: str = ""
    approval_id: str | None = None
    key: str | None = None  # idempotency key of the external write
    result: dict[str, Any] | None = None
    decided_by: str | None = None
    note: str = ""
    writes: bool = False
    target: str = ""
    mode: str = ""  # live | sandbox, for tool steps
    preview: dict[str, str] | None = None  # the diff or fields an approver looks at


@dataclass
class RunState:
    run_id: str
    task: str
    user: str
    role: str = "requester"
    session_id: str = ""
    provider: str = ""
    model: str = ""
    status: str = RunStatus.RUNNING
    query: str = ""
    # The conversation's previous turn (task and answer) when this task follows up on it:
    # the answer says what is new instead of repeating it. Empty for a new subject.
    prior: str = ""
    covered: bool = True  # False: no runbook covers the task (relevance below the threshold)
    relevance: float = 0.0
    uncovered_why: str = ""  # e.g. "no runbook mentions COBOL (relevance 0.57)"
    passages: dict[str, Passage] = field(default_factory=dict)
    step_retrieved: dict[int, list[str]] = field(default_factory=dict)
    steps: list[StepState] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # injection signals in the task itself
    taint: list[str] = field(default_factory=list)  # flagged runbook or tool content in view
    cost: float = 0.0
    fallbacks: int = 0
    answer: str = ""
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    error: str = ""
    reviews: int = 0
    # The reviewer's per-line results (copilot.run.grounding.LineCheck as dicts), for the chat.
    line_checks: list[dict[str, Any]] = field(default_factory=list)

    def step(self, position: int) -> StepState:
        return self.steps[position - 1]

    @property
    def tainted(self) -> bool:
        """Anything the guard flagged shaped this run: its writes always need a person."""
        return bool(self.flags or self.taint)

    def note_passages(self, passages: list[Passage], *, guard: bool = True) -> None:
        """Passages join the run; a flagged one taints it (it may be cited, never followed)
        unless the guard is off (the evaluation's baseline)."""
        for p in passages:
            if guard and p.chunk_id not in self.passages and p.flagged:
                self.taint.append(f"runbook {p.chunk_id}: {'; '.join(p.guard_reasons[:2])}")
            self.passages.setdefault(p.chunk_id, p)

    def pending(self) -> list[StepState]:
        return [s for s in self.steps if s.status == StepStatus.AWAITING_APPROVAL]

    def to_json(self) -> str:
        data = asdict(self)
        data["step_retrieved"] = {str(k): v for k, v in self.step_retrieved.items()}
        return json.dumps(data, default=str)

    @classmethod
    def from_json(cls, text: str) -> RunState:
        data = json.loads(text)
        data["passages"] = {
            k: Passage(**(v | {"guard_reasons": tuple(v.get("guard_reasons", ()))}))
            for k, v in data["passages"].items()
        }
        data["steps"] = [StepState(**s) for s in data["steps"]]
        data["step_retrieved"] = {int(k): v for k, v in data["step_retrieved"].items()}
        return cls(**data)
