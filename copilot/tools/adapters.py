"""What each tool does, per system and mode: four small adapters with one method per tool.

The registry finds a tool's method by name (`jira.create_issue` -> `create_issue`) on the
adapter for its system and mode, and its idempotency lookup as `find_<op>`; an adapter
without `find_<op>` has nothing to look up (reads). Every method takes the canonical
arguments and the idempotency key. The GitHub adapters also read files for edits.py.
"""

from __future__ import annotations

from typing import Any

from copilot.errors import ToolError
from copilot.tools.github import GitHub, branch_for
from copilot.tools.jira import Jira
from copilot.tools.sandbox import SandboxRepo, SandboxTickets


class JiraLive:
    def __init__(self, api: Jira) -> None:
        self.api = api

    def search(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return self.api.search(a["jql"] or self.api.text_jql(a["query"]), a["max_results"])

    def get_issue(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return self.api.get_issue(a["issue"])

    def create_issue(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        return self.api.create_issue(a, key)

    def comment(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        return self.api.comment(a["issue"], a["body"], key)

    def transition(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return self.api.transition(a["issue"], a["transition"])

    def find_create_issue(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.api.find_labelled(key)

    def find_comment(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.api.find_comment(a["issue"], key)

    def find_transition(self, a: dict[str, Any], _: str) -> dict[str, Any] | None:
        issue = self.api.get_issue(a["issue"])
        done = issue["status"].lower() == a["transition"].lower()
        return (
            {"key": issue["key"], "status": issue["status"], "url": issue["url"]} if done else None
        )


class JiraSandbox:
    def __init__(self, tickets: SandboxTickets) -> None:
        self.tickets = tickets

    def search(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        hits = self.tickets.search(a["jql"] or a["query"], a["max_results"])
        return {"issues": hits}

    def get_issue(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return self.tickets.get(a["issue"])

    def create_issue(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        labels = [*a["labels"], f"copilot-{key}"]
        made = self.tickets.create(a["summary"], a["description"], labels, key)
        return {"key": made["key"], "url": made["url"]}

    def comment(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        return self.tickets.comment(a["issue"], a["body"], key)

    def transition(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return self.tickets.transition(a["issue"], a["transition"])

    def find_create_issue(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.tickets.find_by_idem_key(key)

    def find_comment(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.tickets.find_comment(a["issue"], key)


class GitHubLive:
    def __init__(self, api: GitHub) -> None:
        self.api = api

    def list_dir(self, path: str, repo: str) -> list[str]:
        return self.api.list_dir(path, repo)

    def read(self, path: str, repo: str) -> dict[str, Any] | None:
        return self.api.read_file(path, repo)

    def search_issues(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return self.api.search_issues(a["query"], a["repo"])

    def read_file(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        found = self.api.read_file(a["path"], a["repo"], a["ref"])
        if found is None:
            raise ToolError(
                f"{a['path']} does not exist in {a['repo'] or self.api.repo}.", status_code=404
            )
        return found

    def list_commits(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return self.api.list_commits(a["repo"], a["path"], a["limit"])

    def create_issue(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        return self.api.create_issue(a["title"], a["body"], key, a["repo"])

    def comment(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        return self.api.comment(a["number"], a["body"], key, a["repo"])

    def create_pull_request(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        return self.api.create_pull_request(a, key, a["repo"])

    def find_create_issue(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.api.find_marked_issue(key, a["repo"])

    def find_comment(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.api.find_marked_comment(a["number"], key, a["repo"])

    def find_create_pull_request(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.api.find_pull_request(key, a["repo"])


class GitHubSandbox:
    def __init__(self, repo: SandboxRepo, issues: SandboxTickets) -> None:
        self.repo = repo
        self.issues = issues

    def list_dir(self, path: str, repo: str) -> list[str]:
        return self.repo.list_dir(path)

    def read(self, path: str, repo: str) -> dict[str, Any] | None:
        return self.repo.read_file(path)

    def search_issues(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return {"issues": self.issues.search(a["query"])}

    def read_file(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        found = self.repo.read_file(a["path"], a["ref"])
        if found is None:
            raise ToolError(
                f"{a['path']} does not exist in the sandbox repository.", status_code=404
            )
        return found

    def list_commits(self, a: dict[str, Any], _: str) -> dict[str, Any]:
        return self.repo.list_commits(a["path"], a["limit"])

    def create_issue(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        made = self.issues.create(a["title"], a["body"], [], key)
        return {"number": made["number"], "url": made["url"]}

    def comment(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        return self.issues.comment(f"#{a['number']}", a["body"], key)

    def create_pull_request(self, a: dict[str, Any], key: str) -> dict[str, Any]:
        message = f"{a['title']}\n\n{a['body']}\n\nCopilot-Key: {key}"
        return self.repo.create_branch(branch_for(key), a["changes"], message)

    def find_create_issue(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        found = self.issues.find_by_idem_key(key)
        return {"number": int(found["key"].lstrip("#")), "url": found["url"]} if found else None

    def find_comment(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.issues.find_comment(f"#{a['number']}", key)

    def find_create_pull_request(self, a: dict[str, Any], key: str) -> dict[str, Any] | None:
        return self.repo.find_branch(branch_for(key))
