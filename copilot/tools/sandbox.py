"""The sandbox used when no GitHub or Jira credentials are set: real objects, locally.

GitHub: a git repository under `$COPILOT_HOME/sandbox_repo`, seeded with a small operations
repository (`seed/`). A pull request is a branch `copilot/<key>` with one commit built with
plumbing commands and a private index, so the checked-out work tree (main) is never touched
and two processes cannot trip over each other's checkout. GitHub issues and Jira tickets live
in the governance store (`sandbox_tickets`, migration m003) with keys `#N` and `SANDBOX-N`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from copilot.errors import ToolError
from copilot.store import Store, Transaction, utcnow

SEED = Path(__file__).resolve().parent / "seed"
MAIN = "main"
JIRA_PREFIX = "SANDBOX"


class SandboxRepo:
    """The local git repository that stands in for GitHub."""

    def __init__(self, home: Path) -> None:
        self.path = home / "sandbox_repo"
        self._lock_file = home / ".sandbox_repo.lock"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_file.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._ensure()
            yield

    def git(self, *argv: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.path), *argv],
            capture_output=True,
            text=True,
            timeout=30,
            input=stdin,
            env={**os.environ, **_GIT_IDENTITY, **(env or {})},
        )
        if done.returncode != 0:
            raise ToolError(f"git {argv[0]} failed in {self.path}: {done.stderr.strip()}")
        return done.stdout

    def _ensure(self) -> None:
        """Create and seed the repository once; an old sandbox (no seed) is seeded on top."""
        if not (self.path / ".git").is_dir():
            self.path.mkdir(parents=True, exist_ok=True)
            self.git("init", "-q", "-b", MAIN)
        if self._exists(MAIN, "infra/k8s"):
            return
        if self._has_commits():
            self.git("checkout", "-q", MAIN)  # a sandbox from before the seed existed
        for source in sorted(SEED.rglob("*")):
            if source.is_file():
                target = self.path / source.relative_to(SEED)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(source.read_text())
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "Seed the sandbox operations repository")

    def _has_commits(self) -> bool:
        try:
            self.git("rev-parse", "--verify", "-q", MAIN)
        except ToolError:
            return False
        return True

    def _exists(self, ref: str, path: str) -> bool:
        try:
            self.git("cat-file", "-e", f"{ref}:{path}")
        except ToolError:
            return False
        return True

    # Reads ------------------------------------------------------------------------------
    def read_file(self, path: str, ref: str = "") -> dict[str, Any] | None:
        with self._locked():
            ref = ref or MAIN
            if not self._exists(ref, path):
                return None
            content = self.git("show", f"{ref}:{path}")
            sha = self.git("rev-parse", f"{ref}:{path}").strip()
        return {"path": path, "sha": sha, "content": content}

    def list_dir(self, path: str) -> list[str]:
        with self._locked():
            if not self._exists(MAIN, path):
                return []
            names = self.git("ls-tree", "--name-only", f"{MAIN}:{path}")
        return names.split()

    def list_commits(self, path: str = "", limit: int = 10) -> dict[str, Any]:
        with self._locked():
            argv = ["log", "-n", str(limit), "--pretty=format:%h%x09%s", MAIN]
            log = self.git(*argv, *(["--", path] if path else []))
        commits = [
            dict(zip(("sha", "message"), line.split("\t", 1), strict=True))
            for line in log.splitlines()
        ]
        return {"repo": "sandbox", "commits": commits}

    def branches(self) -> list[str]:
        with self._locked():
            out = self.git("for-each-ref", "--format=%(refname:short)", "refs/heads/copilot/")
        return out.split()

    # Pull requests ----------------------------------------------------------------------
    def find_branch(self, branch: str) -> dict[str, Any] | None:
        with self._locked():
            return self._describe_branch(branch) if self._has_branch(branch) else None

    def create_branch(
        self, branch: str, changes: list[dict[str, Any]], message: str
    ) -> dict[str, Any]:
        """One commit on a new branch from main; an existing branch is returned as it is."""
        with self._locked():
            if self._has_branch(branch):
                return self._describe_branch(branch)
            if not changes:
                raise ToolError(
                    "This pull request changes no file: prepare() found nothing to edit."
                )
            commit = self._commit(changes, message)
            self.git("update-ref", f"refs/heads/{branch}", commit)
            return self._describe_branch(branch)

    def _has_branch(self, branch: str) -> bool:
        try:
            self.git("rev-parse", "--verify", "-q", f"refs/heads/{branch}")
        except ToolError:
            return False
        return True

    def _commit(self, changes: list[dict[str, Any]], message: str) -> str:
        # A private index keeps the work tree and the real index (main) untouched.
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.git("read-tree", MAIN, env=env)
            for change in changes:
                self._check_base(change)
                blob = self.git("hash-object", "-w", "--stdin", stdin=change["content"]).strip()
                self.git(
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    f"100644,{blob},{change['path']}",
                    env=env,
                )
            tree = self.git("write-tree", env=env).strip()
        parent = self.git("rev-parse", MAIN).strip()
        return self.git("commit-tree", tree, "-p", parent, "-m", message).strip()

    def _check_base(self, change: dict[str, Any]) -> None:
        base = change.get("base_sha") or ""
        if not base or not self._exists(MAIN, change["path"]):
            return
        sha = self.git("rev-parse", f"{MAIN}:{change['path']}").strip()
        if sha != base:
            raise ToolError(
                f"{change['path']} changed on {MAIN} since this diff was made "
                f"({base[:7]} -> {sha[:7]}); run the task again to propose a fresh change."
            )

    def _describe_branch(self, branch: str) -> dict[str, Any]:
        commit = self.git("rev-parse", "--short", f"refs/heads/{branch}").strip()
        diff = self.git("diff", f"{MAIN}...refs/heads/{branch}")
        return {
            "branch": branch,
            "commit": commit,
            "url": f"sandbox://github/{branch}",
            "diff": diff,
        }


_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ops Copilot",
    "GIT_AUTHOR_EMAIL": "copilot@sandbox.local",
    "GIT_COMMITTER_NAME": "Ops Copilot",
    "GIT_COMMITTER_EMAIL": "copilot@sandbox.local",
}


class SandboxTickets:
    """Jira tickets (`SANDBOX-N`) and GitHub issues (`#N`) kept in the governance store."""

    def __init__(self, store: Store, system: str) -> None:
        self.store = store
        self.system = system  # jira | github

    def _key(self, number: int) -> str:
        return f"{JIRA_PREFIX}-{number}" if self.system == "jira" else f"#{number}"

    def url(self, key: str) -> str:
        return f"sandbox://{self.system}/{key.lstrip('#')}"

    def create(
        self, summary: str, description: str, labels: list[str], idem_key: str
    ) -> dict[str, Any]:
        with self.store.transaction() as tx:
            # DuckDB's single writer makes max+1 safe; on PostgreSQL the named lock does.
            tx.lock(f"sandbox:{self.system}")
            number = int(
                tx.value(
                    "SELECT coalesce(max(number), 0) + 1 FROM sandbox_tickets WHERE system = ?",
                    [self.system],
                )
                or 1
            )
            now = utcnow()
            status = "To Do" if self.system == "jira" else "open"
            tx.insert(
                "sandbox_tickets",
                {
                    "system": self.system,
                    "number": number,
                    "ticket_key": self._key(number),
                    "summary": summary,
                    "description": description,
                    "labels_json": json.dumps(labels),
                    "status": status,
                    "comments_json": "[]",
                    "idem_key": idem_key,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        key = self._key(number)
        return {"key": key, "number": number, "url": self.url(key)}

    def get(self, key: str) -> dict[str, Any]:
        rows = self.store.query(
            "SELECT * FROM sandbox_tickets WHERE system = ? AND ticket_key = ?", [self.system, key]
        )
        if not rows:
            raise ToolError(
                f"Sandbox {self.system} has no ticket {key}; list them first.", status_code=404
            )
        row = rows[0]
        return {
            "key": row["ticket_key"],
            "summary": row["summary"],
            "description": row["description"],
            "status": row["status"],
            "labels": json.loads(row["labels_json"]),
            "comments": json.loads(row["comments_json"]),
            "url": self.url(row["ticket_key"]),
        }

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT ticket_key, summary, status, created_at FROM sandbox_tickets"
            " WHERE system = ? ORDER BY number DESC LIMIT ?",
            [self.system, limit],
        )
        return [
            {
                "key": r["ticket_key"],
                "summary": r["summary"],
                "status": r["status"],
                "created_at": r["created_at"],
                "url": self.url(r["ticket_key"]),
            }
            for r in rows
        ]

    def search(self, text: str, limit: int = 10) -> list[dict[str, Any]]:
        words = set(re.findall(r"\w+", text.lower()))
        hits = [t for t in self.recent(1000) if not words or words & _words(t["summary"])]
        return hits[:limit]

    def find_by_idem_key(self, idem_key: str) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT ticket_key FROM sandbox_tickets WHERE system = ? AND idem_key = ?",
            [self.system, idem_key],
        )
        return (
            {"key": rows[0]["ticket_key"], "url": self.url(rows[0]["ticket_key"])} if rows else None
        )

    def comment(self, key: str, body: str, idem_key: str) -> dict[str, Any]:
        with self.store.transaction() as tx:
            comments = self._comments(tx, key)
            if not any(c.get("idem_key") == idem_key for c in comments):
                comments.append(
                    {"body": body, "idem_key": idem_key, "created_at": utcnow().isoformat()}
                )
                self._save(tx, key, comments=comments)
        return {"key": key, "comments": len(comments), "url": self.url(key)}

    def find_comment(self, key: str, idem_key: str) -> dict[str, Any] | None:
        comments = self.get(key)["comments"]
        if any(c.get("idem_key") == idem_key for c in comments):
            return {"key": key, "comments": len(comments), "url": self.url(key)}
        return None

    def transition(self, key: str, status: str) -> dict[str, Any]:
        allowed = {"to do": "To Do", "in progress": "In Progress", "done": "Done"}
        if status.lower() not in allowed:
            raise ToolError(
                f"{key} cannot move to {status!r}; "
                f"sandbox transitions: {', '.join(allowed.values())}."
            )
        with self.store.transaction() as tx:
            self._comments(tx, key)  # raises when the ticket does not exist
            self._save(tx, key, status=allowed[status.lower()])
        return {"key": key, "status": allowed[status.lower()], "url": self.url(key)}

    def _comments(self, tx: Transaction, key: str) -> list[dict[str, Any]]:
        row = tx.one(
            "SELECT comments_json FROM sandbox_tickets WHERE system = ? AND ticket_key = ?",
            [self.system, key],
            for_update=True,  # read-modify-write of the comments list
        )
        if row is None:
            raise ToolError(f"Sandbox {self.system} has no ticket {key}.", status_code=404)
        return list(json.loads(row["comments_json"]))

    def _save(self, tx: Any, key: str, **changes: Any) -> None:
        if "comments" in changes:
            changes["comments_json"] = json.dumps(changes.pop("comments"))
        sets = ", ".join(f"{column} = ?" for column in changes)
        tx.execute(
            f"UPDATE sandbox_tickets SET {sets}, updated_at = ?"
            " WHERE system = ? AND ticket_key = ?",
            [*changes.values(), utcnow(), self.system, key],
        )


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))
