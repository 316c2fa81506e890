"""The approval queue: writes the policy held back wait here for a person's decision.

Approving claims the request in one transaction (so two people cannot both run it), runs the
tool, then records the outcome in a second one. Expiry turns old pending requests into
`expired` so the queue does not fill with work nobody will do.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from copilot.errors import InputError, NotFound
from copilot.store import Store, Transaction, utcnow
from copilot.tools import Sandbox, ToolOutcome, run_tool

STATUSES = ("pending", "approved", "rejected", "expired")


def list_approvals(
    store: Store, status: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    if status and status not in STATUSES:
        raise InputError(f"Unknown approval status {status!r}; use one of {', '.join(STATUSES)}.")
    where = "WHERE a.status = ?" if status else ""
    return store.query(
        "SELECT a.*, r.task FROM approvals a LEFT JOIN runs r USING (run_id) "
        f"{where} ORDER BY a.created_at DESC LIMIT ?",
        [*([status] if status else []), limit],
    )


def decide(
    store: Store,
    sandbox: Sandbox,
    approval_id: str,
    *,
    approve: bool,
    user: str,
    note: str = "",
) -> dict[str, Any]:
    """Approve (and run the tool) or reject a pending request; returns the updated row."""
    row = _claim(store, approval_id, "approved" if approve else "rejected", user, note)
    outcome = _run_approved(store, sandbox, row, user) if approve else None
    updated = store.query("SELECT * FROM approvals WHERE approval_id = ?", [approval_id])[0]
    updated["tool_status"] = outcome.status if outcome else None
    updated["tool_error"] = outcome.error if outcome else None
    return updated


def _claim(store: Store, approval_id: str, status: str, user: str, note: str) -> dict[str, Any]:
    with store.transaction() as tx:
        found = tx.conn.execute(
            "SELECT approval_id, run_id, step, tool, args_json, status FROM approvals "
            "WHERE approval_id = ?",
            [approval_id],
        ).fetchone()
        if found is None:
            raise NotFound(
                f"No approval request has id {approval_id!r}; list them with "
                "`python -m copilot approvals` or open the Approvals page."
            )
        if found[5] != "pending":
            raise InputError(f"Approval {approval_id} is already {found[5]}; nothing to do.")
        _record(
            tx,
            approval_id,
            found[1],
            found[3],
            status=status,
            actor=user,
            note=note,
            reason=note or f"{user} {status} {found[3]}",
        )
        if status == "rejected":
            _settle_run(tx, found[1])
    return dict(
        zip(("approval_id", "run_id", "step", "tool", "args_json", "status"), found, strict=True)
    )


def _run_approved(store: Store, sandbox: Sandbox, row: dict[str, Any], user: str) -> ToolOutcome:
    outcome = run_tool(sandbox, row["tool"], json.loads(row["args_json"]))
    with store.transaction() as tx:
        tx.insert(
            "tool_calls",
            {
                "call_id": uuid.uuid4().hex,
                "run_id": row["run_id"],
                "step": row["step"],
                "tool": row["tool"],
                "action": "approved call",
                "args_json": row["args_json"],
                "status": outcome.status,
                "result_json": json.dumps(outcome.output) if outcome.output else None,
                "error": outcome.error,
                "approval_id": row["approval_id"],
                "latency_ms": outcome.latency_ms,
                "created_at": utcnow(),
            },
        )
        tx.audit(
            actor="executor",
            action=f"tool.{outcome.status}",
            run_id=row["run_id"],
            reason=outcome.error or f"ran {row['tool']} after approval by {user}",
            detail={"approval_id": row["approval_id"], "result": outcome.output},
        )
        _settle_run(tx, row["run_id"])
    return outcome


def _settle_run(tx: Transaction, run_id: str) -> None:
    """A run waiting for approvals completes once none of its requests is pending."""
    tx.execute(
        "UPDATE runs SET status = 'completed' WHERE run_id = ? AND status = "
        "'awaiting_approval' AND NOT EXISTS (SELECT 1 FROM approvals WHERE run_id = ? "
        "AND status = 'pending')",
        [run_id, run_id],
    )


def has_pending(tx: Transaction, run_id: str) -> bool:
    found = tx.conn.execute(
        "SELECT count(*) FROM approvals WHERE run_id = ? AND status = 'pending'", [run_id]
    ).fetchone()
    return bool(found and found[0])


def close_pending(
    tx: Transaction, where: str, params: list[Any], *, status: str, actor: str, note: str
) -> int:
    """Close the pending requests matching `where` (SQL over approvals) without running them."""
    rows = tx.conn.execute(
        f"SELECT approval_id, run_id, tool FROM approvals WHERE status = 'pending' AND {where}",
        params,
    ).fetchall()
    for approval_id, run_id, tool in rows:
        _record(
            tx,
            approval_id,
            run_id,
            tool,
            status=status,
            actor=actor,
            note=note,
            reason=f"{tool}: {note}",
        )
        _settle_run(tx, run_id)
    return len(rows)


def _record(
    tx: Transaction,
    approval_id: str,
    run_id: str,
    tool: str,
    *,
    status: str,
    actor: str,
    note: str,
    reason: str,
) -> None:
    """A decision on one request: the row and its audit event, in the caller's transaction."""
    tx.execute(
        "UPDATE approvals SET status = ?, decided_by = ?, decision_note = ?, decided_at = ? "
        "WHERE approval_id = ?",
        [status, actor, note, utcnow(), approval_id],
    )
    tx.audit(
        actor=actor,
        action=f"approval.{status}",
        run_id=run_id,
        reason=reason,
        detail={"approval_id": approval_id, "tool": tool},
    )


EXPIRE_AFTER = timedelta(hours=24)


def expire_stale(tx: Transaction, older_than: timedelta = EXPIRE_AFTER) -> int:
    """Requests nobody decided in time expire, so the queue holds only live work."""
    return close_pending(
        tx,
        "created_at < ?",
        [utcnow() - older_than],
        status="expired",
        actor="runtime",
        note=f"expired: pending for more than {older_than}",
    )
