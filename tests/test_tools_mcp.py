"""MCP servers over stdio: their tools join the registry; our config decides what writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from copilot.config import Settings
from copilot.errors import ConfigError, InputError
from copilot.store import Store
from copilot.tools import Toolbox
from copilot.tools.mcp import load_servers

SERVER = Path(__file__).resolve().parent / "mcp_server.py"


def write_config(tmp_path: Path, notes: Path, *, command: str = sys.executable) -> Path:
    config = tmp_path / "mcp.toml"
    config.write_text(
        "[servers.notes]\n"
        f"command = {json.dumps(command)}\n"
        f"args = [{json.dumps(str(SERVER))}]\n"
        f"env = {{ NOTES_FILE = {json.dumps(str(notes))} }}\n"
        'read_only_tools = ["search_notes"]\n'
    )
    return config


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory: pytest.TempPathFactory) -> Toolbox:
    tmp_path = tmp_path_factory.mktemp("mcp")
    settings = Settings(home=tmp_path, mcp_servers=str(write_config(tmp_path, tmp_path / "n.json")))
    return Toolbox(settings, Store(settings.db_path))


def test_tools_join_the_registry_and_only_our_config_says_read_only(toolbox: Toolbox):
    names = {s.name: s for s in toolbox.specs()}
    assert {"mcp.notes.search_notes", "mcp.notes.add_note", "jira.create_issue"} <= set(names)
    assert names["mcp.notes.search_notes"].writes is False
    add = names["mcp.notes.add_note"]
    assert add.writes is True  # the server's read-only annotation is a hint only
    assert "hint only" in add.description
    assert toolbox.mode("mcp.notes.add_note") == "live"
    assert toolbox.target("mcp.notes.add_note", {}) == "mcp:notes"
    assert "mcp.notes.add_note" in toolbox.planner_doc()
    assert (
        toolbox.prepare("mcp.notes.add_note", {"title": "t"}, task="").preview["kind"] == "fields"
    )


def test_calls_go_over_stdio(toolbox: Toolbox):
    made = toolbox.call("mcp.notes.add_note", {"title": "checkout OOM", "body": "raised"}, key="k")
    assert made.status == "done", made.error
    assert made.output["structured"] == {"id": "1", "title": "checkout OOM"}
    assert made.output["target"] == "mcp:notes"
    found = toolbox.call("mcp.notes.search_notes", {"text": "oom"})
    assert found.status == "done" and "checkout OOM" in found.output["text"]
    log = toolbox.settings.home / "mcp" / "notes.log"
    assert log.is_file()  # the server's own logging, kept out of our output
    failed = toolbox.call("mcp.notes.fail", {"reason": "disk on fire"}, key="f")
    assert failed.status == "error" and "disk on fire" in failed.error


def test_bad_arguments_are_refused_before_the_server_is_called(toolbox: Toolbox):
    with pytest.raises(InputError, match="title"):
        toolbox.validate("mcp.notes.add_note", {"body": "no title"})
    with pytest.raises(InputError, match="sql: Extra inputs"):
        toolbox.validate("mcp.notes.search_notes", {"text": "x", "sql": "drop"})


def test_a_server_that_cannot_start_is_reported_not_fatal(tmp_path: Path):
    config = write_config(tmp_path, tmp_path / "n.json", command="/nonexistent/mcp-server")
    settings = Settings(home=tmp_path, mcp_servers=str(config))
    toolbox = Toolbox(settings, Store(settings.db_path))
    assert "jira.create_issue" in {s.name for s in toolbox.specs()}
    assert "notes" in toolbox.mcp_errors


def test_bad_config_files_say_what_is_wrong(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_servers(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"servers": {"bad name!": {"command": "x"}}}')
    with pytest.raises(ConfigError, match="bad name!"):
        load_servers(broken)
    ok = tmp_path / "ok.json"
    ok.write_text('{"mcpServers": {"n": {"command": "x", "read_only_tools": ["a"]}}}')
    assert load_servers(ok)[0].read_only_tools == frozenset({"a"})
