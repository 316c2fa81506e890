"""Planner -> executor -> reviewer: one governed run, recorded step by step.

`Copilot.run()` retrieves runbook passages for the task, asks the planner for steps, lets the
executor answer each step (or call a tool, as the policy allows), and lets the reviewer judge
the result. Each step is flushed to the store in one short transaction as soon as it ends, so
a crash leaves a truthful partial record with the run marked failed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from copilot import policy
from copilot.config import MAX_TASK_CHARS, Settings
from copilot.errors import BudgetExceeded, CopilotError, InputError
from copilot.guard import InjectionFlag, scan
from copilot.llm import Models, Passage, StepSpec, prompts
from copilot.llm.base import LLMRequest, cited_ids
from copilot.llm.pricing import PriceTable
from copilot.recorder import RunRecorder, StepRecord, usage_row
from copilot.retriever import Retriever, to_passage
from copilot.store import Store, utcnow
from copilot.tools import Sandbox, run_tool

log = logging.getLogger(__name__)


class RunHooks:
    """Progress callbacks; the default does nothing. The chat page draws live status here."""

    streams = False
    """True when the caller wants answer text piece by piece through on_text."""

    def on_step(self, agent: str, title: str, status: str) -> None:
        pass

    def on_text(self, position: int, delta: str) -> None:
        pass


@dataclass
class StepResult:
    position: int
    title: str
    action: str
    citations: list[str]
    answer: str = ""
    tool: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    status: str = "done"  # done, awaiting_approval, denied, error
    detail: str = ""
    approval_id: str | None = None
    result: dict[str, Any] | None = None


@dataclass
class RunResult:
    run_id: str
    task: str
    status: str
    provider: str
    model: str
    steps: list[StepResult]
    answer: str
    citations: list[dict[str, Any]]
    verdict: str
    reasons: list[str]
    injection_flags: list[str]
    cost_usd: float
    fallbacks: int = 0

    @property
    def summary(self) -> str:
        """One line a person reads first: how many steps, from which runbooks, what waits."""
        runbooks = sorted({c["source"] for c in self.citations})
        waiting = sum(1 for s in self.steps if s.status == "awaiting_approval")
        denied = sum(1 for s in self.steps if s.status == "denied")
        text = (
            f"{len(self.steps)} steps from {len(runbooks)} runbook"
            f"{'s' if len(runbooks) != 1 else ''} ({', '.join(runbooks)})."
        )
        if waiting:
            text += f" {waiting} action{'s' if waiting != 1 else ''} wait for approval."
        if denied:
            text += f" {denied} action{'s' if denied != 1 else ''} denied by policy."
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "task": self.task,
            "summary": self.summary,
            "provider": self.provider,
            "model": self.model,
            "plan": [s.__dict__ for s in self.steps],
            "answer": self.answer,
            "citations": self.citations,
            "review": {
                "verdict": self.verdict,
                "reasons": self.reasons,
                "injection_flags": self.injection_flags,
            },
            "cost_usd": self.cost_usd,
            "fallbacks": self.fallbacks,
        }


class Planner(Protocol):
    def __call__(self, task: str, passages: list[Passage]) -> list[StepSpec]: ...


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


class Copilot:
    """The in-process multi-agent runtime."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        retriever: Retriever,
        models: Models,
        prices: PriceTable | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.retriever = retriever
        self.models = models
        self.prices = prices or PriceTable.load()
        self.sandbox = Sandbox(settings.home)

    def run(
        self,
        task: str,
        *,
        user: str | None = None,
        session_id: str = "",
        history: list[str] | None = None,
        hooks: RunHooks | None = None,
    ) -> RunResult:
        task = validate_task(task)
        self.check_budget()
        hooks = hooks or RunHooks()
        user = user or self.settings.user
        run = _RunState(run_id=uuid.uuid4().hex[:12], task=task, user=user)
        rec = RunRecorder(self.store, run.run_id, user)
        rec.start(task, session_id, self.models.primary.name, self.models.primary.model)
        try:
            return self._run(run, rec, history or [], hooks)
        except BaseException as exc:
            try:
                rec.finish({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, None)
            except CopilotError:  # e.g. the DB is still locked: the first error is the news
                log.warning("could not mark run %s as failed", run.run_id, exc_info=True)
            raise

    def check_budget(self) -> None:
        if not self.settings.budget_usd or self.models.primary.name == "stub":
            return  # the offline provider costs nothing, so it stays available over budget
        spent = self.store.query(
            "SELECT coalesce(sum(cost_usd), 0) AS spent FROM llm_usage "
            "WHERE created_at >= date_trunc('day', ?::TIMESTAMP)",
            [utcnow()],
        )[0]["spent"]
        if spent >= self.settings.budget_usd:
            raise BudgetExceeded(
                f"Today's LLM spend ${spent:.4f} has reached COPILOT_BUDGET_USD="
                f"{self.settings.budget_usd}; raise the budget or switch to LLM_PROVIDER=stub."
            )

    def _run(
        self, run: _RunState, rec: RunRecorder, history: list[str], hooks: RunHooks
    ) -> RunResult:
        query = "\n".join([*history[-1:], run.task])  # a follow-up keeps its subject
        self._retrieve(run, rec, query, hooks)
        specs = self._plan(run, rec, hooks)
        for position, spec in enumerate(specs, start=1):
            self._execute(run, rec, position, spec, hooks)
        return self._review(run, rec, hooks)

    # retriever ----------------------------------------------------------------------------
    def _retrieve(self, run: _RunState, rec: RunRecorder, query: str, hooks: RunHooks) -> None:
        hooks.on_step("retriever", "Searching the runbooks", "running")
        # The planner sees twice the usual passages so it can cover every stage of a runbook.
        hits = self.retriever.search(query, self.settings.top_k * 2)
        run.passages = {h.chunk.chunk_id: to_passage(h) for h in hits}
        run.flags += scan(run.task, "task")
        for p in run.passages.values():
            run.flags += scan(p.text, f"passage {p.chunk_id}")
        step = StepRecord(
            "retriever",
            "Search the runbooks",
            output={"hits": [h.as_dict() | {"text": h.chunk.text[:300]} for h in hits]},
        )
        step.audit(
            "retriever",
            "retriever.search",
            f"top {len(hits)} passages by cosine similarity to the task",
            chunk_ids=list(run.passages),
            flags=[f.describe() for f in run.flags],
        )
        rec.flush(step)
        hooks.on_step("retriever", f"Found {len(hits)} runbook passages", "done")

    # planner ------------------------------------------------------------------------------
    def _plan(self, run: _RunState, rec: RunRecorder, hooks: RunHooks) -> list[StepSpec]:
        hooks.on_step("planner", "Planning the steps", "running")
        passages = list(run.passages.values())
        request = LLMRequest(
            "plan",
            run.task,
            passages,
            prompts.plan_messages(run.task, passages),
            schema=prompts.PLAN_SCHEMA,
        )
        step = StepRecord("planner", "Plan the steps")
        data = self._llm(run, step, request)
        specs = [
            StepSpec(
                title=str(s["title"]),
                action=str(s["action"]),
                tool=str(s.get("tool", "")),
                args=dict(s.get("args") or {}),
                citations=tuple(s.get("citations") or ()),
            )
            for s in data["steps"]
        ]
        step.output = {"steps": [s.__dict__ for s in specs]}
        step.audit(
            "planner",
            "planner.plan",
            f"planned {len(specs)} steps from the runbooks",
            steps=[s.title for s in specs],
        )
        rec.flush(step)
        hooks.on_step("planner", f"Planned {len(specs)} steps", "done")
        return specs

    # executor -----------------------------------------------------------------------------
    def _execute(
        self, run: _RunState, rec: RunRecorder, position: int, spec: StepSpec, hooks: RunHooks
    ) -> None:
        hooks.on_step("executor", f"Step {position}: {spec.title}", "running")
        step = StepRecord("executor", spec.title)
        if spec.action == "tool":
            result = self._tool_step(run, step, position, spec)
        else:
            result = self._answer_step(run, step, position, spec, hooks)
        step.status = result.status
        step.output = {k: v for k, v in result.__dict__.items() if k != "position"}
        rec.flush(step)
        run.steps.append(result)
        hooks.on_step("executor", f"Step {position}: {spec.title}", result.status)

    def _answer_step(
        self, run: _RunState, step: StepRecord, position: int, spec: StepSpec, hooks: RunHooks
    ) -> StepResult:
        hits = self.retriever.search(f"{spec.title}\n{run.task}", self.settings.top_k)
        step_passages = {h.chunk.chunk_id: to_passage(h) for h in hits}
        for cid in spec.citations:  # what the planner cited stays in view for the executor
            if cid in run.passages:
                step_passages.setdefault(cid, run.passages[cid])
        for p in step_passages.values():
            if p.chunk_id not in run.passages:
                run.flags += scan(p.text, f"passage {p.chunk_id}")
        run.passages.update(step_passages)
        passages = list(step_passages.values())
        request = LLMRequest(
            "execute",
            run.task,
            passages,
            prompts.execute_messages(run.task, spec, passages),
            step=spec,
        )
        stream = (lambda delta: hooks.on_text(position, delta)) if hooks.streams else None
        answer = str(self._llm(run, step, request, stream)["text"]).strip()
        cited = cited_ids(answer)
        run.step_retrieved[position] = set(step_passages)
        step.audit(
            "executor",
            "executor.answer",
            f"answered from {len(cited)} cited passages",
            citations=cited,
        )
        return StepResult(position, spec.title, "answer", cited, answer=answer)

    def _tool_step(
        self, run: _RunState, step: StepRecord, position: int, spec: StepSpec
    ) -> StepResult:
        decision = policy.decide(spec.tool, injection_suspected=bool(run.flags))
        result = StepResult(
            position,
            spec.title,
            "tool",
            list(spec.citations),
            tool=spec.tool,
            args=spec.args,
            detail=decision.reason,
        )
        step.audit(
            "policy",
            "policy.decide",
            decision.reason,
            tool=spec.tool,
            rule=decision.rule,
            allowed=decision.allowed,
            needs_approval=decision.needs_approval,
        )
        call = {
            "call_id": uuid.uuid4().hex,
            "run_id": run.run_id,
            "step": position,
            "tool": spec.tool,
            "action": spec.title,
            "args_json": json.dumps(spec.args),
            "result_json": None,
            "error": None,
            "approval_id": None,
            "latency_ms": None,
            "created_at": utcnow(),
        }
        if not decision.allowed:
            result.status = "denied"
        elif decision.needs_approval:
            result.status = "awaiting_approval"
            result.approval_id = call["approval_id"] = uuid.uuid4().hex[:10]
            step.add(
                "approvals",
                {
                    "approval_id": result.approval_id,
                    "run_id": run.run_id,
                    "step": position,
                    "tool": spec.tool,
                    "action": spec.title,
                    "args_json": json.dumps(spec.args),
                    "status": "pending",
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "requested_by": run.user,
                    "decided_by": None,
                    "decision_note": None,
                    "created_at": utcnow(),
                    "decided_at": None,
                },
            )
        else:
            outcome = run_tool(self.sandbox, spec.tool, spec.args)
            if outcome.output is not None:
                run.flags += scan(json.dumps(outcome.output), f"tool {spec.tool}")
            result.status, result.result = outcome.status, outcome.output
            call["error"], call["latency_ms"] = outcome.error, outcome.latency_ms
        call["status"] = result.status
        call["result_json"] = json.dumps(result.result) if result.result is not None else None
        step.add("tool_calls", call)
        return result

    # reviewer -----------------------------------------------------------------------------
    def _review(self, run: _RunState, rec: RunRecorder, hooks: RunHooks) -> RunResult:
        hooks.on_step("reviewer", "Reviewing citations and injection signals", "running")
        answer = compose_answer(run.steps)
        passages = list(run.passages.values())
        request = LLMRequest(
            "review",
            run.task,
            passages,
            prompts.review_messages(run.task, answer, passages),
            draft=answer,
            schema=prompts.REVIEW_SCHEMA,
        )
        step = StepRecord("reviewer", "Review the answer")
        model_view = self._llm(run, step, request)
        verdict, reasons = review_rules(run.steps, run.step_retrieved, run.flags)
        verdict = _worst(verdict, str(model_view.get("verdict", "pass")))
        reasons += [f"model reviewer: {r}" for r in model_view.get("reasons", [])]
        if verdict == "fail":  # the store rejects these requests when the run is closed
            for s in run.steps:
                if s.status == "awaiting_approval":
                    s.status, s.detail = "rejected", "rejected automatically: the review failed"
            answer = compose_answer(run.steps)
        step.output = {"verdict": verdict, "reasons": reasons}
        step.audit("reviewer", "reviewer.verdict", "; ".join(reasons), verdict=verdict)
        rec.flush(step)
        status = rec.finish(
            {
                "status": "completed",
                "answer": answer,
                "verdict": verdict,
                "cost_usd": run.cost,
                "plan_json": json.dumps([s.__dict__ for s in run.steps], default=str),
            },
            {
                "run_id": run.run_id,
                "verdict": verdict,
                "reasons_json": json.dumps(reasons),
                "injection_flags": len(run.flags),
                "created_at": utcnow(),
            },
        )
        hooks.on_step("reviewer", f"Verdict: {verdict}", "done")
        return self._result(run, status, answer, verdict, reasons)

    def _result(
        self, run: _RunState, status: str, answer: str, verdict: str, reasons: list[str]
    ) -> RunResult:
        cited = sorted({c for s in run.steps for c in s.citations if c in run.passages})
        citations = [
            {
                "chunk_id": c,
                "source": run.passages[c].source,
                "heading": run.passages[c].heading,
                "snippet": run.passages[c].text[:400],
                "score": round(run.passages[c].score, 4),
            }
            for c in cited
        ]
        return RunResult(
            run.run_id,
            run.task,
            status,
            self.models.primary.name,
            self.models.primary.model,
            run.steps,
            answer,
            citations,
            verdict,
            reasons,
            [f.describe() for f in run.flags],
            round(run.cost, 6),
            run.fallbacks,
        )

    # LLM bookkeeping ----------------------------------------------------------------------
    def _llm(
        self,
        run: _RunState,
        step: StepRecord,
        request: LLMRequest,
        on_text: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        outcome = self.models.stream(request, on_text) if on_text else self.models.call(request)
        for note in outcome.notes:
            cost = self.prices.cost(note.response) if note.response else None
            run.cost += cost or 0.0
            step.add(
                "llm_usage",
                usage_row(
                    note.response,
                    run_id=run.run_id,
                    user=run.user,
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
                step.audit(
                    "runtime",
                    "llm.failed",
                    note.error or note.status,
                    provider=note.provider,
                    model=note.model,
                    error_class=note.error_class,
                    attempts=note.attempts,
                )
        if outcome.fell_back:
            run.fallbacks += 1
            step.audit(
                "runtime",
                "llm.fallback",
                f"{self.models.primary.name} failed; the offline provider answered "
                f"this {request.purpose} step instead",
                purpose=request.purpose,
            )
        return outcome.data


@dataclass
class _RunState:
    run_id: str
    task: str
    user: str
    passages: dict[str, Passage] = field(default_factory=dict)
    step_retrieved: dict[int, set[str]] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    flags: list[InjectionFlag] = field(default_factory=list)
    cost: float = 0.0
    fallbacks: int = 0


def compose_answer(steps: list[StepResult]) -> str:
    """The answer shown to the analyst: each step with its cited lines or its tool status."""
    parts = []
    for s in steps:
        if s.action == "answer":
            parts.append(f"**{s.position}. {s.title}**\n{s.answer}")
        else:
            cite = f" [{s.citations[0]}]" if s.citations else ""
            state = {
                "awaiting_approval": "waiting for approval",
                "denied": "denied by policy",
                "error": "failed",
                "rejected": "rejected",
                "done": "done",
            }.get(s.status, s.status)
            parts.append(f"**{s.position}. {s.title}**\n- `{s.tool}` - {state}: {s.detail}{cite}")
    return "\n\n".join(parts)


def review_rules(
    steps: list[StepResult], retrieved: dict[int, set[str]], flags: list[InjectionFlag]
) -> tuple[str, list[str]]:
    """Reviewer v1: answer steps cite what was retrieved for them; injection fails the run."""
    reasons: list[str] = []
    failed = False
    for s in steps:
        if s.action != "answer":
            continue
        real = [c for c in s.citations if c in retrieved.get(s.position, set())]
        if not real:
            failed = True
            reasons.append(f"step {s.position} cites no passage retrieved for it")
    if flags:
        failed = True
        reasons += [f.describe() for f in flags[:5]]
    if not failed:
        answered = sum(1 for s in steps if s.action == "answer")
        reasons.append(
            f"all {answered} answer steps cite passages retrieved for them; no injection signals"
        )
    return ("fail" if failed else "pass"), reasons


_RANK = {"pass": 0, "warn": 1, "fail": 2}


def _worst(a: str, b: str) -> str:
    return max(a, b, key=lambda v: _RANK.get(v, 2))
