"""The offline, deterministic provider: useful on its own, not an echo.

It plans from the section structure of the retrieved runbooks (diagnose -> mitigate ->
verify -> escalate), proposes the tool actions those runbooks name when the task asks for
them, answers each step with the runbook lines that best match the task (each line citing
its passage), and reviews a draft by checking every line against the passages it cites.
Same input, same output: tests and demos can rely on it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from copilot.llm.base import (
    CITATION,
    LLMRequest,
    LLMResponse,
    Passage,
    StepSpec,
    count_tokens,
    messages_tokens,
)
from copilot.llm.prompts import MAX_PLAN_STEPS

_STAGES = (  # (section words, verb), in the order an operator works through a runbook
    (("symptom", "detect", "signal", "trigger"), "Confirm the symptoms"),
    (("diagnos", "investigat", "triage", "check"), "Diagnose"),
    (
        ("mitigat", "remediat", "fix", "resolution", "procedure", "steps", "rotate", "restore"),
        "Mitigate",
    ),
    (("verif", "validat", "rollback", "recover"), "Verify"),
    (("escalat", "communicat", "contact"), "Escalate"),
)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*+])\s+(.*\S)")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the and or of to in on for is are be it this that with as at by from if then when "  # noqa: SIM905
    "into our we you your their its not no do does can should must will please".split()
)
_SKIP = re.compile(r"(?i)related|see also|references|links")
MIN_SCORE = 0.2  # passages below this cosine similarity are noise for planning
MAX_ANSWER_STEPS = 4
_TICKET = re.compile(r"\b[A-Z][A-Z0-9]+-\d+\b")
MAX_LINES = 6

# (tool, phrase that names the action in a runbook line, words in the task that ask for it)
_TOOL_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("jira.create_issue", "open a jira ticket", ("ticket", "jira", "file an issue", "track")),
    ("jira.comment", "comment on the jira ticket", ("comment", "update the ticket")),
    ("jira.search", "search jira", ("existing ticket", "open incidents", "search jira")),
    (
        "github.create_pull_request",
        "open a github pull request",
        ("pull request", " pr ", "raise", "increase", "bump", "change the", "patch"),
    ),
    ("github.create_issue", "open a github issue", ("github issue",)),
    (
        "github.list_commits",
        "check recent github commits",
        ("recent commits", "what changed", "recent change"),
    ),
)


class StubProvider:
    name = "stub"
    model = "stub-runbook-v1"

    def complete(self, request: LLMRequest) -> LLMResponse:
        started = time.perf_counter()
        if request.purpose == "execute":
            text = _execute(request)
        else:
            text = json.dumps(_plan(request) if request.purpose == "plan" else _review(request))
        return LLMResponse(
            text=text,
            provider=self.name,
            model=self.model,
            prompt_tokens=messages_tokens(request.messages),
            completion_tokens=count_tokens(text),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def stream(self, request: LLMRequest) -> Iterator[str | LLMResponse]:
        response = self.complete(request)
        yield from re.findall(r"\S+\s*", response.text)
        yield response


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _stage(heading: str) -> int:
    section = heading.rsplit(" > ", 1)[-1].lower()
    for position, (words, _) in enumerate(_STAGES):
        if any(w in section for w in words):
            return position
    return len(_STAGES)


def _relevant(passages: list[Passage]) -> list[Passage]:
    """Passages in retrieval order (hybrid rank, best first), minus the noise."""
    keep = [p for p in passages if p.score >= MIN_SCORE]
    return keep or passages[:1]


def _plan(request: LLMRequest) -> dict[str, Any]:
    passages = _relevant(request.passages)
    steps: list[dict[str, Any]] = []
    for p in _one_per_stage(passages):
        steps.append(
            {
                "title": _step_title(p),
                "action": "answer",
                "citations": [p.chunk_id],
            }
        )
    steps.extend(_tool_steps(request.task, passages))
    return {"steps": steps[:MAX_PLAN_STEPS]}


def _step_title(p: Passage) -> str:
    """'Mitigate: Disk Full' reads better than the raw heading path."""
    parts = p.heading.split(" > ")
    stage = _stage(p.heading)
    if stage < len(_STAGES):
        return f"{_STAGES[stage][1]}: {parts[0]}"
    return f"Review '{parts[-1]}': {parts[0]}"


def _one_per_stage(passages: list[Passage]) -> list[Passage]:
    """The best passage for each stage of the work, in working order; link lists say nothing."""
    best: dict[int, Passage] = {}
    for p in passages:  # ranked best first
        if _SKIP.search(p.heading.rsplit(" > ", 1)[-1]):
            continue
        best.setdefault(_stage(p.heading), p)
    return [best[stage] for stage in sorted(best)][:MAX_ANSWER_STEPS]


def _tool_steps(task: str, passages: list[Passage]) -> list[dict[str, Any]]:
    """Tool actions the task asks for, with arguments taken from the runbook line that names it."""
    wanted = f" {task.lower()} "
    steps = []
    for tool, phrase, intents in _TOOL_RULES:
        if not any(i in wanted for i in intents):
            continue
        if tool == "jira.comment" and not _TICKET.search(task):
            continue  # a comment needs a ticket to go on
        for p in passages:
            line = next((ln for ln in _lines(p.text) if phrase in ln.lower()), None)
            if line:
                steps.append(
                    {
                        "title": _shorten(line.rstrip("."), 90),
                        "action": "tool",
                        "tool": tool,
                        "args": _tool_args(tool, task, line, p),
                        "citations": [p.chunk_id],
                    }
                )
                break
    return steps


def _tool_args(tool: str, task: str, line: str, passage: Passage) -> dict[str, Any]:
    quoted = re.findall(r"`([^`]+)`", line)
    paths = [q for q in quoted if "/" in q]
    project = re.search(r"project ([A-Z][A-Z0-9]+)", line)
    summary = task.strip().splitlines()[0][:120]
    body = f"{line}\n\nRunbook: {passage.source} ({passage.heading})\nTask: {task.strip()}"
    if tool.startswith("jira.create"):
        return {
            "project": project.group(1) if project else "OPS",
            "summary": summary,
            "description": body,
        }
    if tool == "jira.comment":
        ticket = _TICKET.search(task)
        return {"issue": ticket.group(0) if ticket else "", "body": body}
    if tool == "jira.search":
        return {"query": summary}
    repo = next((q for q in quoted if re.fullmatch(r"[\w.-]+/[\w.-]+", q)), "acme/platform")
    if tool == "github.create_pull_request":
        return {"repo": repo, "path": paths[0] if paths else "", "title": summary, "body": body}
    if tool == "github.create_issue":
        return {"repo": repo, "title": summary, "body": body}
    return {"repo": repo}


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."


def _lines(text: str) -> list[str]:
    items = [m.group(1) for ln in text.splitlines() if (m := _LIST_ITEM.match(ln))]
    if items:
        return items
    body = " ".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    return [s for s in re.split(r"(?<=[.!?])\s+", body) if s.strip()]


def _execute(request: LLMRequest) -> str:
    step = request.step or StepSpec(title=request.task, action="answer")
    cited = [p for p in request.passages if p.chunk_id in step.citations]
    pool = cited or _relevant(request.passages)[:2]
    focus = _words(request.task) | _words(step.title)
    candidates = [
        (len(focus & _words(line)), position, line, p.chunk_id)
        for p in pool
        for position, line in enumerate(_lines(p.text))
    ]
    best = sorted(candidates, key=lambda c: (-c[0], c[1]))[:MAX_LINES]
    best.sort(key=lambda c: (pool.index(next(p for p in pool if p.chunk_id == c[3])), c[1]))
    return "\n".join(f"- {line} [{chunk_id}]" for _, _, line, chunk_id in best)


def _review(request: LLMRequest) -> dict[str, Any]:
    known = {p.chunk_id for p in request.passages}
    reasons = []
    claims = [ln for ln in request.draft.splitlines() if ln.strip().startswith("-")]
    uncited = [ln for ln in claims if not CITATION.search(ln)]
    unknown = sorted({c for ln in claims for c in CITATION.findall(ln)} - known)
    if uncited:
        reasons.append(f"{len(uncited)} of {len(claims)} answer lines carry no citation")
    if unknown:
        reasons.append(f"cites passages that were not retrieved: {', '.join(unknown)}")
    verdict = (
        "fail"
        if unknown or (claims and len(uncited) == len(claims))
        else ("warn" if uncited else "pass")
    )
    if not reasons:
        reasons.append(f"all {len(claims)} answer lines cite retrieved runbook passages")
    return {"verdict": verdict, "reasons": reasons}
