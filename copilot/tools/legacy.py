"""The old sandbox the current run engine still calls (`Sandbox`, `run_tool`).

Kept unchanged so the engine works until it switches to `Toolbox` (registry.py); then this
module goes. GitHub writes become branches in `sandbox_repo/`, Jira tickets live in
`sandbox_jira.json`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from copilot.errors import ToolError
from copilot.tools.registry import ToolOutcome


class Sandbox:
    """Offline stand-ins for GitHub and Jira that leave inspectable results on disk."""

    def __init__(self, home: Path) -> None:
        self.repo = home / "sandbox_repo"
        self.jira_file = home / "sandbox_jira.json"

    def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "jira.search": self._jira_search,
            "jira.create_issue": self._jira_create,
            "jira.comment": self._jira_comment,
            "github.list_commits": self._git_log,
            "github.create_issue": self._github_issue,
            "github.create_pull_request": self._github_pr,
        }
        if tool not in handlers:
            raise ToolError(f"Unknown tool {tool!r}; known: {', '.join(sorted(handlers))}.")
        self.jira_file.parent.mkdir(parents=True, exist_ok=True)
        # One sandbox action at a time across processes: Jira is a read-modify-write of one
        # file and the git repo has one work tree.
        with (self.jira_file.parent / ".sandbox.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return handlers[tool](args)

    # Jira -------------------------------------------------------------------------------
    def _tickets(self) -> list[dict[str, Any]]:
        if not self.jira_file.is_file():
            return []
        return list(json.loads(self.jira_file.read_text()))

    def _save_tickets(self, tickets: list[dict[str, Any]]) -> None:
        self.jira_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.jira_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(tickets, indent=2))
        tmp.replace(self.jira_file)

    def _jira_search(self, args: dict[str, Any]) -> dict[str, Any]:
        words = set(re.findall(r"\w+", str(args.get("query", "")).lower()))
        hits = [t for t in self._tickets() if words & set(re.findall(r"\w+", t["summary"].lower()))]
        return {"issues": [{"key": t["key"], "summary": t["summary"]} for t in hits[:10]]}

    def _jira_create(self, args: dict[str, Any]) -> dict[str, Any]:
        tickets = self._tickets()
        project = str(args.get("project") or "OPS")
        number = 1 + sum(1 for t in tickets if t["key"].startswith(project + "-"))
        ticket = {
            "key": f"{project}-{number}",
            "summary": str(args.get("summary", "")),
            "description": str(args.get("description", "")),
            "comments": [],
        }
        self._save_tickets([*tickets, ticket])
        return {"key": ticket["key"], "url": f"sandbox://jira/{ticket['key']}"}

    def _jira_comment(self, args: dict[str, Any]) -> dict[str, Any]:
        tickets = self._tickets()
        ticket = next((t for t in tickets if t["key"] == args.get("issue")), None)
        if ticket is None:
            raise ToolError(f"Jira ticket {args.get('issue')!r} does not exist in the sandbox.")
        ticket["comments"].append(str(args.get("body", "")))
        self._save_tickets(tickets)
        return {"key": ticket["key"], "comments": len(ticket["comments"])}

    # GitHub (a local git repository) -------------------------------------------------------
    def _git(self, *argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.repo), *argv],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise ToolError(f"git {argv[0]} failed in the sandbox repo: {done.stderr.strip()}")
        return done.stdout

    def _ensure_repo(self) -> None:
        if (self.repo / ".git").is_dir():
            return
        self.repo.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q", "-b", "main")
        self._git("config", "user.email", "copilot@sandbox.local")
        self._git("config", "user.name", "Ops Copilot")
        (self.repo / "README.md").write_text("# Sandbox repository for Ops Copilot\n")
        self._git("add", "README.md")
        self._git("commit", "-q", "-m", "Initial sandbox commit")

    def _git_log(self, args: dict[str, Any]) -> dict[str, Any]:
        self._ensure_repo()
        log = self._git("log", "-n", "10", "--pretty=format:%h %s")
        return {"repo": args.get("repo", ""), "commits": log.splitlines()}

    def _github_issue(self, args: dict[str, Any]) -> dict[str, Any]:
        self._ensure_repo()
        issues = self.repo / "ISSUES.md"
        with issues.open("a") as fh:
            fh.write(f"\n## {args.get('title', '')}\n\n{args.get('body', '')}\n")
        self._git("add", "ISSUES.md")
        self._git("commit", "-q", "-m", f"Issue: {args.get('title', '')}"[:72])
        return {"repo": args.get("repo", ""), "file": "ISSUES.md"}

    def _github_pr(self, args: dict[str, Any]) -> dict[str, Any]:
        """A branch with a proposal file, committed: the diff a reviewer would open."""
        self._ensure_repo()
        title = str(args.get("title") or "Proposed change")
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "pr"
        branch = f"copilot/{slug}-{uuid.uuid4().hex[:6]}"  # a second PR never resets the first
        self._git("checkout", "-q", "-B", branch, "main")
        try:
            target = str(args.get("path") or "proposals/change.md").lstrip("/")
            proposal = self.repo / "proposals" / (Path(target).name + ".md")
            proposal.parent.mkdir(parents=True, exist_ok=True)
            proposal.write_text(f"# {title}\n\nTarget: `{target}`\n\n{args.get('body', '')}\n")
            self._git("add", str(proposal.relative_to(self.repo)))
            self._git("commit", "-q", "-m", title[:72])
            commit = self._git("rev-parse", "--short", "HEAD").strip()
        finally:
            self._git("checkout", "-q", "main")
        return {
            "repo": args.get("repo", ""),
            "branch": branch,
            "commit": commit,
            "url": f"sandbox://github/{branch}",
        }


def run_tool(sandbox: Sandbox, tool: str, args: dict[str, Any]) -> ToolOutcome:
    """Run one tool; every failure becomes an `error` outcome, never an exception, so the
    caller can always record what happened."""
    started = time.perf_counter()
    try:
        output, status, error = sandbox.call(tool, args), "done", None
    except ToolError as exc:
        output, status, error = None, "error", str(exc)
    except Exception as exc:  # a corrupt sandbox file, git missing, a timeout...
        output, status, error = None, "error", f"{tool} failed ({type(exc).__name__}: {exc})"
    return ToolOutcome(status, output, error, (time.perf_counter() - started) * 1000)
