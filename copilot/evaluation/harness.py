"""Runs each suite task through the real Services and run engine in one configuration, answers
its approval requests with the scripted approver, and records what happened: side effects seen
on the Jira look-alike and the sandbox, approvals, citations, line checks, cost, latency, LLM
calls and store writes. Metrics are computed from these records (copilot.evaluation.metrics).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from copilot.embeddings import get_embedder
from copilot.errors import BudgetExceeded, CopilotError
from copilot.evaluation.suite import Task
from copilot.evaluation.world import APPROVER, World
from copilot.llm import Models
from copilot.llm.stub import StubProvider
from copilot.run import grounding
from copilot.run.engine import Engine
from copilot.run.state import RunState, RunStatus
from copilot.run.view import citations
from copilot.service import Services

MAX_DECISIONS = 10  # a run asks for a handful of writes; more means something loops


class MeteredStub(StubProvider):
    """The offline provider's answers priced as gpt-4o-mini (by its token counts), so budget
    tasks can run out of money offline. Used for budget tasks only, when the provider is stub."""

    name = "offline-metered"
    model = "gpt-4o-mini"


@dataclass
class TaskResult:
    """One task in one configuration, as observed."""

    id: str
    kind: str
    config: str
    status: str = ""
    verdict: str = ""
    error: str = ""
    runbooks: list[str] = field(default_factory=list)
    """Runbooks the answer cites, best first."""
    sections: list[str] = field(default_factory=list)
    expected_runbook: str = ""
    expected_section: str = ""
    not_runbook: str = ""
    covered: bool = True
    admits_missing: bool = False
    approvals: int = 0
    """Approval requests the run made."""
    approved_writes: int = 0
    """Writes a person (the scripted approver) approved that then ran."""
    side_effects: int = 0
    """Changes seen on the Jira look-alike and in the sandbox (tickets, issues, branches)."""
    injection: str = ""
    injection_named: bool = False
    decision: str = ""
    budget_action: str = ""
    budget_outcome: str = ""
    """fallback, stop or none."""
    lines: int = 0
    unsupported_lines: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    llm_calls: int = 0
    store_writes: int = 0

    @property
    def unauthorized_writes(self) -> int:
        return max(0, self.side_effects - self.approved_writes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"unauthorized_writes": self.unauthorized_writes}


class Harness:
    """One configuration (governed or baseline) in one world, task after task."""

    def __init__(self, world: World, config: str, provider: str | None = None) -> None:
        self.world = world
        self.config = config
        self.provider = provider
        self.services = world.services(config)

    def run(self, tasks: list[Task]) -> list[TaskResult]:
        return [self.run_task(t) for t in tasks]

    def run_task(self, task: Task) -> TaskResult:
        services = self._services_for(task)
        engine = services.engine(self.provider, config=self.config, models=self._models(task))
        result = TaskResult(task.id, task.kind, self.config, expected_runbook=task.runbook)
        result.expected_section, result.not_runbook = task.section, task.not_runbook
        result.injection, result.budget_action = task.injection, task.action
        before_runs, before_effects = _run_ids(services), self._effects(services)
        writes = services.store.transactions
        started = time.perf_counter()
        state = self._drive(engine, task, result)
        result.latency_ms = (time.perf_counter() - started) * 1000
        result.store_writes = services.store.transactions - writes
        result.side_effects = self._effects(services) - before_effects
        self._record_usage(services, _run_ids(services) - before_runs, result)
        if state is not None:
            self._observe(state, result)
        return result

    # running ----------------------------------------------------------------------------
    def _services_for(self, task: Task) -> Services:
        if task.kind != "budget":
            return self.services
        return self.world.services(
            self.config, budget_run_usd=task.limit_usd, budget_action=task.action
        )

    def _models(self, task: Task) -> Models | None:
        provider = self.provider or self.world.provider
        return Models(MeteredStub()) if task.kind == "budget" and provider == "stub" else None

    def _drive(self, engine: Engine, task: Task, result: TaskResult) -> RunState | None:
        session = f"bench-{task.id}" if task.kind == "follow_up" else ""
        user = engine.ctx.settings.user
        try:
            if task.first:
                engine.start(task.first, user=user, session_id=session)
            state = engine.start(task.task, user=user, session_id=session)
            state = self._decide_all(engine, task, state, result)
        except BudgetExceeded as exc:
            result.status, result.error, result.budget_outcome = "failed", str(exc), "stop"
            return None
        except CopilotError as exc:
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            return None
        result.budget_outcome = "fallback" if state.fallbacks else "none"
        return state

    def _decide_all(
        self, engine: Engine, task: Task, state: RunState, result: TaskResult
    ) -> RunState:
        """The scripted approver: what the task expects for writes; a rejection for anything
        else (an injection task's writes, or a write nobody asked for)."""
        decision = task.approver if task.kind == "write" else "reject"
        result.decision = decision
        for _ in range(MAX_DECISIONS):
            pending = state.pending()
            if state.status != RunStatus.AWAITING_APPROVAL or not pending:
                break
            step = pending[0]
            result.approvals += 1
            edit = {k: v for k, v in task.edit.items() if k in step.args} or None
            state = engine.decide(
                step.approval_id or "",
                approve=decision != "reject",
                user=APPROVER,
                note=f"scripted approver: {decision} (bench task {task.id})",
                args=edit if decision == "edit" else None,
            ).state
        return state

    # observing --------------------------------------------------------------------------
    def _effects(self, services: Services) -> int:
        tools = services.tools
        sandbox = len(tools.sandbox_jira.recent(1000)) + len(tools.sandbox_issues.recent(1000))
        return self.world.jira_writes() + len(tools.repo.branches()) + sandbox

    def _record_usage(self, services: Services, run_ids: set[str], result: TaskResult) -> None:
        if not run_ids:
            return
        marks = ", ".join("?" * len(run_ids))
        ids = sorted(run_ids)
        usage = services.store.query(
            f"SELECT count(*) AS n, coalesce(sum(cost_usd), 0) AS cost FROM llm_usage "
            f"WHERE run_id IN ({marks})",
            ids,
        )[0]
        result.llm_calls, result.cost_usd = int(usage["n"]), float(usage["cost"])
        done = services.store.query(
            f"SELECT count(*) AS n FROM tool_calls c JOIN approvals a USING (approval_id) "
            f"WHERE c.run_id IN ({marks}) AND c.status = 'done' AND a.status = 'approved'",
            ids,
        )[0]
        result.approved_writes = int(done["n"])

    def _observe(self, state: RunState, result: TaskResult) -> None:
        result.status, result.verdict = str(state.status), state.verdict
        cited = citations(state)
        result.runbooks = list(dict.fromkeys(c["source"] for c in cited))
        result.sections = list(dict.fromkeys(c["heading"] for c in cited))
        result.covered = state.covered
        result.admits_missing = not state.covered and "No runbook covers" in state.answer
        result.injection_named = bool(state.flags or state.taint)
        checks = self._line_checks(state)
        lines = [c for c in checks if c["line"]]
        result.lines = len(lines)
        result.unsupported_lines = sum(1 for c in lines if c["status"] != "pass")

    def _line_checks(self, state: RunState) -> list[dict[str, Any]]:
        """The reviewer's line checks; made here when it is off (baseline), so both
        configurations are measured alike (the embedder keeps the runbook lines' vectors,
        so this costs the answer lines' encoding only)."""
        if state.line_checks:
            return state.line_checks
        made = grounding.check_answer(state, get_embedder(), self.world.corpus)
        return grounding.as_dicts(made)


def _run_ids(services: Services) -> set[str]:
    return {r["run_id"] for r in services.store.query("SELECT run_id FROM runs")}
