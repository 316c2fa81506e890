"""`python -m copilot tools` and `tickets`: the mode and target of every tool, sandbox objects."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from copilot.cli import main
from copilot.config import Settings
from copilot.store import Store
from copilot.tools import Toolbox
from tests.conftest import CORPUS


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GITHUB_TOKEN", "JIRA_BASE_URL", "JIRA_API_TOKEN", "COPILOT_MCP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COPILOT_HOME", str(tmp_path))
    monkeypatch.setenv("COPILOT_CORPUS", str(CORPUS))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return tmp_path


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdin=io.StringIO(), stdout=out), out.getvalue()


def test_tools_lists_mode_and_target(home: Path):
    code, text = run("tools", "--json")
    rows = {r["name"]: r for r in json.loads(text)}
    assert code == 0
    assert rows["jira.create_issue"] == {
        "name": "jira.create_issue",
        "writes": True,
        "mode": "sandbox",
        "target": "sandbox:jira",
        "description": "open a Jira ticket",
    }
    code, text = run("tools")
    assert "github.create_pull_request     write sandbox sandbox:github" in text


def test_tickets_lists_what_the_sandbox_made(home: Path):
    settings = Settings(home=home)
    toolbox = Toolbox(settings, Store(settings.db_path))
    toolbox.call("jira.create_issue", {"summary": "checkout OOMKilled"}, key="k1")
    prepared = toolbox.prepare(
        "github.create_pull_request", {"title": "t"}, task="scale auth to 4 replicas"
    )
    toolbox.call("github.create_pull_request", prepared.args or {}, key="k2")
    code, text = run("tickets")
    assert code == 0
    assert "SANDBOX-1    To Do        checkout OOMKilled" in text
    assert "copilot/k2" in text
