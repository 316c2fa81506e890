"""The last step of every wave sequence: compose the answer and judge it.

Rules first (each answer step cites passages retrieved for it; each answer line is grounded in
what it cites, see copilot.run.grounding; injection signals fail the run), then the model's own
view; the worse verdict wins. A failed review rejects the run's pending writes: nobody should
approve what the reviewer refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from copilot.llm import prompts
from copilot.llm.base import LLMRequest
from copilot.run import grounding
from copilot.run.calls import llm
from copilot.run.context import RunContext, RunHooks
from copilot.run.journal import Batch
from copilot.run.state import RunState, StepStatus
from copilot.run.view import compose_answer, uncovered_answer

_RANK = {"pass": 0, "warn": 1, "fail": 2}


def review(ctx: RunContext, state: RunState, batch: Batch, hooks: RunHooks) -> None:
    if not ctx.review:
        _skipped(state, batch)
        return
    hooks.on_step("reviewer", "Reviewing citations and injection signals", "running")
    if not state.covered:
        _uncovered(state, batch)
        hooks.on_step("reviewer", "Verdict: warn", "done")
        return
    state.answer = compose_answer(state.steps)
    passages = list(state.passages.values())
    request = LLMRequest(
        "review",
        state.task,
        passages,
        prompts.review_messages(state.task, state.answer, passages),
        draft=state.answer,
        schema=prompts.REVIEW_SCHEMA,
    )
    model_view = llm(ctx, state, batch, request)
    # The line checks need the runbook folder (stale citations, remedy sections): made here,
    # then review_rules (one argument, as tests replace it) judges what is stored.
    state.line_checks = grounding.as_dicts(
        grounding.check_answer(state, _encoder(), ctx.settings.corpus)
    )
    verdict, reasons = review_rules(state)
    verdict = _worst(verdict, str(model_view.get("verdict", "pass")))
    reasons += [f"model reviewer: {r}" for r in model_view.get("reasons", [])]
    if verdict == "fail":
        _reject_pending(state, batch)
        state.answer = compose_answer(state.steps)
    state.verdict, state.reasons = verdict, reasons
    state.reviews += 1
    batch.audit("reviewer", "reviewer.verdict", "; ".join(reasons), verdict=verdict)
    batch.review = {"verdict": verdict, "reasons": reasons, "flags": len(state.flags)}
    hooks.on_step("reviewer", f"Verdict: {verdict}", "done")


def _skipped(state: RunState, batch: Batch) -> None:
    """No reviewer (the evaluation's baseline): the answer goes out as the steps wrote it."""
    state.answer = compose_answer(state.steps) if state.covered else uncovered_answer(state)
    state.verdict, state.reasons = "skipped", ["no reviewer in this configuration"]


def _uncovered(state: RunState, batch: Batch) -> None:
    """No runbook covers the task: say so, show what is closest, act on nothing."""
    state.answer = uncovered_answer(state)
    state.verdict = "warn"
    state.reasons = [
        f"no runbook covers this task ({state.uncovered_why}); nothing was planned or done"
    ]
    state.reviews += 1
    batch.audit("reviewer", "reviewer.verdict", state.reasons[0], verdict="warn")
    batch.review = {"verdict": "warn", "reasons": state.reasons, "flags": len(state.flags)}


def _reject_pending(state: RunState, batch: Batch) -> None:
    """Requests this boundary created are written already rejected: never approvable."""
    note = "rejected automatically: the reviewer failed the run"
    for step in state.steps:
        if step.status != StepStatus.AWAITING_APPROVAL:
            continue
        for row in batch.rows.get("approvals", []):
            if row["approval_id"] == step.approval_id:
                row.update(status="rejected", decided_by="reviewer", decision_note=note)
                row["decided_at"] = row["created_at"]
        step.status, step.decided_by, step.note = StepStatus.REJECTED, "reviewer", note
        batch.steps.append(step)
        batch.audit("reviewer", "approval.rejected", note, approval_id=step.approval_id)


def review_rules(
    state: RunState,
    encoder: grounding.Encoder | None = None,
    corpus: Path | None = None,
) -> tuple[str, list[str]]:
    """Answer lines cite what was retrieved, quote it verbatim and say what it says;
    injection fails the run. Judges state.line_checks as review() stored them; makes them
    first when an encoder or corpus is given or none are stored (the stale check and the
    remedy sections on disk need `corpus`)."""
    if encoder is not None or corpus is not None or not state.line_checks:
        state.line_checks = grounding.as_dicts(
            grounding.check_answer(state, encoder or _encoder(), corpus)
        )
    reasons: list[str] = []
    failed = False
    for s in state.steps:
        if s.action != "answer" or s.status != StepStatus.DONE:
            continue
        real = [c for c in s.citations if c in state.step_retrieved.get(s.position, [])]
        if not real:
            failed = True
            reasons.append(f"step {s.position} cites no passage retrieved for it")
    line_verdict, line_reasons = _line_reasons(state.line_checks)
    failed = failed or line_verdict == "fail"
    reasons += line_reasons
    if state.flags:
        failed = True
        reasons += [f"prompt injection in the task: {r}" for r in state.flags[:5]]
    if state.taint:  # evidence that may be cited, never followed: a person looks at writes
        reasons += [f"flagged content in view (writes need a person): {t}" for t in state.taint[:5]]
    warned = bool(state.taint or line_verdict == "warn")
    if not failed and not warned:
        n = sum(1 for c in state.line_checks if c["line"])
        reasons.append(
            f"all {n} answer lines cite passages retrieved in this run, quote them verbatim "
            "and are supported by them; no injection signals"
        )
    return ("fail" if failed else "warn" if warned else "pass"), reasons


def _line_reasons(checks: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """One reason per problem, naming the step and line; the worst line status."""
    verdict = "pass"
    reasons = []
    for c in checks:
        verdict = _worst(verdict, c["status"])
        where = f"step {c['step']} line {c['line']}" if c["line"] else "the answer"
        reasons += [f"{where}: {r}" for r in c["reasons"]]
    return verdict, reasons


def _encoder() -> grounding.Encoder:
    from copilot.embeddings import get_embedder  # loads MiniLM on first use only

    return get_embedder()


def _worst(a: str, b: str) -> str:
    return max(a, b, key=lambda v: _RANK.get(v, 2))
