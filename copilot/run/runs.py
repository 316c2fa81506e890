"""Reading runs back: lists, one run in full, and the shapes the CLI prints."""

from __future__ import annotations

import json
from typing import Any

from copilot.errors import InputError, NotFound
from copilot.run.state import RunState, RunStatus, StepState
from copilot.run.view import as_dict, reference
from copilot.store import Store

STATUSES = tuple(s.value for s in RunStatus)


def list_runs(
    store: Store, *, status: str | None = None, user: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    where, params = [], []
    if status:
        where.append("status = ?")
        params.append(status)
    if user:
        where.append("user_name = ?")
        params.append(user)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return store.query(
        "SELECT run_id, status, user_name, task, provider, model, verdict, cost_usd, "
        f"created_at, finished_at FROM runs {clause} ORDER BY created_at DESC LIMIT ?",
        [*params, limit],
    )


def show(store: Store, run_id: str) -> dict[str, Any]:
    """One run in full: its state as JSON, plus approvals and tool calls from the store."""
    found = store.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
    if not found:
        raise NotFound(f"No run has id {run_id!r}; list runs with `python -m copilot runs`.")
    row = found[0]
    if not row["state_json"]:
        raise NotFound(f"Run {run_id} was recorded before runs were saved; it has no detail.")
    state = RunState.from_json(row["state_json"])
    return as_dict(state) | {
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
        "user": row["user_name"],
        "approvals": [
            approval_json(a)
            for a in store.query("SELECT * FROM approvals WHERE run_id = ? ORDER BY step", [run_id])
        ],
        "tool_calls": store.query(
            "SELECT step, tool, status, idempotency_key, approval_id, result_json, error, "
            "latency_ms, created_at FROM tool_calls WHERE run_id = ? ORDER BY step, created_at",
            [run_id],
        ),
        "state_json": row["state_json"],
    }


def approval_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "approval_id": row["approval_id"],
        "run_id": row["run_id"],
        "step": row["step"],
        "tool": row["tool"],
        "target": row.get("target"),
        "args": json.loads(row["args_json"]),
        "args_digest": row.get("args_digest"),
        "status": row["status"],
        "requested_by": row["requested_by"],
        "decided_by": row["decided_by"],
        "decision_note": row["decision_note"],
        "created_at": row["created_at"],
        "expires_at": row.get("expires_at"),
        "rule": row["rule"],
        "reason": row["reason"],
    }


def format_approvals(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "Approvals: none"
    lines = ["Approvals:"]
    for a in rows:
        who = f" by {a['decided_by']}" if a["decided_by"] else ""
        note = f": {a['decision_note']}" if a["decision_note"] else ""
        lines.append(
            f"  - {a['approval_id']} step {a['step']} {a['tool']} {a['status']}{who}{note}"
        )
    return "\n".join(lines)


def decided_line(done: Any, step: StepState) -> str:
    text = f"{done.approval['approval_id']}: {done.status} by {step.decided_by}"
    if done.tool_error:
        return f"{text}; {step.tool} failed: {done.tool_error}"
    if ref := reference(step.result):
        return f"{text}; {step.tool} created {ref}"
    return text


def decided_json(done: Any) -> dict[str, Any]:
    step = done.state.step(int(done.approval["step"]))
    return {
        "approval_id": done.approval["approval_id"],
        "status": done.status,
        "decided_by": step.decided_by,
        "tool": step.tool,
        "tool_status": done.tool_status,
        "tool_error": done.tool_error,
        "result": step.result,
        "reference": reference(step.result),
        "run": {"run_id": done.state.run_id, "status": done.state.status},
    }


def task_of_line(line: str, number: int) -> str:
    """A task per line, or a JSON object with a 'task' field."""
    text = line.strip()
    if not text.startswith("{"):
        return text
    try:
        task = json.loads(text)["task"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise InputError(f'line {number} is not {{"task": "..."}} JSON') from None
    if not isinstance(task, str):
        raise InputError(f'line {number}: "task" must be a string')
    return task


def brief(state: RunState) -> dict[str, Any]:
    """One JSON line per run in batch mode."""
    return {
        "run_id": state.run_id,
        "status": state.status,
        "verdict": state.verdict,
        "steps": len(state.steps),
        "pending_approvals": [s.approval_id for s in state.pending()],
        "cost_usd": round(state.cost, 6),
        "task": state.task[:200],
    }


def one_line(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def conversations(store: Store, user: str, limit: int = 15) -> list[dict[str, Any]]:
    """A user's recent conversations (runs sharing a session id), newest first."""
    return store.query(
        "SELECT session_id, min(created_at) AS started_at, max(created_at) AS last_at, "
        "count(*) AS runs, arg_min(task, created_at) AS first_task FROM runs "
        "WHERE user_name = ? AND coalesce(session_id, '') <> '' GROUP BY session_id "
        "ORDER BY last_at DESC LIMIT ?",
        [user, limit],
    )


def conversation(store: Store, session_id: str, user: str) -> list[RunState]:
    """The runs of one conversation, oldest first, as saved (a paused run shows its wait)."""
    rows = store.query(
        "SELECT state_json FROM runs WHERE session_id = ? AND user_name = ? AND "
        "state_json IS NOT NULL ORDER BY created_at",
        [session_id, user],
    )
    return [RunState.from_json(r["state_json"]) for r in rows]


def status_of(store: Store, run_ids: list[str]) -> dict[str, str]:
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    rows = store.query(f"SELECT run_id, status FROM runs WHERE run_id IN ({marks})", run_ids)
    return {r["run_id"]: r["status"] for r in rows}
