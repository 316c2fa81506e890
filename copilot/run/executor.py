"""Carries out the plan in waves: consecutive answer steps (or consecutive tool steps) are
independent of each other, so a wave runs them concurrently on a bounded pool.

A wave of answers embeds all its step queries in one call. A tool step asks the policy:
reads run at once; writes wait for a person (an approval request, bound to a digest of what
it will do) or, where a rule allows them, run with an idempotency key recorded before the
call. Tool output is redacted and scanned for injection before any later step sees it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from copilot.errors import CopilotError
from copilot.guard import assess
from copilot.llm import prompts
from copilot.llm.base import LLMRequest, Passage, StepSpec, cited_ids
from copilot.retriever import to_passage
from copilot.run.calls import llm
from copilot.run.context import PolicyDecision, RunContext, RunHooks, ToolOutcomeLike
from copilot.run.journal import Batch
from copilot.run.lease import me
from copilot.run.state import RunState, StepState, StepStatus
from copilot.store import utcnow


def next_wave(state: RunState) -> list[StepState]:
    """The next planned steps of one kind, in plan order; none while an earlier write is
    still undecided or in flight (later steps may need what it returns)."""
    wave: list[StepState] = []
    for step in state.steps:
        if step.status in (StepStatus.AWAITING_APPROVAL, StepStatus.APPROVED):
            return []
        if step.status != StepStatus.PLANNED:
            if wave:
                break
            continue
        if wave and step.action != wave[0].action:
            break
        wave.append(step)
    return wave


def run_wave(ctx: RunContext, state: RunState, wave: list[StepState], hooks: RunHooks) -> Batch:
    batch = Batch()
    if wave[0].action == "answer":
        queries = [f"{s.title}\n{state.task}" for s in wave]
        hits = ctx.retriever.search_many(queries, ctx.settings.top_k)
        jobs = [(s, [to_passage(h) for h in found]) for s, found in zip(wave, hits, strict=True)]
        results = _pool(ctx, [lambda s=s, p=p: _answer(ctx, state, s, p, hooks) for s, p in jobs])
    else:
        results = _pool(ctx, [lambda s=s: _tool(ctx, state, s, hooks) for s in wave])
    for step, step_batch in zip(wave, results, strict=True):
        batch.merge(step_batch)
        batch.steps.append(step)
    return batch


def _pool(ctx: RunContext, jobs: list[Any]) -> list[Batch]:
    if len(jobs) == 1:
        return [jobs[0]()]
    with ThreadPoolExecutor(max_workers=min(ctx.workers, len(jobs))) as pool:
        return list(pool.map(lambda job: job(), jobs))


def _answer(
    ctx: RunContext, state: RunState, step: StepState, found: list[Passage], hooks: RunHooks
) -> Batch:
    batch = Batch()
    hooks.on_step("executor", f"Step {step.position}: {step.title}", "running")
    passages = {p.chunk_id: p for p in found}
    for cid in step.citations:  # what the planner cited stays in view for the executor
        if cid in state.passages:
            passages.setdefault(cid, state.passages[cid])
    with ctx.lock:
        state.note_passages(list(passages.values()), guard=ctx.guard)
        state.step_retrieved[step.position] = list(passages)
    spec = StepSpec(step.title, "answer", citations=tuple(step.citations))
    request = LLMRequest(
        "execute",
        state.task,
        list(passages.values()),
        prompts.execute_messages(
            state.task, spec, list(passages.values()), tool_results(state), state.prior
        ),
        step=spec,
        prior=state.prior,
    )
    stream = (lambda delta: hooks.on_text(step.position, delta)) if hooks.streams else None
    step.answer = str(llm(ctx, state, batch, request, stream)["text"]).strip()
    step.citations = cited_ids(step.answer)
    step.status = StepStatus.DONE
    batch.audit(
        "executor",
        "executor.answer",
        f"step {step.position}: answered from {len(step.citations)} cited passages",
        position=step.position,
        citations=step.citations,
    )
    hooks.on_step("executor", f"Step {step.position}: {step.title}", "done")
    return batch


def tool_results(state: RunState) -> list[tuple[str, str]]:
    """Outputs of the tool steps done so far, as data for the steps after them."""
    return [
        (s.tool, json.dumps(s.result, default=str)[:2000])
        for s in state.steps
        if s.action == "tool" and s.status == StepStatus.DONE and s.result is not None
    ]


def _tool(ctx: RunContext, state: RunState, step: StepState, hooks: RunHooks) -> Batch:
    batch = Batch()
    hooks.on_step("executor", f"Step {step.position}: {step.title}", "running")
    if step.mode and not _prepare(ctx, state, step):
        hooks.on_step("executor", f"Step {step.position}: {step.title}", step.status)
        return batch
    decision = ctx.policy.decide(
        state.user,
        state.role,
        step.tool,
        writes=ctx.tools.writes(step.tool),
        target=step.target,
        tainted=state.tainted,
    )
    step.detail = decision.reason
    batch.audit(
        "policy",
        "policy.decide",
        decision.reason,
        position=step.position,
        tool=step.tool,
        rule=decision.rule,
        allowed=decision.allowed,
        needs_approval=decision.needs_approval,
        policy_hash=decision.policy_hash,
    )
    if decision.needs_approval:
        _request_approval(ctx, state, step, decision, batch)
    elif not decision.allowed:
        step.status = StepStatus.DENIED
    else:
        if step.writes:
            step.key = f"{state.run_id}-{step.position}"
            begin_call(ctx, state, step)
        outcome = ctx.tools.call(step.tool, step.args, key=step.key)
        finish_call(ctx, state, step, outcome, batch)
    hooks.on_step("executor", f"Step {step.position}: {step.title}", step.status)
    return batch


def _prepare(ctx: RunContext, state: RunState, step: StepState) -> bool:
    """Canonical arguments and, for a file change, the real edit and its diff. False when
    the step cannot go on: bad arguments, or no such file or field (it says so instead of
    inventing a path)."""
    try:
        prepared = ctx.tools.prepare(step.tool, step.args, task=state.task)
    except CopilotError as exc:
        step.status, step.detail = StepStatus.ERROR, str(exc)
        return False
    if prepared.args is None:
        step.status, step.detail = StepStatus.SKIPPED, prepared.note
        return False
    step.args = json.loads(ctx.store.redact(json.dumps(prepared.args, sort_keys=True)) or "{}")
    step.target = ctx.tools.target(step.tool, step.args)
    if prepared.preview.get("kind", "none") != "none":
        step.preview = dict(prepared.preview)
    if prepared.note:
        step.detail = prepared.note
    return True


def args_digest(tool: str, args: dict[str, Any], target: str) -> str:
    """What an approval allows: the tool, its canonical arguments and its target."""
    canonical = json.dumps([tool, args, target], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _request_approval(
    ctx: RunContext, state: RunState, step: StepState, decision: PolicyDecision, batch: Batch
) -> None:
    digest = args_digest(step.tool, step.args, step.target)
    with ctx.lock:  # one request per identical action in a run
        twin = next(
            (
                s
                for s in state.steps
                if s.approval_id
                and s is not step
                and s.status == StepStatus.AWAITING_APPROVAL
                and args_digest(s.tool, s.args, s.target) == digest
            ),
            None,
        )
        step.status = StepStatus.AWAITING_APPROVAL
        step.approval_id = uuid.uuid4().hex[:10]
        if twin is not None:
            step.status, step.approval_id = StepStatus.DENIED, None
            step.detail = f"the same action is already requested in step {twin.position}"
            return
    now = ctx.clock()
    batch.add(
        "approvals",
        {
            "approval_id": step.approval_id,
            "run_id": state.run_id,
            "step": step.position,
            "tool": step.tool,
            "action": step.title,
            "args_json": json.dumps(step.args, sort_keys=True),
            "status": "pending",
            "rule": decision.rule,
            "reason": decision.reason,
            "requested_by": state.user,
            "decided_by": None,
            "decision_note": None,
            "created_at": now,
            "decided_at": None,
            "target": step.target,
            "args_digest": digest,
            "expires_at": now + ctx.approval_ttl,
            "citations_json": json.dumps(step.citations),
            "preview_json": json.dumps(step.preview) if step.preview else None,
        },
    )
    batch.audit(
        "policy",
        "approval.requested",
        f"{step.tool} on {step.target} waits for a person",
        approval_id=step.approval_id,
        position=step.position,
        digest=digest,
    )


def output_taint(ctx: RunContext, tool: str, outcome: ToolOutcomeLike) -> list[str]:
    """Tool output is data, never instructions: redacted, then through the injection guard;
    what it flags taints the run."""
    if outcome.output is None or not ctx.guard:
        return []
    clean = ctx.store.redact(json.dumps(outcome.output, default=str)) or ""
    found = assess(clean, f"tool {tool}")
    return [f"tool {tool}: {'; '.join(found.reasons[:2])}"] if found.flagged else []


def call_row(state: RunState, step: StepState, status: str) -> dict[str, Any]:
    return {
        "call_id": uuid.uuid4().hex,
        "run_id": state.run_id,
        "step": step.position,
        "tool": step.tool,
        "action": step.title,
        "args_json": json.dumps(step.args, sort_keys=True),
        "status": status,
        "result_json": None,
        "error": None,
        "approval_id": step.approval_id,
        "latency_ms": None,
        "created_at": utcnow(),
        "idempotency_key": step.key,
        "owner_token": me().token,
    }


def begin_call(ctx: RunContext, state: RunState, step: StepState) -> None:
    """Record the intent, with its key, before an unapproved write leaves the machine."""
    with ctx.store.transaction() as tx:
        tx.insert("tool_calls", call_row(state, step, "started"))


def finish_call(
    ctx: RunContext, state: RunState, step: StepState, outcome: ToolOutcomeLike, batch: Batch
) -> None:
    """The step takes the outcome; flagged output taints the run."""
    step.status = StepStatus.DONE if outcome.status == "done" else StepStatus.ERROR
    step.result = outcome.output
    if outcome.error:
        step.detail = outcome.error
    taint = output_taint(ctx, step.tool, outcome)
    with ctx.lock:
        state.taint += taint
    if step.key:  # the intent row exists: complete it
        batch.finished_calls.append((step.key, outcome))
        batch.audit(
            "executor",
            f"tool.{outcome.status}",
            outcome.error or f"ran {step.tool}",
            position=step.position,
            key=step.key,
            approval_id=step.approval_id,
            result=outcome.output,
        )
        return
    row = call_row(state, step, outcome.status)
    row.update(
        result_json=json.dumps(outcome.output) if outcome.output is not None else None,
        error=outcome.error,
        latency_ms=outcome.latency_ms,
    )
    batch.add("tool_calls", row)
