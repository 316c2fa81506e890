"""Writes a run to the store: one transaction per step boundary.

A `Batch` collects everything one boundary writes (rows, audit events); `Journal.save`
writes it together with the run's state, so after a crash the store holds the state as of
the last finished boundary and nothing half of one. The store redacts every string.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from copilot.errors import NotFound
from copilot.llm.base import LLMResponse
from copilot.run.lease import me
from copilot.run.state import RunState, RunStatus, StepState
from copilot.store import Store, Transaction, utcnow

FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED)
STEP_KEY = ("run_id", "position")
"""The steps table's key: a step written again replaces its row."""


@dataclass
class Batch:
    """The rows and audit events of one step boundary."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audits: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepState] = field(default_factory=list)  # plan steps whose row changed
    finished_calls: list[tuple[str, Any]] = field(default_factory=list)  # (key, outcome)
    review: dict[str, Any] | None = None  # the reviewer's verdict, reasons and flag count
    cost: float = 0.0
    fallbacks: int = 0

    def audit(self, actor: str, action: str, reason: str, **detail: Any) -> None:
        self.audits.append({"actor": actor, "action": action, "reason": reason, "detail": detail})

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def merge(self, other: Batch) -> None:
        for table, rows in other.rows.items():
            self.rows.setdefault(table, []).extend(rows)
        self.audits += other.audits
        self.steps += other.steps
        self.finished_calls += other.finished_calls
        self.cost += other.cost
        self.fallbacks += other.fallbacks
        self.review = other.review or self.review


class Journal:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, state: RunState, batch: Batch) -> None:
        """The run's first boundary: its row, its plan, and what retrieving and planning wrote."""
        with self.store.transaction() as tx:
            self.create_in(tx, state)
            self._write(tx, state, batch)

    @staticmethod
    def create_in(tx: Transaction, state: RunState) -> None:
        tx.insert(
            "runs",
            {
                "run_id": state.run_id,
                "session_id": state.session_id,
                "user_name": state.user,
                "task": state.task,
                "provider": state.provider,
                "model": state.model,
                "status": state.status,
                "created_at": utcnow(),
            },
        )
        tx.audit(
            actor=state.user,
            action="run.started",
            run_id=state.run_id,
            reason="analyst submitted a task",
            detail={"task": state.task[:500]},
        )

    def save(self, state: RunState, batch: Batch) -> None:
        with self.store.transaction() as tx:
            self._write(tx, state, batch)

    def _write(self, tx: Transaction, state: RunState, batch: Batch) -> None:
        state.cost += batch.cost
        state.fallbacks += batch.fallbacks
        write_state(tx, state, owned=state.status == RunStatus.RUNNING)
        tx.insert_many("steps", [step_row(state.run_id, s) for s in batch.steps], upsert=STEP_KEY)
        for table, rows in batch.rows.items():
            tx.insert_many(table, rows)
        for key, outcome in batch.finished_calls:
            finish_call_row(tx, key, outcome)
        if batch.review:
            tx.insert_many(
                "reviews",
                [
                    {
                        "run_id": state.run_id,
                        "verdict": batch.review["verdict"],
                        "reasons_json": json.dumps(batch.review["reasons"]),
                        "injection_flags": batch.review["flags"],
                        "created_at": utcnow(),
                    }
                ],
                upsert=("run_id",),
            )
        if batch.audits:
            tx.audit_many([a | {"run_id": state.run_id} for a in batch.audits])
        if state.status in (*FINISHED, RunStatus.AWAITING_APPROVAL):
            tx.audit(
                actor="runtime",
                action="run.finished" if state.status in FINISHED else "run.paused",
                run_id=state.run_id,
                reason=f"run is {state.status}",
                detail={"verdict": state.verdict, "cost_usd": round(state.cost, 6)},
            )

    def load(self, run_id: str) -> RunState:
        return load_state(self.store, run_id)


def write_state(tx: Transaction, state: RunState, *, owned: bool) -> None:
    """The runs row follows the state; `owned` marks this process as the one advancing it."""
    now = utcnow()
    owner = me() if owned else None
    tx.execute(
        "UPDATE runs SET status = ?, state_json = ?, answer = ?, verdict = ?, cost_usd = ?, "
        "plan_json = ?, error = ?, owner_pid = ?, owner_host = ?, owner_token = ?, "
        "heartbeat_at = ?, updated_at = ?, finished_at = ? WHERE run_id = ?",
        [
            state.status,
            state.to_json(),
            state.answer or None,
            state.verdict or None,
            round(state.cost, 6),
            json.dumps([s.__dict__ for s in state.steps], default=str),
            state.error or None,
            owner.pid if owner else None,
            owner.host if owner else None,
            owner.token if owner else None,
            now,
            now,
            now if state.status in FINISHED else None,
            state.run_id,
        ],
    )


def finish_call_row(tx: Transaction, key: str, outcome: Any) -> None:
    """Complete the `started` row of a keyed call with what the call returned."""
    tx.execute(
        "UPDATE tool_calls SET status = ?, result_json = ?, error = ?, latency_ms = ? "
        "WHERE idempotency_key = ? AND status = 'started'",
        [
            outcome.status,
            json.dumps(outcome.output, default=str) if outcome.output is not None else None,
            outcome.error,
            outcome.latency_ms,
            key,
        ],
    )


def read_state(tx: Transaction, run_id: str) -> RunState:
    # Locked to commit: two replicas deciding requests of one run take turns on its state.
    found = tx.one("SELECT state_json FROM runs WHERE run_id = ?", [run_id], for_update=True)
    return _parse(run_id, (found["state_json"],) if found else None)


def load_state(store: Store, run_id: str) -> RunState:
    found = store.query("SELECT state_json FROM runs WHERE run_id = ?", [run_id])
    return _parse(run_id, (found[0]["state_json"],) if found else None)


def _parse(run_id: str, found: tuple[Any, ...] | None) -> RunState:
    if found is None:
        raise NotFound(f"No run has id {run_id!r}; list runs with `python -m copilot runs`.")
    if not found[0]:
        raise NotFound(
            f"Run {run_id} was recorded before runs could be resumed; it has no saved state."
        )
    return RunState.from_json(found[0])


def step_row(run_id: str, step: StepState) -> dict[str, Any]:
    """A plan step as its `steps` row (position = the plan position, as everywhere)."""
    now = utcnow()
    output = {
        k: getattr(step, k) for k in ("action", "tool", "args", "citations", "answer", "detail")
    } | {"result": step.result, "approval_id": step.approval_id}
    return {
        "run_id": run_id,
        "position": step.position,
        "agent": "executor",
        "title": step.title,
        "status": step.status,
        "output_json": json.dumps(output, default=str),
        "started_at": now,
        "finished_at": now,
    }


def upsert_step(tx: Transaction, run_id: str, step: StepState) -> None:
    tx.insert_many("steps", [step_row(run_id, step)], upsert=STEP_KEY)


def usage_row(
    response: LLMResponse | None,
    *,
    run_id: str,
    user: str,
    purpose: str,
    cost: float | None,
    status: str = "ok",
    provider: str = "",
    model: str = "",
    error_class: str | None = None,
    attempts: int = 1,
    latency_ms: float = 0.0,
    fallback: bool = False,
) -> dict[str, Any]:
    return {
        "call_id": uuid.uuid4().hex,
        "run_id": run_id,
        "user_name": user,
        "purpose": purpose,
        "provider": response.provider if response else provider,
        "model": response.model if response else model,
        "prompt_tokens": response.prompt_tokens if response else 0,
        "completion_tokens": response.completion_tokens if response else 0,
        "latency_ms": response.latency_ms if response else latency_ms,
        "cost_usd": cost,
        "status": status,
        "error_class": error_class,
        "attempts": response.attempts if response else attempts,
        "fallback": fallback,
        "created_at": utcnow(),
    }
