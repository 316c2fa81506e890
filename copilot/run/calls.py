"""One LLM call inside a run: budget reserved first, usage rows, failure and fallback events
into the batch, budget settled at what the call really cost.

A call that cannot be reserved is not made: with COPILOT_BUDGET_ACTION=fallback the offline
provider answers the step instead (audited, and counted as a fallback); with `stop` the run
stops with BudgetExceeded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from copilot.errors import BudgetExceeded
from copilot.governance import budgets
from copilot.llm import CallOutcome, Models
from copilot.llm.base import LLMRequest
from copilot.run.context import RunContext
from copilot.run.journal import Batch, usage_row
from copilot.run.state import RunState


def llm(
    ctx: RunContext,
    state: RunState,
    batch: Batch,
    request: LLMRequest,
    on_text: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    models = ctx.models
    # Runbook text and tool output reach the prompt too: nothing secret leaves the machine.
    request = dataclasses.replace(
        request,
        messages=[m | {"content": ctx.store.redact(m["content"]) or ""} for m in request.messages],
    )
    held = _reserve(ctx, state, request)
    if isinstance(held, budgets.Refusal):
        models = _over_budget(ctx, batch, held)
    try:
        outcome = models.stream(request, on_text) if on_text else models.call(request)
    except BaseException:
        if isinstance(held, budgets.Reservation):
            budgets.release(ctx.store, held)
        raise
    if models is not ctx.models:
        for note in outcome.notes:
            note.fallback = True
    spent = _record(ctx, state, batch, request, outcome)
    if isinstance(held, budgets.Reservation):
        budgets.settle(ctx.store, held, spent)
    return outcome.data


def _reserve(
    ctx: RunContext, state: RunState, request: LLMRequest
) -> budgets.Reservation | budgets.Refusal | None:
    """Reserve the call's ceiling against the run, user and daily limits (None: nothing to
    reserve, because no limit is set or the call is free)."""
    primary, limits = ctx.models.primary, budgets.Limits.from_settings(ctx.settings)
    if (
        primary.name == "stub"
        or ctx.models.broken
        or not any((limits.run_usd, limits.user_usd, limits.total_usd))
    ):
        return None
    ceiling = budgets.estimate_max_cost(
        ctx.prices,
        provider=primary.name,
        model=primary.model,
        prompt_tokens=budgets.prompt_tokens(request.messages),
        max_output_tokens=request.max_output_tokens,
    )
    return budgets.try_reserve(
        ctx.store, run_id=state.run_id, user=state.user, amount_usd=ceiling or 0.0, limits=limits
    )


def _over_budget(ctx: RunContext, batch: Batch, refusal: budgets.Refusal) -> Models:
    if ctx.settings.budget_action == "stop":
        raise BudgetExceeded(
            f"Run stopped: {refusal.reason}. Raise the limit, or set "
            "COPILOT_BUDGET_ACTION=fallback to let the offline provider answer instead."
        )
    batch.fallbacks += 1
    batch.audit(
        "runtime",
        "budget.fallback",
        f"{refusal.reason}; the offline provider answered this step",
        limit=refusal.limit,
    )
    return Models(ctx.models.fallback)


def _record(
    ctx: RunContext, state: RunState, batch: Batch, request: LLMRequest, outcome: CallOutcome
) -> float | None:
    """Usage rows and failure events; returns what the primary provider's calls cost."""
    spent: float | None = None
    for note in outcome.notes:
        cost = ctx.prices.cost(note.response) if note.response else None
        batch.cost += cost or 0.0
        if cost is not None and not note.fallback:
            spent = (spent or 0.0) + cost
        batch.add(
            "llm_usage",
            usage_row(
                note.response,
                run_id=state.run_id,
                user=state.user,
                purpose=request.purpose,
                cost=cost,
                status="ok" if note.status == "ok" else "failed",
                provider=note.provider,
                model=note.model,
                error_class=note.error_class,
                attempts=note.attempts,
                latency_ms=note.latency_ms,
                fallback=note.fallback,
            ),
        )
        if note.status != "ok":
            batch.audit(
                "runtime",
                "llm.failed",
                note.error or note.status,
                provider=note.provider,
                model=note.model,
                error_class=note.error_class,
                attempts=note.attempts,
            )
    if outcome.fell_back:
        batch.fallbacks += 1
        batch.audit(
            "runtime",
            "llm.fallback",
            f"{ctx.models.primary.name} failed; the offline provider answered "
            f"this {request.purpose} step instead",
            purpose=request.purpose,
        )
    return spent
