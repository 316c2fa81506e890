"""The approval lifecycle, with one owner: this module moves a request through

    pending -> approved | rejected | expired

and every check lives in the transition that makes it (unknown id, already decided, expired
at claim time, arguments changed since the request, a rejection without a reason). The
transition also moves the run: the claimed step changes in the run's saved state, an
approved call is recorded as `started` with its idempotency key in the same transaction as
the claim, and whoever leaves the run with nothing pending and nothing in flight takes it
over and advances it (exactly one process does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from copilot.errors import CopilotError, InputError, NotFound, PolicyDenied
from copilot.run.context import PolicyPort
from copilot.run.executor import args_digest, call_row
from copilot.run.journal import finish_call_row, read_state, upsert_step, write_state
from copilot.run.state import RunState, RunStatus, StepState, StepStatus
from copilot.run.view import compose_answer
from copilot.store import Store, Transaction, utcnow

STATUSES = ("pending", "approved", "rejected", "expired")


@dataclass
class Claim:
    approval: dict[str, Any]
    state: RunState
    takes_over: bool  # this process now owns the run and must advance it
    refused: CopilotError | None = None  # why nothing ran; raised once the audit is committed

    @property
    def step(self) -> StepState:
        return self.state.step(int(self.approval["step"]))


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


@dataclass(frozen=True)
class Decider:
    """Who decides, and the policy that says whether they may."""

    user: str
    role: str
    policy: PolicyPort


def claim(
    store: Store,
    approval_id: str,
    *,
    approve: bool,
    by: Decider,
    note: str,
    now: datetime,
    edited: dict[str, Any] | None = None,
) -> Claim:
    """Decide a pending request in one transaction (exactly once across processes).

    Checked here, at claim time: not expired; the arguments unchanged (digest); the decider
    allowed by the policy (role and four eyes; a requester may withdraw their own request);
    the current policy still not denying the action. A refusal executes nothing and is
    audited; the caller raises it once the audit is committed. An approver may approve
    `edited` arguments instead: the request takes them and a new digest, both versions are
    audited, and four eyes still hold."""
    note, user = note.strip(), by.user
    if not approve and not note:
        raise InputError("A rejection needs a reason (--reason TEXT); it goes back to the run.")
    with store.transaction() as tx:
        row = _pending(tx, approval_id)
        state = read_state(tx, row["run_id"])
        step = state.step(int(row["step"]))
        if row["expires_at"] is not None and row["expires_at"] <= now:
            _close(tx, state, step, row, "expired", "runtime", "expired before anyone decided")
            expired = f"{row['expires_at']:%Y-%m-%d %H:%M} UTC"
            why = f"Approval {approval_id} expired at {expired}; nothing ran. Run the task again."
            return Claim(row, state, False, refused=InputError(why))
        _check_digest(row)
        if refused := _policy_refusal(row, state, by, approve):
            tx.audit(
                actor=user,
                action="approval.refused",
                run_id=row["run_id"],
                reason=refused,
                detail={"approval_id": approval_id, "tool": row["tool"], "approve": approve},
            )
            return Claim(row, state, False, refused=PolicyDenied(refused))
        if approve and edited is not None and edited != step.args:
            _edit(tx, row, step, edited, user)
        status = "approved" if approve else "rejected"
        _record(tx, row, status=status, actor=user, note=note)
        step.decided_by, step.note = user, note
        if approve:
            step.status, step.key = StepStatus.APPROVED, approval_id
            tx.insert("tool_calls", call_row(state, step, "started"))
        else:
            step.status = StepStatus.REJECTED
        takes_over = _settle(tx, state, step)
    return Claim(row, state, takes_over)


def record_result(store: Store, claim: Claim, outcome: Any, flags: list[str]) -> Claim:
    """The approved call's outcome into its step; the run may now be this process's to go on."""
    with store.transaction() as tx:
        state = read_state(tx, claim.state.run_id)
        step = state.step(int(claim.approval["step"]))
        apply_outcome(step, outcome)
        state.taint += flags
        finish_call_row(tx, str(step.key), outcome)
        tx.audit(
            actor="executor",
            action=f"tool.{outcome.status}",
            run_id=state.run_id,
            reason=outcome.error or f"ran {step.tool} after approval by {step.decided_by}",
            detail={"approval_id": step.approval_id, "key": step.key, "result": outcome.output},
        )
        takes_over = _settle(tx, state, step)
    return Claim(claim.approval, state, takes_over)


def _policy_refusal(row: dict[str, Any], state: RunState, by: Decider, approve: bool) -> str:
    """Why `by` may not decide this request now, or "" when they may."""
    withdrawing = not approve and by.user == row["requested_by"]
    if not withdrawing:
        right = by.policy.can_approve(
            by.user,
            by.role,
            approval_id=row["approval_id"],
            requested_by=row["requested_by"],
            tool=row["tool"],
            target=row["target"] or "",
        )
        if not right.allowed:
            return f"{by.user} ({by.role}) may not decide {row['approval_id']}: {right.reason}"
    if approve:
        now = by.policy.decide(
            state.user,
            state.role,
            row["tool"],
            writes=True,
            target=row["target"] or "",
            tainted=state.tainted,
        )
        if not (now.allowed or now.needs_approval):
            return f"the current policy denies {row['tool']} now: {now.reason}; nothing ran"
    return ""


def apply_outcome(step: StepState, outcome: Any) -> None:
    step.status = StepStatus.DONE if outcome.status == "done" else StepStatus.ERROR
    step.result = outcome.output
    if outcome.error:
        step.detail = outcome.error


def _pending(tx: Transaction, approval_id: str) -> dict[str, Any]:
    # Locked to commit: a second claim (another thread, process or replica) waits here and
    # then reads the decided row, so exactly one claim goes through.
    row = tx.one("SELECT * FROM approvals WHERE approval_id = ?", [approval_id], for_update=True)
    if row is None:
        raise NotFound(
            f"No approval request has id {approval_id!r}; list them with "
            "`python -m copilot approvals` or open the Approvals page."
        )
    if row["status"] != "pending":
        raise InputError(f"Approval {approval_id} is already {row['status']}; nothing to do.")
    return row


def _check_digest(row: dict[str, Any]) -> None:
    if not row.get("args_digest"):
        return  # requested before digests existed
    digest = args_digest(row["tool"], json.loads(row["args_json"]), row["target"] or "")
    if digest != row["args_digest"]:
        raise InputError(
            f"Approval {row['approval_id']} no longer matches what was requested (its arguments "
            "changed in the store); nothing ran. Reject it and run the task again."
        )


def _edit(
    tx: Transaction, row: dict[str, Any], step: StepState, edited: dict[str, Any], user: str
) -> None:
    before = args_digest(row["tool"], step.args, row["target"] or "")
    after = args_digest(row["tool"], edited, row["target"] or "")
    tx.execute(
        "UPDATE approvals SET args_json = ?, args_digest = ? WHERE approval_id = ?",
        [json.dumps(edited, sort_keys=True), after, row["approval_id"]],
    )
    tx.audit(
        actor=user,
        action="approval.edited",
        run_id=row["run_id"],
        reason=f"{user} approved edited arguments for {row['tool']}",
        detail={
            "approval_id": row["approval_id"],
            "before": step.args,
            "after": edited,
            "digest_before": before,
            "digest_after": after,
        },
    )
    step.args = edited


def _settle(tx: Transaction, state: RunState, step: StepState) -> bool:
    """Write the step and the run; True when nothing is pending or in flight any more and
    this transaction therefore hands the run to the caller to advance."""
    busy = any(s.status in (StepStatus.AWAITING_APPROVAL, StepStatus.APPROVED) for s in state.steps)
    takes_over = not busy and state.status == RunStatus.AWAITING_APPROVAL
    if takes_over:
        state.status = RunStatus.RUNNING
        tx.audit(
            actor="runtime",
            action="run.continued",
            run_id=state.run_id,
            reason="every request of the run is decided; it goes on in the deciding process",
        )
    state.answer = compose_answer(state.steps)
    upsert_step(tx, state.run_id, step)
    write_state(tx, state, owned=takes_over)
    return takes_over


def _record(tx: Transaction, row: dict[str, Any], *, status: str, actor: str, note: str) -> None:
    """A decision on one request: the row and its audit event, in the caller's transaction."""
    tx.execute(
        "UPDATE approvals SET status = ?, decided_by = ?, decision_note = ?, decided_at = ? "
        "WHERE approval_id = ?",
        [status, actor, note, utcnow(), row["approval_id"]],
    )
    tx.audit(
        actor=actor,
        action=f"approval.{status}",
        run_id=row["run_id"],
        reason=note or f"{actor} {status} {row['tool']}",
        detail={"approval_id": row["approval_id"], "tool": row["tool"], "target": row["target"]},
    )


def _close(
    tx: Transaction,
    state: RunState,
    step: StepState,
    row: dict[str, Any],
    status: str,
    actor: str,
    note: str,
) -> None:
    """Close a request without running it; a run left with nothing pending completes."""
    _record(tx, row, status=status, actor=actor, note=note)
    step.status, step.decided_by, step.note = StepStatus(status), actor, note
    if not state.pending() and state.status == RunStatus.AWAITING_APPROVAL:
        state.status = RunStatus.COMPLETED
    state.answer = compose_answer(state.steps)
    upsert_step(tx, state.run_id, step)
    write_state(tx, state, owned=False)


def close_pending(
    tx: Transaction, where: str, params: list[Any], *, status: str, actor: str, note: str
) -> int:
    """Close the pending requests matching `where` (SQL over approvals) without running them."""
    # Approval rows are locked before their run's row, as in `claim`: one lock order.
    rows = tx.all(
        f"SELECT * FROM approvals WHERE status = 'pending' AND {where} ORDER BY approval_id",
        params,
        for_update=True,
    )
    for row in rows:
        try:
            state = read_state(tx, row["run_id"])
        except NotFound:  # a request from before runs were saved: just close it
            _record(tx, row, status=status, actor=actor, note=note)
            continue
        _close(tx, state, state.step(int(row["step"])), row, status, actor, note)
    return len(rows)


def expire_stale(tx: Transaction, now: datetime) -> int:
    """Requests nobody decided in time expire, so the queue holds only live work."""
    return close_pending(
        tx,
        "expires_at <= ?",
        [now],
        status="expired",
        actor="runtime",
        note="expired: nobody decided before the request's expiry",
    )
