"""The bench suite: tasks with their expectations, one JSON object per line of
`bench/suite/tasks.jsonl`, checked when loaded so a typo stops the run with its line number.

Kinds and what each expects (fields beyond id, kind, task):
  ordinary    runbook (file name), section (optional heading word)
  write       runbook, approver: approve | reject | edit (+ edit: {arg: value})
  injection   injection: a name for the attack; runbook optional. Nothing may change
              without a person's approval (the scripted approver rejects it)
  budget      limit_usd (per run), action: fallback | stop
  uncovered   nothing: the answer must say no runbook covers it
  follow_up   first (the task before, same conversation), runbook and/or not_runbook
`quick: true` marks the tasks of the quick suite (every kind, about a third of the tasks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from copilot.errors import InputError

SUITE_DIR = Path(__file__).resolve().parents[2] / "bench" / "suite"
TASKS = SUITE_DIR / "tasks.jsonl"
POISONED = SUITE_DIR / "poisoned"
SUITES = ("quick", "full")
KINDS = ("ordinary", "write", "injection", "budget", "uncovered", "follow_up")
DECISIONS = ("approve", "reject", "edit")
BUDGET_ACTIONS = ("fallback", "stop")


@dataclass(frozen=True)
class Task:
    id: str
    kind: str
    task: str
    runbook: str = ""
    section: str = ""
    approver: str = "reject"
    edit: dict[str, Any] = field(default_factory=dict)
    injection: str = ""
    limit_usd: float = 0.0
    action: str = ""
    first: str = ""
    not_runbook: str = ""
    quick: bool = False


_REQUIRED = {
    "ordinary": ("runbook",),
    "write": ("runbook", "approver"),
    "injection": ("injection",),
    "budget": ("limit_usd", "action"),
    "uncovered": (),
    "follow_up": ("first",),
}
_FIELDS = set(Task.__dataclass_fields__)


def parse(line: str, where: str) -> Task:
    """One task from one JSON line; InputError says which line and what to fix."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON ({exc.msg}); one JSON object per line.") from None
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise InputError(
            f"{where}: unknown field(s) {', '.join(unknown)}; see copilot.evaluation.suite."
        )
    for name in ("id", "kind", "task"):
        if not str(raw.get(name) or "").strip():
            raise InputError(f"{where}: {name!r} is missing or empty.")
    kind = raw["kind"]
    if kind not in KINDS:
        raise InputError(f"{where}: kind {kind!r} is not known; use one of {', '.join(KINDS)}.")
    missing = [n for n in _REQUIRED[kind] if raw.get(n) in (None, "")]
    if kind == "follow_up" and not (raw.get("runbook") or raw.get("not_runbook")):
        missing.append("runbook or not_runbook")
    if missing:
        raise InputError(f"{where}: a {kind} task needs {', '.join(missing)}.")
    if kind == "write" and raw["approver"] not in DECISIONS:
        raise InputError(f"{where}: approver must be one of {', '.join(DECISIONS)}.")
    if raw.get("approver") == "edit" and not raw.get("edit"):
        raise InputError(f"{where}: approver 'edit' needs 'edit': {{argument: new value}}.")
    if kind == "budget" and raw["action"] not in BUDGET_ACTIONS:
        raise InputError(f"{where}: action must be one of {', '.join(BUDGET_ACTIONS)}.")
    return Task(**raw)


def load(path: Path = TASKS, suite: str = "full", limit: int | None = None) -> list[Task]:
    """The tasks of `suite` (quick or full), at most `limit` of them, spread over the kinds."""
    if suite not in SUITES:
        raise InputError(f"suite {suite!r} is not known; use one of {', '.join(SUITES)}.")
    if not path.is_file():
        raise InputError(f"{path} does not exist; the suite lives in bench/suite/tasks.jsonl.")
    tasks: list[Task] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        task = parse(line, f"{path.name} line {number}")
        if task.id in seen:
            raise InputError(f"{path.name} line {number}: id {task.id!r} is used twice.")
        seen.add(task.id)
        tasks.append(task)
    chosen = [t for t in tasks if t.quick] if suite == "quick" else tasks
    return chosen if limit is None else spread(chosen, limit)


def spread(tasks: list[Task], limit: int) -> list[Task]:
    """The first `limit` tasks taking one of each kind in turn, so a tiny run covers them."""
    if limit < 1:
        raise InputError(f"--tasks must be at least 1, not {limit}.")
    queues = {k: [t for t in tasks if t.kind == k] for k in KINDS}
    picked: list[Task] = []
    while len(picked) < min(limit, len(tasks)):
        for kind in KINDS:
            if queues[kind] and len(picked) < limit:
                picked.append(queues[kind].pop(0))
    return picked
