"""The sandbox (no credentials): a seeded git repository whose pull requests are branches with
real diffs, and Jira tickets / GitHub issues in the governance store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from copilot.config import Settings
from copilot.errors import InputError, ToolError
from copilot.store import Store
from copilot.tools import TOOLS, Toolbox
from copilot.tools.sandbox import SandboxRepo

OOM_TASK = "pods in checkout are OOMKilled, raise the memory limit to 1Gi and open a ticket"


@pytest.fixture
def toolbox(tmp_path: Path) -> Toolbox:
    settings = Settings(home=tmp_path)
    return Toolbox(settings, Store(settings.db_path))


def git(repo: Path, *argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *argv], capture_output=True, text=True, check=True
    ).stdout


def test_mode_and_target_without_credentials(toolbox: Toolbox):
    assert toolbox.mode("jira.create_issue") == "sandbox"
    assert toolbox.mode("github.create_pull_request") == "sandbox"
    assert toolbox.target("jira.create_issue", {"project": "OPS"}) == "sandbox:jira"
    assert toolbox.target("github.read_file", {}) == "sandbox:github"


def test_the_repository_is_seeded_with_the_corpus_services(toolbox: Toolbox, tmp_path: Path):
    out = toolbox.call("github.read_file", {"path": "infra/k8s/payments/deployment.yaml"})
    assert out.status == "done" and "replicas: 3" in out.output["content"]
    assert set(toolbox.repo.list_dir("infra/k8s")) >= {"checkout", "payments", "search", "orders"}
    assert (tmp_path / "sandbox_repo" / "flags" / "flags.yaml").is_file()
    commits = toolbox.call("github.list_commits", {}).output["commits"]
    assert [c["message"] for c in commits] == ["Seed the sandbox operations repository"]
    missing = toolbox.call("github.read_file", {"path": "nope.yaml"})
    assert missing.status == "error" and "does not exist" in missing.error


def test_a_pull_request_is_a_branch_whose_diff_is_the_edit(toolbox: Toolbox, tmp_path: Path):
    prepared = toolbox.prepare(
        "github.create_pull_request",
        {"title": "Raise checkout memory", "path": "infra/k8s/search/deployment.yaml"},
        task=OOM_TASK,
    )
    assert prepared.args is not None and prepared.note.startswith("checkout:")
    out = toolbox.call("github.create_pull_request", prepared.args, key="appr42")
    assert out.status == "done", out.error
    assert out.output["branch"] == "copilot/appr42"
    assert out.output["url"] == "sandbox://github/copilot/appr42"
    diff = out.output["diff"]
    assert "+++ b/infra/k8s/checkout/deployment.yaml" in diff
    assert "-              memory: 512Mi\n+              memory: 1Gi" in diff
    assert "search" not in diff
    repo = tmp_path / "sandbox_repo"
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert "memory: 512Mi" in (repo / "infra/k8s/checkout/deployment.yaml").read_text()
    message = git(repo, "log", "-1", "--format=%B", "copilot/appr42")
    assert "Copilot-Key: appr42" in message and "Change: checkout" in message
    assert out.output["commit"] == git(repo, "rev-parse", "--short", "copilot/appr42").strip()

    again = toolbox.call("github.create_pull_request", prepared.args, key="appr42")
    assert again.output["existing"] is True and again.output["commit"] == out.output["commit"]
    assert toolbox.repo.branches() == ["copilot/appr42"]


def test_two_pull_requests_from_main_do_not_stack(toolbox: Toolbox):
    first = toolbox.prepare("github.create_pull_request", {"title": "a"}, task=OOM_TASK)
    second = toolbox.prepare(
        "github.create_pull_request", {"title": "b"}, task="disable the new-search flag"
    )
    assert first.args and second.args
    a = toolbox.call("github.create_pull_request", first.args, key="a").output
    b = toolbox.call("github.create_pull_request", second.args, key="b").output
    assert "flags/flags.yaml" not in a["diff"] and "deployment.yaml" not in b["diff"]
    assert "-    enabled: true\n+    enabled: false" in b["diff"]


def test_jira_tickets_live_in_the_store(toolbox: Toolbox, tmp_path: Path):
    made = toolbox.call(
        "jira.create_issue", {"summary": "checkout OOMKilled", "description": "d"}, key="k1"
    )
    assert made.output["key"] == "SANDBOX-1" and made.output["url"] == "sandbox://jira/SANDBOX-1"
    second = toolbox.call("jira.create_issue", {"summary": "payments latency"}, key="k2")
    assert second.output["key"] == "SANDBOX-2"
    retry = toolbox.call("jira.create_issue", {"summary": "checkout OOMKilled"}, key="k1")
    assert retry.output["existing"] is True and retry.output["key"] == "SANDBOX-1"

    toolbox.call("jira.comment", {"issue": "SANDBOX-1", "body": "raised"}, key="c1")
    toolbox.call("jira.comment", {"issue": "SANDBOX-1", "body": "raised"}, key="c1")
    toolbox.call("jira.transition", {"issue": "SANDBOX-1", "transition": "done"})

    settings = Settings(home=tmp_path)  # another process: a new Toolbox on the same store
    fresh = Toolbox(settings, Store(settings.db_path))
    ticket = fresh.call("jira.get_issue", {"issue": "SANDBOX-1"}).output
    assert ticket["status"] == "Done" and len(ticket["comments"]) == 1
    assert ticket["labels"] == ["copilot-k1"]
    assert [t["key"] for t in fresh.sandbox_jira.recent()] == ["SANDBOX-2", "SANDBOX-1"]
    hits = fresh.call("jira.search", {"query": "checkout"}).output["issues"]
    assert [h["key"] for h in hits] == ["SANDBOX-1"]
    bad = fresh.call("jira.comment", {"issue": "SANDBOX-9", "body": "x"}, key="c9")
    assert bad.status == "error" and "SANDBOX-9" in bad.error


def test_github_issues_and_comments_in_the_sandbox(toolbox: Toolbox):
    made = toolbox.call("github.create_issue", {"title": "OOM", "body": "b"}, key="i1")
    assert made.output["number"] == 1 and made.output["url"] == "sandbox://github/1"
    assert toolbox.call("github.create_issue", {"title": "OOM"}, key="i1").output["existing"]
    said = toolbox.call("github.comment", {"number": 1, "body": "x"}, key="c1")
    assert said.status == "done" and said.output["comments"] == 1
    found = toolbox.call("github.search_issues", {"query": "OOM"}).output["issues"]
    assert [i["key"] for i in found] == ["#1"]


def test_secrets_in_ticket_fields_are_redacted_in_the_store(tmp_path: Path):
    settings = Settings(home=tmp_path, github_token="", jira_api_token="")
    from copilot.guard import Redactor

    store = Store(settings.db_path, redact=Redactor(["hunter2hunter2"]))
    toolbox = Toolbox(settings, store)
    toolbox.call("jira.create_issue", {"summary": "pw hunter2hunter2 leaked"}, key="s")
    rows = store.query("SELECT summary FROM sandbox_tickets")
    assert "hunter2hunter2" not in rows[0]["summary"]


def test_prepare_reports_a_missing_field_instead_of_guessing(toolbox: Toolbox):
    prepared = toolbox.prepare(
        "github.create_pull_request", {"title": "t"}, task="set the billing timeout to 5s"
    )
    assert prepared.args is None and "No config file for billing" in prepared.note
    prepared = toolbox.prepare(
        "github.create_pull_request", {"title": "t"}, task="disable the turbo-mode flag"
    )
    assert prepared.args is None and "turbo-mode" in prepared.note
    fields = toolbox.prepare("jira.create_issue", {"summary": "s", "description": "d"}, task="")
    assert fields.preview == {
        "kind": "fields",
        "text": "summary: s\ndescription: d\nissue_type: Task",
    }
    assert toolbox.prepare("jira.search", {"query": "x"}, task="").preview["kind"] == "none"


def test_concurrent_branches_from_two_toolboxes(tmp_path: Path):
    settings = Settings(home=tmp_path)
    boxes = [Toolbox(settings, Store(settings.db_path)) for _ in range(2)]
    tasks = ["scale payments to 6 replicas", "scale orders to 5 replicas"]
    prepared = [
        b.prepare("github.create_pull_request", {"title": t}, task=t)
        for b, t in zip(boxes, tasks, strict=True)
    ]
    outs = [
        b.call("github.create_pull_request", p.args or {}, key=f"k{i}")
        for i, (b, p) in enumerate(zip(boxes, prepared, strict=True))
    ]
    assert all(o.status == "done" for o in outs)
    assert SandboxRepo(tmp_path).branches() == ["copilot/k0", "copilot/k1"]


def test_unknown_tools_list_the_known_ones(toolbox: Toolbox):
    with pytest.raises(ToolError, match="jira.create_issue"):
        toolbox.spec("jira.delete_everything")
    out = toolbox.call("jira.delete_everything", {})
    assert out.status == "error" and "not a known tool" in out.error
    doc = toolbox.planner_doc()
    assert all(name in doc for name in TOOLS) and '"changes"' not in doc


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("github.read_file", {"path": "README.md", "ref": "--output=/tmp/x"}),
        ("github.read_file", {"path": "-p"}),
        ("github.read_file", {"path": "../../etc/passwd"}),
        ("github.read_file", {"path": "/etc/passwd"}),
        ("github.list_commits", {"path": "infra/../../x"}),
        (
            "github.create_pull_request",
            {"title": "t", "changes": [{"path": "../outside.yaml", "content": "x"}]},
        ),
    ],
)
def test_paths_and_refs_that_could_reach_gits_command_line_are_refused(
    toolbox: Toolbox, tool: str, args: dict
):
    with pytest.raises(InputError):
        toolbox.validate(tool, args)
    assert toolbox.validate("github.read_file", {"path": "infra/k8s/a..b.yaml", "ref": "main"})


def test_a_diff_made_against_an_older_main_is_refused(toolbox: Toolbox, tmp_path: Path):
    prepared = toolbox.prepare("github.create_pull_request", {"title": "t"}, task=OOM_TASK)
    assert prepared.args is not None
    repo = tmp_path / "sandbox_repo"
    manifest = repo / "infra/k8s/checkout/deployment.yaml"
    manifest.write_text(manifest.read_text() + "# hotfix\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-qam", "hotfix")
    out = toolbox.call("github.create_pull_request", prepared.args, key="late")
    assert out.status == "error" and "changed on main since this diff was made" in out.error
    assert toolbox.repo.branches() == []


def test_changes_brought_by_the_caller_get_the_real_diff_and_a_base(toolbox: Toolbox):
    current = toolbox.repo.read_file("config/search.toml")
    assert current is not None
    edited = current["content"].replace("max_results = 50", "max_results = 100")
    prepared = toolbox.prepare(
        "github.create_pull_request",
        {"title": "t", "changes": [{"path": "config/search.toml", "content": edited}]},
        task="",
    )
    assert prepared.args is not None
    assert prepared.args["changes"][0]["base_sha"] == current["sha"]
    assert "-max_results = 50\n+max_results = 100" in prepared.preview["text"]
    out = toolbox.call("github.create_pull_request", prepared.args, key="own")
    assert out.status == "done" and "+max_results = 100" in out.output["diff"]


def test_keys_must_be_safe_as_labels_and_branch_names(toolbox: Toolbox):
    out = toolbox.call("jira.create_issue", {"summary": "s"}, key="a b")
    assert out.status == "error" and "Idempotency key" in out.error
    assert toolbox.sandbox_jira.recent() == []
