"""Writes one run's steps to the governance store: one short transaction per step.

The store's transactions redact every string on the way in.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from copilot import approvals
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
    def __init__(self, store: Store, run_id: str, user: str) -> None:
        self.store = store
        self.run_id = run_id
        self.user = user
        self.position = 0

    def start(self, task: str, session_id: str, provider: str, model: str) -> None:
        with self.store.transaction() as tx:
            sweep_abandoned(tx)
            tx.insert(
                "runs",
                {
                    "run_id": self.run_id,
                    "session_id": session_id,
                    "user_name": self.user,
                    "task": task,
                    "provider": provider,
                    "model": model,
                    "status": "running",
                    "created_at": utcnow(),
                },
            )
            tx.audit(
                actor=self.user,
                action="run.started",
                run_id=self.run_id,
                reason="analyst submitted a task",
                detail={"task": task[:500]},
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
                    "title": step.title,
                    "status": step.status,
                    "output_json": json.dumps(step.output, default=str),
                    "started_at": now,
                    "finished_at": now,
                },
            )
            for table, rows in step.rows.items():
                tx.insert_many(table, [r for r in rows])
            for a in step.audits:
                tx.audit(
                    run_id=self.run_id,
                    actor=a["actor"],
                    action=a["action"],
                    reason=a["reason"],
                    detail=a["detail"],
                )

    def finish(self, fields: dict[str, Any], review: dict[str, Any] | None) -> str:
        """Close the run; returns its final status, decided inside this transaction.

        Someone may approve or reject while the run is still going, so whether it still
        waits for approval is read from the approvals table here, not from memory. A failed
        run, or one the reviewer failed, must not leave writes anyone could still approve.
        """
        with self.store.transaction() as tx:
            failed = fields.get("status") == "failed"
            if failed or fields.get("verdict") == "fail":
                why = "the run failed" if failed else "the reviewer failed the run"
                approvals.close_pending(
                    tx,
                    "run_id = ?",
                    [self.run_id],
                    status="rejected",
                    actor="reviewer",
                    note=f"rejected automatically: {why}",
                )
            if not failed:
                waiting = approvals.has_pending(tx, self.run_id)
                fields["status"] = "awaiting_approval" if waiting else "completed"
            sets = ", ".join(f"{k} = ?" for k in fields)
            tx.execute(
                f"UPDATE runs SET {sets}, finished_at = ? WHERE run_id = ?",
                [*list(fields.values()), utcnow(), self.run_id],
            )
            if review:
                tx.insert("reviews", review)
            tx.audit(
                actor="runtime",
                action="run.finished",
                run_id=self.run_id,
                reason=f"run ended with status {fields['status']}",
                detail={k: v for k, v in fields.items() if k not in ("answer", "plan_json")},
            )
        return str(fields["status"])


ABANDONED_AFTER = timedelta(hours=1)
"""A run still `running` after this was cut off (process killed, DB locked too long)."""


def sweep_abandoned(tx: Transaction) -> None:
    """Mark runs that can no longer finish as failed, so no run stays `running` forever, and
    expire approval requests nobody decided in time."""
    approvals.expire_stale(tx)
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
