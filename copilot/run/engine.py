"""The run loop: `state = step(state)`, saved at every boundary, until the run completes or
must wait for a person. Any process can pick a saved run up again: after an approval
(`decide`), or after its process died (`resume`)."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from copilot import approvals
from copilot.config import MAX_TASK_CHARS
from copilot.errors import CopilotError, InputError
from copilot.retriever import follow_up_query, is_follow_up
from copilot.run import executor, planner, reviewer, runs
from copilot.run.context import RunContext, RunHooks
from copilot.run.journal import Batch, Journal, read_state, write_state
from copilot.run.lease import is_alive
from copilot.run.state import RunState, RunStatus
from copilot.store import Transaction, utcnow

log = logging.getLogger(__name__)


@dataclass
class Decided:
    """What deciding an approval did: the request, the tool's outcome, the run after it."""

    approval: dict[str, Any]
    status: str
    state: RunState
    tool_status: str | None = None
    tool_error: str | None = None


def validate_task(task: str) -> str:
    cleaned = (task or "").strip()
    if not cleaned:
        raise InputError(
            "The task is empty; describe what you need, e.g. "
            "'pods in checkout are OOMKilled, raise the limit and open a ticket'."
        )
    if len(cleaned) > MAX_TASK_CHARS:
        raise InputError(
            f"The task is {len(cleaned):,} characters; the limit is "
            f"{MAX_TASK_CHARS:,}. Shorten it or split it into several tasks."
        )
    return cleaned


def previous_turn(past: list[RunState], task: str) -> str:
    """What the conversation already answered, when `task` follows up on it: the last
    finished run's task and answer, so the next answer can say what is new."""
    done = [s for s in past if s.answer]
    if not done or not is_follow_up(task):
        return ""
    return f"Task: {done[-1].task}\n\nAnswer:\n{done[-1].answer}"


class Engine:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.journal = Journal(ctx.store)

    # starting ---------------------------------------------------------------------------
    def _conversation(self, session_id: str, user: str) -> list[RunState]:
        return runs.conversation(self.ctx.store, session_id, user) if session_id else []

    def start(
        self,
        task: str,
        *,
        user: str,
        session_id: str = "",
        history: list[RunState] | None = None,
        hooks: RunHooks | None = None,
        role: str | None = None,
    ) -> RunState:
        # Redacted once, on the way in: what is stored, printed and sent to a provider.
        task = self.ctx.store.redact(validate_task(task)) or ""
        hooks = hooks or RunHooks()
        # The conversation's earlier runs: the caller's copy when it has one (the chat
        # just drew them), else read once from the store.
        past = history if history is not None else self._conversation(session_id, user)
        primary = self.ctx.models.primary
        state = RunState(
            run_id=uuid.uuid4().hex[:12],
            task=task,
            user=user,
            role=role or self.ctx.role_of(user),
            session_id=session_id,
            provider=primary.name,
            model=primary.model,
            query=follow_up_query([s.task for s in past], task),
            prior=previous_turn(past, task),
        )
        created = False
        try:
            batch = Batch()
            planner.retrieve(self.ctx, state, batch, hooks)
            planner.plan(self.ctx, state, batch, hooks)
            self.journal.create(state, batch)
            created = True
            return self.advance(state, hooks)
        except BaseException as exc:
            self._fail(state, exc, created)
            raise

    # the loop ---------------------------------------------------------------------------
    def advance(self, state: RunState, hooks: RunHooks | None = None) -> RunState:
        """Run waves until the plan is done or waits for a person; review; save."""
        hooks = hooks or RunHooks()
        try:
            batch = Batch()
            while wave := executor.next_wave(state):
                batch = executor.run_wave(self.ctx, state, wave, hooks)
                if executor.next_wave(state):
                    self.journal.save(state, batch)  # a boundary with more to come
                    batch = Batch()
            reviewer.review(self.ctx, state, batch, hooks)
            state.status = RunStatus.AWAITING_APPROVAL if state.pending() else RunStatus.COMPLETED
            self.journal.save(state, batch)
            return state
        except BaseException as exc:
            self._fail(state, exc, True)
            raise

    def _fail(self, state: RunState, exc: BaseException, created: bool) -> None:
        state.status, state.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        try:
            with self.ctx.store.transaction() as tx:
                if not created:
                    self.journal.create_in(tx, state)
                write_state(tx, state, owned=False)
                approvals.close_pending(
                    tx,
                    "run_id = ?",
                    [state.run_id],
                    status="rejected",
                    actor="runtime",
                    note="rejected automatically: the run failed",
                )
                tx.audit(
                    actor="runtime",
                    action="run.failed",
                    run_id=state.run_id,
                    reason=state.error[:500],
                )
        except CopilotError:  # e.g. the DB is still locked: the first error is the news
            log.warning("could not mark run %s as failed", state.run_id, exc_info=True)

    # approvals --------------------------------------------------------------------------
    def decide(
        self,
        approval_id: str,
        *,
        approve: bool,
        user: str,
        note: str = "",
        hooks: RunHooks | None = None,
        role: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> Decided:
        """Approve (run the call exactly once), possibly with edited `args` (merged over the
        requested ones), or reject; then the run goes on, here."""
        by = approvals.Decider(user, role or self.ctx.role_of(user), self.ctx.policy)
        found = approvals.claim(
            self.ctx.store,
            approval_id,
            approve=approve,
            by=by,
            note=note,
            now=self.ctx.clock(),
            edited=self._edited(approval_id, approve, args),
        )
        if found.refused:
            raise found.refused
        outcome = None
        if approve:
            outcome = self._call(found.state, found.step.position)
            flags = self._scan_output(found.step.tool, outcome)
            found = approvals.record_result(self.ctx.store, found, outcome, flags)
        state = found.state
        if found.takes_over:
            state = self.advance(self.journal.load(state.run_id), hooks)
        return Decided(
            found.approval,
            "approved" if approve else "rejected",
            state,
            outcome.status if outcome else None,
            outcome.error if outcome else None,
        )

    def _edited(
        self, approval_id: str, approve: bool, args: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Edited arguments, checked by the tool's own schema before anything is claimed."""
        if args is None:
            return None
        if not approve:
            raise InputError("Edited arguments go with an approval, not a rejection.")
        found = self.ctx.store.query(
            "SELECT tool, args_json FROM approvals WHERE approval_id = ?", [approval_id]
        )
        if not found:
            return None  # the claim says the id is unknown
        merged = json.loads(found[0]["args_json"]) | args
        canonical = self.ctx.tools.validate(found[0]["tool"], merged)
        return dict(
            json.loads(self.ctx.store.redact(json.dumps(canonical, sort_keys=True)) or "{}")
        )

    def _call(self, state: RunState, position: int) -> Any:
        step = state.step(position)
        return self.ctx.tools.call(step.tool, step.args, key=step.key)

    def _scan_output(self, tool: str, outcome: Any) -> list[str]:
        return executor.output_taint(self.ctx, tool, outcome)

    # recovery ---------------------------------------------------------------------------
    def resume(self, run_id: str, hooks: RunHooks | None = None) -> RunState:
        """Continue an interrupted run from its last saved boundary. A call that was cut off
        is looked up by its idempotency key first: recorded if it reached the far side,
        made (with the same key) if not — never lost, never doubled."""
        state, cut_off = self._take_interrupted(run_id)
        batch = Batch()
        for key, position in cut_off:
            step = state.step(position)
            step.key = key
            existing = self.ctx.tools.lookup(step.tool, step.args, key)
            outcome = _Found(existing) if existing is not None else self._call(state, position)
            approvals.apply_outcome(step, outcome)
            state.taint += self._scan_output(step.tool, outcome)
            batch.finished_calls.append((key, outcome))
            batch.steps.append(step)
            batch.audit(
                "runtime",
                "tool.recovered" if existing is not None else f"tool.{outcome.status}",
                f"{step.tool} after an interruption: "
                + ("found what the first attempt created" if existing else "made the call"),
                key=key,
                position=position,
            )
        self.journal.save(state, batch)
        return self.advance(state, hooks)

    def _take_interrupted(self, run_id: str) -> tuple[RunState, list[tuple[str, int]]]:
        with self.ctx.store.transaction() as tx:
            state = read_state(tx, run_id)
            if state.status != RunStatus.INTERRUPTED:
                raise InputError(
                    f"Run {run_id} is {state.status}; only interrupted runs resume "
                    "(see `python -m copilot runs --status interrupted`)."
                )
            cut_off = [
                (str(r["idempotency_key"]), int(r["step"]))
                for r in tx.all(
                    "SELECT idempotency_key, step FROM tool_calls WHERE run_id = ? AND "
                    "status = 'started' ORDER BY step",
                    [run_id],
                )
            ]
            state.status = RunStatus.RUNNING
            write_state(tx, state, owned=True)
            tx.audit(
                actor="runtime",
                action="run.resumed",
                run_id=run_id,
                reason=f"resumed after an interruption; {len(cut_off)} cut-off call(s) to settle",
            )
        return state, cut_off


@dataclass
class _Found:
    """A lookup hit stands in for the call's outcome: the object exists, made once."""

    output: dict[str, Any]
    status: str = "done"
    error: str | None = None
    latency_ms: float = 0.0


def sweep(tx: Transaction) -> list[str]:
    """Runs whose owner died become `interrupted`; requests past their expiry expire.

    Called when any entry point starts (app, CLI, sidecar)."""
    now = utcnow()
    tx.lock("sweep")  # replicas starting together sweep one after the other
    approvals.expire_stale(tx, now)
    candidates = tx.all(
        "SELECT run_id, owner_token, heartbeat_at FROM runs WHERE status = 'running' "
        "UNION SELECT c.run_id, c.owner_token, r.heartbeat_at FROM tool_calls c JOIN runs r "
        "USING (run_id) WHERE c.status = 'started' AND r.status = 'awaiting_approval' "
        "ORDER BY run_id"
    )
    interrupted: list[str] = []
    for row in candidates:
        run_id, token, heartbeat = row["run_id"], row["owner_token"], row["heartbeat_at"]
        if run_id in interrupted or is_alive(token, heartbeat, now):
            continue
        try:
            state = read_state(tx, run_id)
        except CopilotError:  # from before runs were saved: it can only be closed
            tx.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
                ["abandoned: the run never finished and cannot be resumed", now, run_id],
            )
            continue
        state.status = RunStatus.INTERRUPTED
        write_state(tx, state, owned=False)
        tx.audit(
            actor="runtime",
            action="run.interrupted",
            run_id=run_id,
            reason="its process stopped mid-run; `python -m copilot runs resume ID` continues it",
        )
        interrupted.append(run_id)
    return interrupted
