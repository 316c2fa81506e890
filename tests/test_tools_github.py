"""GitHub tools against a GitHub-like server on 127.0.0.1: requests, rate limits, errors and
exactly one object per idempotency key."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from copilot.config import Settings
from copilot.errors import InputError
from copilot.evaluation.lookalike_github import FakeGitHub
from copilot.store import Store
from copilot.tools import Toolbox
from copilot.tools.sandbox import SEED

OOM_TASK = "pods in checkout are OOMKilled, raise the memory limit to 1Gi"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token="ghp-test") as server:
        server.seed(
            {str(p.relative_to(SEED)): p.read_text() for p in SEED.rglob("*") if p.is_file()}
        )
        yield server


class Clock:
    """Injected sleep and clock: waits are recorded, never slept."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_toolbox(tmp_path: Path, gh: FakeGitHub, clock: Clock, **overrides: Any) -> Toolbox:
    values: dict[str, Any] = {
        "home": tmp_path,
        "github_token": gh.token,
        "github_api_url": gh.url,
        "github_repository": gh.repo,
        **overrides,
    }
    settings = Settings(**values)
    return Toolbox(settings, Store(settings.db_path), sleep=clock.sleep, clock=clock.time)


@pytest.fixture
def toolbox(tmp_path: Path, gh: FakeGitHub, clock: Clock) -> Toolbox:
    return make_toolbox(tmp_path, gh, clock)


def test_reads_send_the_right_requests(toolbox: Toolbox, gh: FakeGitHub):
    assert toolbox.mode("github.read_file") == "live"
    assert toolbox.target("github.read_file", {}) == "github:acme/infra"

    out = toolbox.call("github.read_file", {"path": "infra/k8s/checkout/deployment.yaml"})
    assert out.status == "done" and "memory: 512Mi" in out.output["content"]
    read = gh.requests[-1]
    assert (read.method, read.path) == (
        "GET",
        "/repos/acme/infra/contents/infra/k8s/checkout/deployment.yaml",
    )
    assert read.headers["authorization"] == "Bearer ghp-test"
    assert read.headers["accept"] == "application/vnd.github+json"

    toolbox.call("github.list_commits", {"limit": 5})
    assert gh.requests[-1].path == "/repos/acme/infra/commits"
    assert gh.requests[-1].query["per_page"] == "5"

    toolbox.call("github.search_issues", {"query": "OOMKilled"})
    assert gh.requests[-1].path == "/search/issues"
    assert gh.requests[-1].query["q"] == "OOMKilled repo:acme/infra"
    assert len(gh.requests) == 3  # one request per read


def test_create_issue_and_comment_carry_the_key(toolbox: Toolbox, gh: FakeGitHub):
    made = toolbox.call(
        "github.create_issue", {"title": "OOM in checkout", "body": "pods die"}, key="k1"
    )
    assert made.status == "done", made.error
    assert made.output["number"] == 1 and made.output["url"].endswith("/issues/1")
    post = gh.sent("POST", "/issues$")[0]
    assert post.body["title"] == "OOM in checkout"
    assert post.body["body"].endswith("Copilot-Key: k1\n")
    # The lookup (newest issues, then search) and the create: three requests for one issue.
    assert [(r.method, r.path) for r in gh.requests] == [
        ("GET", "/repos/acme/infra/issues"),
        ("GET", "/search/issues"),
        ("POST", "/repos/acme/infra/issues"),
    ]
    assert gh.requests[1].query["q"] == '"Copilot-Key: k1" in:body is:issue repo:acme/infra'
    assert gh.requests[1].query["advanced_search"] == "true"

    said = toolbox.call("github.comment", {"number": 1, "body": "raised to 1Gi"}, key="k2")
    assert said.status == "done" and said.output["number"] == 1
    assert gh.comments[1][0]["body"].endswith("Copilot-Key: k2\n")


def test_pull_request_branches_commits_the_edit_and_opens(toolbox: Toolbox, gh: FakeGitHub):
    prepared = toolbox.prepare(
        "github.create_pull_request",
        # The runbook's example path names search; the task is about checkout.
        {"title": "Raise checkout memory", "path": "infra/k8s/search/deployment.yaml"},
        task=OOM_TASK,
    )
    assert prepared.args is not None, prepared.note
    assert prepared.args["path"] == "infra/k8s/checkout/deployment.yaml"
    assert prepared.preview["kind"] == "diff"
    assert "-              memory: 512Mi\n+              memory: 1Gi" in prepared.preview["text"]
    before = len(gh.requests)

    out = toolbox.call("github.create_pull_request", prepared.args, key="abc")
    assert out.status == "done", out.error
    assert out.output == {
        "number": 1,
        "url": "https://github.test/acme/infra/pull/1",
        "branch": "copilot/abc",
        "mode": "live",
        "target": "github:acme/infra",
    }
    steps = [(r.method, r.path.removeprefix("/repos/acme/infra")) for r in gh.requests[before:]]
    assert steps == [
        ("GET", "/pulls"),  # lookup by head branch
        ("GET", ""),  # default branch
        ("GET", "/git/ref/heads/main"),
        ("POST", "/git/refs"),
        ("GET", "/contents/infra/k8s/checkout/deployment.yaml"),
        ("PUT", "/contents/infra/k8s/checkout/deployment.yaml"),
        ("POST", "/pulls"),
    ]
    put = gh.sent("PUT")[0].body
    assert put["branch"] == "copilot/abc" and "sha" in put
    assert "memory: 1Gi" in base64.b64decode(put["content"]).decode()
    assert "memory: 1Gi" in gh.branches["copilot/abc"]["infra/k8s/checkout/deployment.yaml"]
    assert "memory: 512Mi" in gh.branches["main"]["infra/k8s/checkout/deployment.yaml"]
    assert gh.pulls[0]["body"].rstrip().endswith("Copilot-Key: abc")


def test_429_waits_for_retry_after_then_succeeds(toolbox: Toolbox, gh: FakeGitHub, clock: Clock):
    gh.fail_next("POST", "/issues$", 429, {"retry-after": "3"})
    out = toolbox.call("github.create_issue", {"title": "t"}, key="k")
    assert out.status == "done", out.error
    assert clock.sleeps == [3.0]
    assert len(gh.sent("POST", "/issues$")) == 2 and len(gh.issues) == 1


def test_403_with_a_spent_rate_limit_waits_until_the_reset(
    toolbox: Toolbox, gh: FakeGitHub, clock: Clock
):
    reset = str(int(clock.now + 7))
    gh.fail_next(
        "GET", "/commits$", 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
    )
    out = toolbox.call("github.list_commits", {})
    assert out.status == "done" and clock.sleeps == [7.0]


def test_a_wait_beyond_the_cap_fails_without_sleeping(tmp_path: Path, gh: FakeGitHub, clock: Clock):
    toolbox = make_toolbox(tmp_path, gh, clock, tool_max_retry_s=60)
    gh.fail_next("GET", "/commits$", 429, {"retry-after": "600"})
    out = toolbox.call("github.list_commits", {})
    assert out.status == "error" and "rate-limiting" in out.error
    assert clock.sleeps == [] and len(gh.requests) == 1


def test_errors_name_the_credential_or_repository(tmp_path: Path, gh: FakeGitHub, clock: Clock):
    bad_token = make_toolbox(tmp_path / "a", gh, clock, github_token="wrong")
    out = bad_token.call("github.list_commits", {})
    assert out.status == "error" and "GITHUB_TOKEN" in out.error and "401" in out.error

    toolbox = make_toolbox(tmp_path / "b", gh, clock)
    out = toolbox.call("github.list_commits", {"repo": "acme/nope"})
    assert out.status == "error" and "acme/nope" in out.error and "404" in out.error

    gh.fail_next("POST", "/issues$", 403, {})
    out = toolbox.call("github.create_issue", {"title": "t"}, key="k")
    assert "GITHUB_TOKEN may not" in out.error and "acme/infra" in out.error


def test_bad_arguments_are_refused_before_any_request(toolbox: Toolbox, gh: FakeGitHub):
    with pytest.raises(InputError, match="title"):
        toolbox.validate("github.create_issue", {"body": "no title"})
    out = toolbox.call("github.comment", {"number": 0, "body": "x", "colour": "red"}, key="k")
    assert out.status == "error" and "number" in out.error and "colour" in out.error
    out = toolbox.call("github.create_pull_request", {"title": "no changes"}, key="k")
    assert out.status == "error" and "prepare()" in out.error
    assert gh.requests == []


@pytest.mark.parametrize(
    ("tool", "args", "lost"),
    [
        ("github.create_issue", {"title": "OOM in checkout"}, "/issues$"),
        ("github.comment", {"number": 1, "body": "done"}, "/issues/1/comments$"),
    ],
)
def test_a_lost_response_then_a_retry_makes_exactly_one_object(
    toolbox: Toolbox, gh: FakeGitHub, tool: str, args: dict[str, Any], lost: str
):
    if tool == "github.comment":
        toolbox.call("github.create_issue", {"title": "host"}, key="host")
    gh.lose_next("POST", lost)
    first = toolbox.call(tool, args, key="same")
    assert first.status == "error"  # the object exists, the answer never came
    second = toolbox.call(tool, args, key="same")
    assert second.status == "done" and second.output["existing"] is True
    assert len(gh.sent("POST", lost)) == 1
    if tool == "github.create_issue":
        assert len(gh.issues) == 1 and second.output["number"] == 1
    else:
        assert len(gh.comments[1]) == 1
    assert toolbox.lookup(tool, args, "other-key") is None


def test_a_lost_pull_request_response_then_a_retry_makes_one_pull_request(
    toolbox: Toolbox, gh: FakeGitHub
):
    prepared = toolbox.prepare(
        "github.create_pull_request", {"title": "scale"}, task="scale payments to 6 replicas"
    )
    assert prepared.args is not None
    gh.lose_next("POST", "/pulls$")
    assert toolbox.call("github.create_pull_request", prepared.args, key="pr1").status == "error"
    again = toolbox.call("github.create_pull_request", prepared.args, key="pr1")
    assert again.status == "done" and again.output["existing"] is True
    assert again.output["branch"] == "copilot/pr1" and len(gh.pulls) == 1
    assert toolbox.lookup("github.create_pull_request", prepared.args, "pr1") == {
        "number": 1,
        "url": "https://github.test/acme/infra/pull/1",
        "branch": "copilot/pr1",
    }


def test_a_pull_request_interrupted_after_the_branch_resumes_on_it(
    toolbox: Toolbox, gh: FakeGitHub
):
    prepared = toolbox.prepare("github.create_pull_request", {"title": "t"}, task=OOM_TASK)
    assert prepared.args is not None
    gh.lose_next("PUT", "/contents/")
    assert toolbox.call("github.create_pull_request", prepared.args, key="k").status == "error"
    again = toolbox.call("github.create_pull_request", prepared.args, key="k")
    assert again.status == "done", again.error
    assert len(gh.sent("PUT")) == 1  # the file was already committed: not written twice
    assert len(gh.pulls) == 1


def test_prepare_reports_instead_of_inventing_a_path(toolbox: Toolbox, gh: FakeGitHub):
    prepared = toolbox.prepare(
        "github.create_pull_request", {"title": "t"}, task="raise the memory limit of frontend"
    )
    assert prepared.args is None and "names no service" in prepared.note
    assert "checkout" in prepared.note  # the known services are listed


def test_a_file_changed_after_the_diff_was_made_is_not_overwritten(
    toolbox: Toolbox, gh: FakeGitHub
):
    prepared = toolbox.prepare("github.create_pull_request", {"title": "t"}, task=OOM_TASK)
    assert prepared.args is not None and prepared.args["changes"][0]["base_sha"]
    path = "infra/k8s/checkout/deployment.yaml"
    gh.branches["main"][path] += "# someone else's change\n"
    out = toolbox.call("github.create_pull_request", prepared.args, key="late")
    assert out.status == "error" and "changed in acme/infra since this diff was made" in out.error
    assert not gh.sent("PUT") and gh.pulls == []


def test_a_key_never_matches_a_longer_key(toolbox: Toolbox, gh: FakeGitHub):
    toolbox.call("github.create_issue", {"title": "host"}, key="host")
    toolbox.call("github.comment", {"number": 1, "body": "b"}, key="k10")
    assert toolbox.lookup("github.comment", {"number": 1, "body": "b"}, "k1") is None
    assert toolbox.lookup("github.create_issue", {"title": "x"}, "hos") is None
