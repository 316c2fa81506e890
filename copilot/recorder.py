"""Writes one run's steps to the governance store: one short transaction per step.

Every string is redacted on the way in, so secrets never reach the DuckDB file.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from copilot.guard import Redactor
from copilot.llm.base import LLMResponse
from copilot.store import Store, Transaction, utcnow


@dataclass
class StepRecord:
    """Everything a single step writes, flushed together."""

    agent: str
    title: str
    status: str = "done"
    output: dict[str, Any] = field(default_factory=dict)
    audits: list[dict[str, Any]] = field(default_factory=list)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def audit(self, actor: str, action: str, reason: str, **detail: Any) -> None:
        self.audits.append({"actor": actor, "action": action, "reason": reason, "detail": detail})

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)


class RunRecorder:
    def __init__(self, store: Store, run_id: str, user: str, redact: Redactor) -> None:
        self.store = store
        self.run_id = run_id
        self.user = user
        self.redact = redact
        self.position = 0

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def start(self, task: str, session_id: str, provider: str, model: str) -> None:
        with self.store.transaction() as tx:
            sweep_abandoned(tx)
            tx.insert(
                "runs",
                self._clean(
                    {
                        "run_id": self.run_id,
                        "session_id": session_id,
                        "user_name": self.user,
                        "task": task,
                        "provider": provider,
                        "model": model,
                        "status": "running",
                        "created_at": utcnow(),
                    }
                ),
            )
            tx.audit(
                actor=self.user,
                action="run.started",
                run_id=self.run_id,
                reason="analyst submitted a task",
                detail=self._clean({"task": task[:500]}),
            )

    def flush(self, step: StepRecord) -> None:
        self.position += 1
        now = utcnow()
        with self.store.transaction() as tx:
            tx.insert(
                "steps",
                {
                    "run_id": self.run_id,
                    "position": self.position,
                    "agent": step.agent,
                    "title": self._clean(step.title),
                    "status": step.status,
                    "output_json": json.dumps(self._clean(step.output), default=str),
                    "started_at": now,
                    "finished_at": now,
                },
            )
            for table, rows in step.rows.items():
                tx.insert_many(table, [self._clean(r) for r in rows])
            for a in step.audits:
                tx.audit(
                    run_id=self.run_id,
                    actor=a["actor"],
                    action=a["action"],
                    reason=self._clean(a["reason"]),
                    detail=self._clean(a["detail"]),
                )

    def finish(self, fields: dict[str, Any], review: dict[str, Any] | None) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.store.transaction() as tx:
            tx.execute(
                f"UPDATE runs SET {sets}, finished_at = ? WHERE run_id = ?",
                [*self._clean(list(fields.values())), utcnow(), self.run_id],
            )
            if review:
                tx.insert("reviews", self._clean(review))
            tx.audit(
                actor="runtime",
                action="run.finished",
                run_id=self.run_id,
                reason=f"run ended with status {fields.get('status')}",
                detail=self._clean({k: v for k, v in fields.items() if k != "answer"}),
            )


ABANDONED_AFTER = timedelta(hours=1)
"""A run still `running` after this was cut off (process killed, DB locked too long)."""


def sweep_abandoned(tx: Transaction) -> None:
    """Mark runs that can no longer finish as failed, so no run stays `running` forever."""
    cutoff = utcnow() - ABANDONED_AFTER
    stale = tx.conn.execute(
        "SELECT run_id FROM runs WHERE status = 'running' AND created_at < ?", [cutoff]
    ).fetchall()
    for (run_id,) in stale:
        tx.execute(
            "UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
            ["abandoned: the run never finished (process stopped or DB locked)", utcnow(), run_id],
        )
        tx.audit(
            actor="runtime",
            action="run.abandoned",
            run_id=run_id,
            reason=f"still running after {ABANDONED_AFTER}; marked failed",
        )


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
