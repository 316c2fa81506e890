"""How a run reads to a person: the composed answer, the summary line, the JSON shape."""

from __future__ import annotations

from typing import Any

from copilot.run.state import RunState, StepState, StepStatus

_STATE_WORDS = {
    StepStatus.AWAITING_APPROVAL: "waiting for approval",
    StepStatus.APPROVED: "approved, running",
    StepStatus.DENIED: "denied by policy",
    StepStatus.ERROR: "failed",
    StepStatus.REJECTED: "not done: rejected",
    StepStatus.EXPIRED: "not done: the request expired",
    StepStatus.DONE: "done",
    StepStatus.PLANNED: "not started",
    StepStatus.SKIPPED: "not proposed",
}


def plural(n: int, word: str) -> str:
    """'1 step', '2 steps': counts read right everywhere."""
    return f"{n} {word if n == 1 else word + 's'}"


def reference(result: dict[str, Any] | None) -> str:
    """The created object's name and address: ticket key, pull request, sandbox branch."""
    if not result:
        return ""
    parts = [
        str(result[k])
        for k in ("key", "number", "branch", "commit")
        if result.get(k) not in (None, "")
    ]
    if k := next((k for k in ("url", "html_url") if result.get(k)), None):
        parts.append(str(result[k]))
    return " ".join(parts)


def describe_tool_step(s: StepState) -> str:
    state = _STATE_WORDS.get(s.status, s.status)  # type: ignore[call-overload]
    where = f" on {s.target}" if s.target else ""
    mode = f" ({s.mode})" if s.mode else ""
    line = f"- `{s.tool}`{where}{mode} - {state}"
    if s.status == StepStatus.DONE and (ref := reference(s.result)):
        line += f": {ref}"
    elif s.status == StepStatus.REJECTED:
        line += f" by {s.decided_by or 'a person'}" + (f": {s.note}" if s.note else "")
    elif s.detail:
        line += f": {s.detail}"
    if s.citations:
        line += f" [{s.citations[0]}]"
    return line


def compose_answer(steps: list[StepState]) -> str:
    """The answer shown to the analyst: each step with its cited lines or its tool outcome."""
    parts = []
    for s in steps:
        body = s.answer if s.action == "answer" else describe_tool_step(s)
        if s.action == "answer" and s.status != StepStatus.DONE:
            body = "- _not answered yet_"
        parts.append(f"**{s.position}. {s.title}**\n{body}")
    return "\n\n".join(parts)


def uncovered_answer(state: RunState) -> str:
    closest = list(state.passages.values())[:3]
    lines = [
        "**No runbook covers this task.** I have no grounded steps for it, so I proposed no "
        "action. Add a runbook for it to the corpus, or rephrase the task if it is about "
        "one of the operations the runbooks cover.",
    ]
    if state.uncovered_why:
        lines.append(f"\nWhy: {state.uncovered_why}.")
    if closest:
        lines.append("\nPossibly related:")
        lines += [f"- {p.source} - {p.heading.split(' > ')[-1]} [{p.chunk_id}]" for p in closest]
    return "\n".join(lines)


def summary(state: RunState) -> str:
    """One line a person reads first: how many steps, from which runbooks, what waits."""
    if not state.covered:
        return "No runbook covers this task; nothing was planned or done."
    runbooks = sorted({state.passages[c].source for c in cited(state)})
    text = f"{plural(len(state.steps), 'step')} from {plural(len(runbooks), 'runbook')}"
    text += f" ({', '.join(runbooks)})." if runbooks else "."
    counts = {
        status: sum(1 for s in state.steps if s.status == status)
        for status in (StepStatus.AWAITING_APPROVAL, StepStatus.DENIED, StepStatus.REJECTED)
    }
    done = [
        s for s in state.steps if s.action == "tool" and s.status == StepStatus.DONE and s.writes
    ]
    if done:
        text += f" {plural(len(done), 'action')} done."
    if n := counts[StepStatus.AWAITING_APPROVAL]:
        text += f" {plural(n, 'action')} {'waits' if n == 1 else 'wait'} for approval."
    if n := counts[StepStatus.REJECTED]:
        text += f" {plural(n, 'action')} rejected."
    if n := counts[StepStatus.DENIED]:
        text += f" {plural(n, 'action')} denied by policy."
    return text


def cited(state: RunState) -> list[str]:
    return sorted({c for s in state.steps for c in s.citations if c in state.passages})


def citations(state: RunState) -> list[dict[str, Any]]:
    return [
        {
            "chunk_id": c,
            "source": state.passages[c].source,
            "heading": state.passages[c].heading,
            "snippet": state.passages[c].text[:400],
            "score": round(state.passages[c].score, 4),
        }
        for c in cited(state)
    ]


def as_dict(state: RunState) -> dict[str, Any]:
    return {
        "run_id": state.run_id,
        "status": state.status,
        "task": state.task,
        "summary": summary(state),
        "covered": state.covered,
        "relevance": state.relevance,
        "uncovered_why": state.uncovered_why,
        "provider": state.provider,
        "model": state.model,
        "plan": [dict(s.__dict__) for s in state.steps],
        "answer": state.answer,
        "citations": citations(state),
        "review": {
            "verdict": state.verdict,
            "reasons": state.reasons,
            "injection_flags": state.flags,
            "line_checks": state.line_checks,
        },
        "cost_usd": round(state.cost, 6),
        "fallbacks": state.fallbacks,
        "error": state.error,
    }
