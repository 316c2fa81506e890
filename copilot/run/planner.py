"""The first boundary of a run: find the runbook passages, then plan the steps."""

from __future__ import annotations

import json
from typing import Any

from copilot.guard import assess
from copilot.llm import prompts
from copilot.llm.base import LLMRequest
from copilot.retriever import to_passage
from copilot.run.calls import llm
from copilot.run.context import RunContext, RunHooks
from copilot.run.journal import Batch
from copilot.run.state import RunState, StepState
from copilot.run.view import plural


def retrieve(ctx: RunContext, state: RunState, batch: Batch, hooks: RunHooks) -> None:
    hooks.on_step("retriever", "Searching the runbooks", "running")
    # The planner sees twice the usual passages, and all of the best runbook, so it can
    # cover every stage of the work.
    hits = ctx.retriever.search_with_runbook(state.query, ctx.settings.top_k * 2)
    state.note_passages([to_passage(h) for h in hits], guard=ctx.guard)
    found = ctx.retriever.coverage(state.task, hits[:3])
    state.covered, state.relevance = found.covered, round(found.relevance, 4)
    state.uncovered_why = found.reason
    if ctx.guard:
        state.flags += assess(state.task, "task").reasons
    batch.audit(
        "retriever",
        "retriever.search",
        f"top {len(hits)} passages (hybrid BM25 + MiniLM); relevance {state.relevance}",
        chunk_ids=list(state.passages),
        flags=state.flags,
        taint=state.taint,
    )
    hooks.on_step("retriever", f"Found {len(hits)} runbook passages", "done")


def plan(ctx: RunContext, state: RunState, batch: Batch, hooks: RunHooks) -> None:
    if not state.covered:  # nothing to plan from: say so instead of inventing steps
        batch.audit(
            "planner",
            "planner.uncovered",
            f"no runbook covers the task: {state.uncovered_why}",
        )
        hooks.on_step("planner", "No runbook covers this task", "done")
        return
    hooks.on_step("planner", "Planning the steps", "running")
    passages = list(state.passages.values())
    request = LLMRequest(
        "plan",
        state.task,
        passages,
        prompts.plan_messages(state.task, passages, ctx.tools.planner_doc(), state.prior),
        schema=prompts.PLAN_SCHEMA,
        prior=state.prior,
    )
    data = llm(ctx, state, batch, request)
    state.steps = [_step(ctx, position, raw) for position, raw in enumerate(data["steps"], 1)]
    batch.audit(
        "planner",
        "planner.plan",
        f"planned {len(state.steps)} steps from the runbooks",
        steps=[s.title for s in state.steps],
    )
    hooks.on_step("planner", f"Planned {plural(len(state.steps), 'step')}", "done")


def _step(ctx: RunContext, position: int, raw: dict[str, Any]) -> StepState:
    step = StepState(
        position=position,
        title=str(raw["title"]),
        action=str(raw["action"]),
        citations=[str(c) for c in raw.get("citations") or ()],
    )
    if step.action == "tool":
        step.tool = str(raw.get("tool", ""))
        # Redacted now, on the way in: the approver approves, the digest binds and the tool
        # receives exactly what is stored.
        args = json.dumps(dict(raw.get("args") or {}), sort_keys=True)
        step.args = json.loads(ctx.store.redact(args) or "{}")
        writes = ctx.tools.writes(step.tool)
        step.writes = bool(writes)
        if writes is not None:  # an unknown tool has neither; the policy denies it
            step.target = ctx.tools.target(step.tool, step.args)
            step.mode = ctx.tools.mode(step.tool)
    return step
