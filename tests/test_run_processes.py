"""Runs across real processes: the state lives in the store, so a run started by one process
is approved, rejected, interrupted and resumed by others (python -m copilot subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from copilot.config import Settings
from copilot.evaluation.lookalike_jira import FakeJira
from tests.conftest import REPO
from tests.fake_openai import FakeOpenAI, Recorded, ok, slow

OOM = "Pods in checkout are OOMKilled; raise the memory limit and open a ticket"


def copilot_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_", "JIRA_"))}
    return env | {
        "COPILOT_HOME": str(settings.home),
        "COPILOT_CORPUS": str(settings.corpus),
        "COPILOT_AUTH": "none",
        "COPILOT_DATABASE_URL": settings.database_url,
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "copilot", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def cli_json(env: dict[str, str], *args: str) -> Any:
    done = cli(env, *args, "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll observable state, bounded; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def pending_ids(run: dict[str, Any]) -> dict[str, str]:
    return {s["tool"]: s["approval_id"] for s in run["plan"] if s["approval_id"]}


def test_a_paused_run_is_approved_and_rejected_by_other_processes(engine_settings: Settings):
    settings = engine_settings  # the DuckDB file, then PostgreSQL
    env = copilot_env(settings)
    started = cli_json(env, "run", OOM)  # process A pauses the run and exits
    assert started["status"] == "awaiting_approval"
    ids = pending_ids(started)
    approved = cli_json(env, "approve", ids["jira.create_issue"], "--user", "lead")
    assert approved["status"] == "approved" and approved["reference"].startswith("SANDBOX-1")
    assert approved["run"]["status"] == "awaiting_approval"
    rejected = cli(
        env, "reject", ids["github.create_pull_request"], "--user", "lead", "--reason", "CAB"
    )
    assert rejected.returncode == 0, rejected.stderr
    shown = cli_json(env, "runs", started["run_id"])
    assert shown["status"] == "completed"
    assert "SANDBOX-1" in shown["answer"] and "rejected by lead: CAB" in shown["answer"]
    assert [a["status"] for a in shown["approvals"]] == ["approved", "rejected"]


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(email="ops@acme.test", token="jira-tok", project="OPS") as server:
        yield server


def test_kill_9_while_an_approved_call_is_in_flight_then_resume_makes_it_once(
    engine_settings: Settings, jira: FakeJira
):
    settings = engine_settings  # the DuckDB file, then PostgreSQL
    env = copilot_env(
        settings,
        JIRA_BASE_URL=jira.url,
        JIRA_EMAIL="ops@acme.test",
        JIRA_API_TOKEN="jira-tok",
        JIRA_PROJECT="OPS",
        TOOL_TIMEOUT_S="600",
    )
    started = cli_json(env, "run", OOM)
    approval = pending_ids(started)["jira.create_issue"]
    jira.hang_next("POST", "/rest/api/3/issue$")  # the ticket is made; the answer never comes
    approver = subprocess.Popen(
        [sys.executable, "-m", "copilot", "approve", approval, "--user", "lead"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: len(jira.issues) == 1, "the ticket to reach Jira")
    approver.send_signal(signal.SIGKILL)
    approver.wait(timeout=30)

    listed = cli_json(env, "runs", "--status", "interrupted")  # this start sweeps
    assert [r["run_id"] for r in listed] == [started["run_id"]]
    resumed = cli_json(env, "runs", "resume", started["run_id"])
    key = next(iter(jira.issues))
    assert len(jira.issues) == 1 and len(jira.sent("POST", r"/rest/api/3/issue$")) == 1
    assert key in resumed["answer"]  # found by its idempotency label, recorded, not re-made
    assert resumed["status"] == "awaiting_approval"  # the pull request still waits
    shown = cli_json(env, "runs", started["run_id"])
    calls = [c for c in shown["tool_calls"] if c["tool"] == "jira.create_issue"]
    assert [c["status"] for c in calls] == ["done"] and calls[0]["idempotency_key"] == approval


def play_slowly(request: Recorded) -> Any:
    """An OpenAI-compatible model that plans and reviews at once but answers steps slowly."""
    system = request.message("system")
    if system.startswith("You are the planner"):
        steps = [
            {"title": "Diagnose the disk", "action": "answer", "citations": []},
            {"title": "Free space", "action": "answer", "citations": []},
        ]
        return ok(json.dumps({"steps": steps}))
    if system.startswith("You are the executor"):
        return slow(600)
    return ok(json.dumps({"verdict": "pass", "reasons": ["ok"]}))


def executing(server: FakeOpenAI) -> bool:
    return any(r.message("system").startswith("You are the executor") for r in server.requests)


def test_kill_9_mid_run_marks_it_interrupted_and_resume_completes_it(engine_settings: Settings):
    settings = engine_settings  # the DuckDB file, then PostgreSQL
    with FakeOpenAI(responder=play_slowly) as server:
        env = copilot_env(
            settings,
            LLM_PROVIDER="openai",
            OPENAI_API_KEY="sk-test-key-000000000000",
            OPENAI_BASE_URL=server.openai_url,
            LLM_TIMEOUT_S="600",
            LLM_MAX_RETRY_S="600",
        )
        runner = subprocess.Popen(
            [sys.executable, "-m", "copilot", "run", "Disk full on the postgres volume"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: executing(server), "the run to reach its answer steps")
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    stub = copilot_env(settings)  # the resuming process answers offline
    interrupted = cli_json(stub, "runs", "--status", "interrupted")
    assert len(interrupted) == 1
    run_id = interrupted[0]["run_id"]
    resumed = cli_json(stub, "runs", "resume", run_id)
    assert resumed["status"] == "completed"
    assert [s["status"] for s in resumed["plan"]] == ["done", "done"]
    again = cli(stub, "runs", "resume", run_id)
    assert again.returncode == 2 and "only interrupted runs resume" in again.stderr


def test_run_file_reports_a_bad_line_and_goes_on(settings: Settings, tmp_path: Path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "Disk full on the postgres volume\n"
        '{"task": ""}\n'
        '{"nope": 1}\n'
        '{"task": "Redis is evicting keys"}\n'
    )
    done = cli(copilot_env(settings), "run", "--file", str(tasks))
    assert done.returncode == 1
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r.get("status") for r in rows] == ["completed", None, None, "completed"]
    assert rows[1]["line"] == 2 and "empty" in rows[1]["error"]
    assert rows[2]["line"] == 3 and "line 3" in rows[2]["error"]
    assert "error: line 3" in done.stderr
