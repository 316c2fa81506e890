"""The offline, deterministic provider: useful on its own, not an echo.

It plans from the section structure of the retrieved runbooks: first "What to do now" (one to
three lines to act on), then diagnose -> mitigate -> verify -> escalate; a follow-up gets the
direct answer to what it asks and at most one step the previous answer did not cite. It
proposes the tool actions those runbooks name when the task asks for them, answers each step
with the runbook lines that best match the task (each line citing its passage, commands
adapted to the task's service by copilot.names), and reviews a draft by checking every line
against the passages it cites.
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
    is_regression,
    messages_tokens,
)
from copilot.llm.prompts import DIRECT_STEP, MAX_PLAN_STEPS
from copilot.names import adapt_line, task_service

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
MAX_DIRECT_LINES = 3
_PRIOR_TASK = re.compile(r"Task: (.*)")
_MITIGATE, _DIAGNOSE = 2, 1  # positions in _STAGES
_UNDO = re.compile(r"(?i)roll(?:ing)? (?:it )?back|rollback|undo|revert")

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
    if " > " not in heading:  # a runbook's introduction, whatever its title says
        return len(_STAGES)
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
    """What to do now, then one step per stage of the work, then the tool actions asked for.
    A follow-up gets what it asks about, not the plan it follows up on once more."""
    passages = _relevant(request.passages)
    direct = _direct_sources(request, passages)
    stages = (
        _follow_up_pick(request, passages, direct) if request.prior else _one_per_stage(passages)
    )
    steps = [_answer_step(DIRECT_STEP, direct)]
    steps += [_answer_step(_step_title(p), [p]) for p in stages]
    steps += _tool_steps(request, passages)
    return {"steps": steps[:MAX_PLAN_STEPS]}


def _answer_step(title: str, sources: list[Passage]) -> dict[str, Any]:
    return {"title": title, "action": "answer", "citations": [p.chunk_id for p in sources]}


def _direct_sources(request: LLMRequest, passages: list[Passage]) -> list[Passage]:
    """Where the direct answer comes from: for a new task, the top runbook's mitigation and
    diagnosis; for a follow-up, the passage that best matches what it asks."""
    ranked = _follow_up_ranked(request, passages)
    if request.prior:
        return ranked[:1]
    top = [p for p in request.passages if p.source == passages[0].source]
    by_stage = {_stage(p.heading): p for p in reversed(top)}  # best of each stage wins
    found = [by_stage[s] for s in (_MITIGATE, _DIAGNOSE) if s in by_stage] or passages[:1]
    # The passage sharing most words with the task, when another runbook holds it ("too
    # many connections" is a line of the 5xx runbook, not of the replication-lag one).
    if ranked and ranked[0].source != found[0].source:
        found.append(ranked[0])
    return found


def _follow_up_ranked(request: LLMRequest, passages: list[Passage]) -> list[Passage]:
    """Passages by how much of the follow-up's own words they share; among equals, the
    runbooks the previous answer cited (a follow-up stays on its subject: "what should I
    check first?" after a Kafka question means Kafka's diagnosis, not another runbook's),
    then ones it did not cite yet, then retrieval order."""
    own, (shown, subject) = _stems(request.task), _cited(request)
    steps = [p for p in passages if not _SKIP.search(p.heading) and " > " in p.heading]

    def match(p: Passage) -> int:  # shared words, +1 when it names the stage ("check")
        stage = _stage(p.heading)
        named = stage < len(_STAGES) and any(w in request.task.lower() for w in _STAGES[stage][0])
        return len(own & _stems(f"{p.heading} {p.text}")) + int(named)

    return sorted(
        steps or passages,
        key=lambda p: (-match(p), not _on_subject(p, request, subject), p.chunk_id in shown),
    )


def _cited(request: LLMRequest) -> tuple[set[str], set[str]]:
    """The chunks the previous answer cited, and their runbooks."""
    shown = set(CITATION.findall(request.prior))
    return shown, {chunk_id.split("#", 1)[0] for chunk_id in shown}


def _on_subject(p: Passage, request: LLMRequest, cited: set[str]) -> bool:
    """A runbook the previous answer cited or named ("... using the Rollback a Bad Deploy
    runbook"): where a follow-up that refers back is answered."""
    title = p.heading.split(" > ", 1)[0].lower()
    return not cited or p.source in cited or title in request.prior.lower()


def _follow_up_pick(
    request: LLMRequest, passages: list[Passage], direct: list[Passage]
) -> list[Passage]:
    """At most one step beyond the direct answer: a passage of the subject's runbooks the
    previous answer did not cite that shares words with the follow-up."""
    own, (shown, subject) = _stems(request.task), _cited(request)
    for p in _follow_up_ranked(request, passages):
        fresh = p.chunk_id not in shown and p not in direct
        fresh = fresh and _on_subject(p, request, subject)
        if fresh and own & _stems(f"{p.heading} {p.text}") and not _SKIP.search(p.heading):
            return [p]
    return []


def _stems(text: str) -> set[str]:
    """Content words cut to six letters: 'deployed', 'deployment' and 'deploy' meet."""
    return {w[:6] for w in _words(text)}


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
    staged = [best[stage] for stage in sorted(best) if stage < len(_STAGES)]
    # A runbook's introduction ("use this runbook when...") is no step when stages exist.
    return (staged or [best[stage] for stage in sorted(best)])[:MAX_ANSWER_STEPS]


def _tool_steps(request: LLMRequest, passages: list[Passage]) -> list[dict[str, Any]]:
    """Tool actions the task asks for, with arguments taken from the runbook line that names it."""
    task = request.task
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
                # The title names what will change: the task's service, not the example's.
                title = adapt_line(line, task_service(_conversation(request)))
                steps.append(
                    {
                        "title": _shorten(title.rstrip("."), 90),
                        "action": "tool",
                        "tool": tool,
                        "args": _tool_args(tool, request, line, p),
                        "citations": [p.chunk_id],
                    }
                )
                break
    return steps


def _tool_args(tool: str, request: LLMRequest, line: str, passage: Passage) -> dict[str, Any]:
    """Arguments from the runbook line, its example paths and names adapted to the task's
    service; a follow-up ("open a ticket for that") is summarised by the task before it."""
    task = request.task
    line = adapt_line(line, task_service(_conversation(request)))
    quoted = re.findall(r"`([^`]+)`", line)
    paths = [q for q in quoted if "/" in q]
    project = re.search(r"project ([A-Z][A-Z0-9]+)", line)
    summary = (_prior_task(request) or task).strip().splitlines()[0][:120]
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


def _prior_task(request: LLMRequest) -> str:
    """The task a follow-up builds on, from the previous turn (engine.previous_turn)."""
    subject = _PRIOR_TASK.match(request.prior)
    return subject.group(1) if subject else ""


def _conversation(request: LLMRequest) -> str:
    """The task, after the one it follows up on: where the service name is looked up."""
    return "\n".join(filter(None, [_prior_task(request), request.task]))


def _execute(request: LLMRequest) -> str:
    """The step's best runbook lines, commands adapted to the task's service; lines the
    previous turn already showed come last (a follow-up hears what is new)."""
    step = request.step or StepSpec(title=request.task, action="answer")
    cited = [p for p in request.passages if p.chunk_id in step.citations]
    pool = cited or _relevant(request.passages)[:2]
    direct = step.title == DIRECT_STEP
    focus = _stems(request.task) | (set() if direct else _stems(step.title))
    target = task_service(_conversation(request))
    candidates = [
        (
            _seen(adapted, request.prior) and not _asked(line, request.task),
            -len(focus & _stems(line)) - (_urgency(line, request.task) if direct else 0),
            index,
            position,
            adapted,
            p.chunk_id,
        )
        for index, p in enumerate(pool)
        for position, line in enumerate(_lines(p.text))
        for adapted in [adapt_line(line, target)]
    ]
    best = sorted(candidates)[:MAX_LINES]
    if direct:  # the best line of each cited passage: act, and check, in one glance; what
        # answers the question beats what is new ("what should I check first?")
        ranked = sorted(candidates, key=lambda c: (c[1], c[0], c[2], c[3]))
        best = _one_each(ranked, len(pool)) or ranked[:1]
    else:
        best.sort(key=lambda c: (c[2], c[3]))
    return "\n".join(f"- {c[4]} [{c[5]}]" for c in best)


def _urgency(line: str, task: str) -> float:
    """What makes a line the one to act on first: a command to run, and for a regression
    after a deploy, undoing it (the reviewer asks for the rollback too)."""
    undo = 2.0 if is_regression(task) and _UNDO.search(line) else 0.0
    return undo + (2.0 if _asked(line, task) else 0.0) + (0.5 if "`" in line else 0.0)


def _one_each(ranked: list[Any], sources: int) -> list[Any]:
    """The best-ranked line of each source passage that matches the task: a shared word,
    or the undo or tool action it asks for."""
    picked: dict[int, Any] = {}
    for c in ranked:
        if c[1] <= -1:
            picked.setdefault(c[2], c)
    return sorted(picked.values(), key=ranked.index)[: min(sources, MAX_DIRECT_LINES)]


def _asked(line: str, task: str) -> bool:
    """The line names a tool action the task asks for ("open a ticket for that")."""
    wanted = f" {task.lower()} "
    return any(
        phrase in line.lower() and any(i in wanted for i in intents)
        for _, phrase, intents in _TOOL_RULES
    )


def _seen(line: str, prior: str) -> bool:
    return bool(prior) and " ".join(line.split()) in " ".join(prior.split())


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
