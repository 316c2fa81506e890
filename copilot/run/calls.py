"""One LLM call inside a run: usage rows, failure and fallback events go into the batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    outcome = models.stream(request, on_text) if on_text else models.call(request)
    for note in outcome.notes:
        cost = ctx.prices.cost(note.response) if note.response else None
        batch.cost += cost or 0.0
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
            f"{models.primary.name} failed; the offline provider answered "
            f"this {request.purpose} step instead",
            purpose=request.purpose,
        )
    return outcome.data
