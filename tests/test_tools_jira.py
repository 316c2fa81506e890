"""Jira tools against a Jira-Cloud-like server on 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from copilot.config import Settings
from copilot.errors import ConfigError, InputError
from copilot.evaluation.lookalike_jira import FakeJira
from copilot.store import Store
from copilot.tools import Toolbox
from tests.test_tools_github import Clock


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(email="ops@acme.test", token="jira-tok", project="OPS") as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_toolbox(tmp_path: Path, jira: FakeJira, clock: Clock, **overrides: Any) -> Toolbox:
    values: dict[str, Any] = {
        "home": tmp_path,
        "jira_base_url": jira.url,
        "jira_email": "ops@acme.test",
        "jira_api_token": "jira-tok",
        "jira_project": "OPS",
        **overrides,
    }
    settings = Settings(**values)
    return Toolbox(settings, Store(settings.db_path), sleep=clock.sleep, clock=clock.time)


@pytest.fixture
def toolbox(tmp_path: Path, jira: FakeJira, clock: Clock) -> Toolbox:
    return make_toolbox(tmp_path, jira, clock)


def create(toolbox: Toolbox, key: str = "k1", **args: Any) -> Any:
    fields = {
        "summary": "checkout pods OOMKilled",
        "description": "Raise the limit.\n\nSee runbook.",
    }
    return toolbox.call("jira.create_issue", {**fields, **args}, key=key)


def test_create_issue_sends_adf_labels_and_basic_auth(toolbox: Toolbox, jira: FakeJira):
    assert toolbox.mode("jira.create_issue") == "live"
    assert toolbox.target("jira.create_issue", {}) == "jira:OPS"
    out = create(toolbox, key="appr-1", labels=["oom"])
    assert out.status == "done", out.error
    assert out.output["key"] == "OPS-1" and out.output["url"] == f"{jira.url}/browse/OPS-1"
    search, post = jira.requests
    assert (search.method, search.path) == ("POST", "/rest/api/3/search/jql")
    assert search.body["jql"] == 'labels = "copilot-appr-1"'  # the lookup before the create
    assert (post.method, post.path) == ("POST", "/rest/api/3/issue")
    expected = base64.b64encode(b"ops@acme.test:jira-tok").decode()
    assert post.headers["authorization"] == f"Basic {expected}"
    fields = post.body["fields"]
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Task"}
    assert fields["labels"] == ["oom", "copilot-appr-1"]
    assert fields["description"]["type"] == "doc"
    assert [p["content"][0]["text"] for p in fields["description"]["content"]] == [
        "Raise the limit.",
        "See runbook.",
    ]


def test_search_get_comment_and_transition(toolbox: Toolbox, jira: FakeJira):
    create(toolbox)
    found = toolbox.call("jira.search", {"query": "OOMKilled"})
    assert found.status == "done" and [i["key"] for i in found.output["issues"]] == ["OPS-1"]
    assert (
        jira.requests[-1].body["jql"]
        == 'project = "OPS" AND text ~ "OOMKilled" ORDER BY created DESC'
    )

    got = toolbox.call("jira.get_issue", {"issue": "OPS-1"})
    assert got.output["summary"] == "checkout pods OOMKilled" and got.output["status"] == "To Do"
    assert got.output["description"] == "Raise the limit.\n\nSee runbook."

    said = toolbox.call("jira.comment", {"issue": "OPS-1", "body": "limit raised"}, key="c1")
    assert said.status == "done" and said.output["key"] == "OPS-1"
    assert jira.comment_texts("OPS-1") == ["limit raised Copilot-Key: c1"]

    moved = toolbox.call("jira.transition", {"issue": "OPS-1", "transition": "done"}, key="t1")
    assert moved.status == "done" and moved.output["status"] == "Done"
    assert jira.requests[-1].body == {"transition": {"id": "31"}}
    # Asked again (a retry): the ticket is already Done, nothing is sent but the lookup.
    before = len(jira.requests)
    again = toolbox.call("jira.transition", {"issue": "OPS-1", "transition": "Done"}, key="t1")
    assert again.output["existing"] is True and len(jira.requests) == before + 1
    unknown = toolbox.call("jira.transition", {"issue": "OPS-1", "transition": "Shipped"}, key="t2")
    assert unknown.status == "error" and "To Do, In Progress, Done" in unknown.error


def test_429_waits_for_retry_after(toolbox: Toolbox, jira: FakeJira, clock: Clock):
    jira.fail_next("POST", "/rest/api/3/issue$", 429, {"Retry-After": "5"})
    out = create(toolbox)
    assert out.status == "done" and clock.sleeps == [5.0] and len(jira.issues) == 1


def test_repeated_429s_stop_at_the_attempt_cap(toolbox: Toolbox, jira: FakeJira, clock: Clock):
    for _ in range(4):
        jira.fail_next("POST", "/search/jql$", 429, {"Retry-After": "1"})
    out = toolbox.call("jira.search", {"query": "x"})
    assert out.status == "error" and "4 attempts" in out.error
    assert clock.sleeps == [1.0, 1.0, 1.0] and len(jira.requests) == 4


def test_a_lost_create_then_a_retry_makes_exactly_one_ticket(toolbox: Toolbox, jira: FakeJira):
    jira.lose_next("POST", "/rest/api/3/issue$")
    first = create(toolbox, key="appr-9")
    assert first.status == "error" and len(jira.issues) == 1  # made, but the answer was lost
    second = create(toolbox, key="appr-9")
    assert second.status == "done" and second.output["existing"] is True
    assert second.output["key"] == "OPS-1" and len(jira.issues) == 1
    assert toolbox.lookup("jira.create_issue", {"summary": "s"}, "appr-9") == {
        "key": "OPS-1",
        "url": f"{jira.url}/browse/OPS-1",
    }
    assert create(toolbox, key="appr-10").output["key"] == "OPS-2"  # a new key, a new ticket


def test_a_lost_comment_then_a_retry_makes_one_comment(toolbox: Toolbox, jira: FakeJira):
    create(toolbox)
    jira.lose_next("POST", "/comment$")
    args = {"issue": "OPS-1", "body": "done"}
    assert toolbox.call("jira.comment", args, key="c").status == "error"
    assert toolbox.call("jira.comment", args, key="c").output["existing"] is True
    assert len(jira.comment_texts("OPS-1")) == 1


def test_errors_name_the_credential_or_project(tmp_path: Path, jira: FakeJira, clock: Clock):
    wrong = make_toolbox(tmp_path / "a", jira, clock, jira_api_token="nope")
    out = wrong.call("jira.search", {"query": "x"})
    assert out.status == "error" and "JIRA_EMAIL / JIRA_API_TOKEN" in out.error

    toolbox = make_toolbox(tmp_path / "b", jira, clock)
    out = create(toolbox, project="NOPE")
    assert out.status == "error" and "404" in out.error and "JIRA_PROJECT" in out.error
    assert toolbox.target("jira.create_issue", {"project": "NOPE"}) == "jira:NOPE"
    out = toolbox.call("jira.get_issue", {"issue": "OPS-77"})
    assert out.status == "error" and "OPS-77" in out.error


def test_bad_arguments_are_refused_before_any_request(toolbox: Toolbox, jira: FakeJira):
    with pytest.raises(InputError, match="issue"):
        toolbox.validate("jira.comment", {"issue": "not a key", "body": "x"})
    assert toolbox.call("jira.create_issue", {"summary": ""}, key="k").status == "error"
    assert toolbox.call("jira.search", {"max_results": 500}).status == "error"
    assert jira.requests == []


def test_half_configured_jira_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="JIRA_API_TOKEN"):
        Settings(home=tmp_path, jira_base_url="https://acme.atlassian.net", jira_email="a@b.c")
    loaded = Settings.load(
        environ={
            "JIRA_BASE_URL": "https://acme.atlassian.net",
            "JIRA_EMAIL": "a@b.c",
            "JIRA_API_TOKEN": "secret-token",
            "GITHUB_TOKEN": "ghp-abc",
            "GITHUB_REPOSITORY": "acme/infra",
        },
        dotenv=None,
    )
    assert loaded.jira_project == "OPS" and loaded.github_repository == "acme/infra"
    assert {"secret-token", "ghp-abc"} <= set(loaded.secret_values())
    assert "secret-token" not in repr(loaded) and "ghp-abc" not in repr(loaded)


def test_every_request_has_a_timeout_and_a_slow_create_is_found_on_retry(
    tmp_path: Path, jira: FakeJira, clock: Clock
):
    toolbox = make_toolbox(tmp_path, jira, clock, tool_timeout_s=0.3)
    jira.hang_next("POST", "/rest/api/3/issue$")
    first = create(toolbox, key="slow")
    assert first.status == "error" and "timed out" in first.error
    jira.release.set()
    second = create(toolbox, key="slow")
    assert second.status == "done" and second.output["existing"] is True
    assert len(jira.issues) == 1


def test_a_comment_key_never_matches_a_longer_key(toolbox: Toolbox, jira: FakeJira):
    create(toolbox)
    toolbox.call("jira.comment", {"issue": "OPS-1", "body": "b"}, key="c10")
    assert toolbox.lookup("jira.comment", {"issue": "OPS-1", "body": "b"}, "c1") is None
    assert toolbox.lookup("jira.comment", {"issue": "OPS-1", "body": "b"}, "c10") is not None
