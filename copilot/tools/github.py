"""GitHub REST v3 through a thin httpx client (see http.py for timeouts and rate limits).

Why not githubkit: 0.16.1 (pinned) does not import next to the pinned hishel 2.0.0, which its
own metadata allows (`from hishel import CachePolicy` fails). These nine endpoints are simpler
to own than a broken import; pin `hishel<2` to revisit.

The idempotency key travels in every object created: a `Copilot-Key: <key>` line in issue,
comment and pull request bodies, and the branch name `copilot/<key>`.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from copilot.errors import ToolError
from copilot.tools.http import RestClient, RetryPolicy

MARKER = "Copilot-Key"


def marked(body: str, key: str) -> str:
    return f"{body.rstrip()}\n\n{MARKER}: {key}\n"


def branch_for(key: str) -> str:
    return f"copilot/{key}"


class GitHub:
    """One repository's worth of the GitHub API."""

    def __init__(
        self,
        *,
        token: str,
        api_url: str,
        repo: str,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.repo = repo
        self.rest = RestClient(
            api_url or "https://api.github.com",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            describe=self._describe,
            timeout_s=timeout_s,
            retry=retry,
            transport=transport,
        )

    def _describe(self, status: int, path: str) -> str:
        if status == 401:
            return "GitHub refused GITHUB_TOKEN: it is wrong or expired; set a valid token"
        if status == 403:
            return (
                f"GITHUB_TOKEN may not do this on {self.repo}; give the token "
                "contents, issues and pull-requests write access to it"
            )
        if status == 404:
            return (
                f"GitHub has no {path} for repository {self.repo}: check GITHUB_REPOSITORY "
                "and that GITHUB_TOKEN can see it"
            )
        return f"GitHub rejected the request to {self.repo}{path} as invalid"

    def _repo_path(self, repo: str, tail: str = "") -> str:
        return f"/repos/{repo or self.repo}{tail}"

    # Reads ------------------------------------------------------------------------------
    def search_issues(self, query: str, repo: str = "", limit: int = 10) -> dict[str, Any]:
        q = f"{query} repo:{repo or self.repo}"
        params = {"q": q, "per_page": limit, "advanced_search": "true"}
        body = self.rest.request("GET", "/search/issues", params=params).json()
        items = [
            {"number": i["number"], "title": i["title"], "state": i["state"], "url": i["html_url"]}
            for i in body.get("items", [])
        ]
        return {"total": body.get("total_count", len(items)), "issues": items}

    def read_file(self, path: str, repo: str = "", ref: str = "") -> dict[str, Any] | None:
        """{"path", "sha", "content"}, or None when the file does not exist."""
        params = {"ref": ref} if ref else None
        response = self.rest.request(
            "GET", self._repo_path(repo, f"/contents/{quote(path)}"), params=params, allow=(404,)
        )
        if response.status_code == 404:
            return None
        body = response.json()
        if not isinstance(body, dict) or body.get("type") != "file":
            return None
        text = base64.b64decode(body.get("content", "")).decode()
        return {"path": path, "sha": body["sha"], "content": text}

    def list_dir(self, path: str, repo: str = "") -> list[str]:
        response = self.rest.request(
            "GET", self._repo_path(repo, f"/contents/{quote(path)}"), allow=(404,)
        )
        body = response.json() if response.status_code != 404 else []
        return [e["name"] for e in body] if isinstance(body, list) else []

    def list_commits(self, repo: str = "", path: str = "", limit: int = 10) -> dict[str, Any]:
        params: dict[str, Any] = {"per_page": limit}
        if path:
            params["path"] = path
        body = self.rest.request("GET", self._repo_path(repo, "/commits"), params=params).json()
        commits = [
            {"sha": c["sha"][:7], "message": c["commit"]["message"].splitlines()[0]} for c in body
        ]
        return {"repo": repo or self.repo, "commits": commits}

    # Writes -----------------------------------------------------------------------------
    def create_issue(self, title: str, body: str, key: str, repo: str = "") -> dict[str, Any]:
        made = self.rest.request(
            "POST",
            self._repo_path(repo, "/issues"),
            json={"title": title, "body": marked(body, key)},
        ).json()
        return {"number": made["number"], "url": made["html_url"]}

    def comment(self, number: int, body: str, key: str, repo: str = "") -> dict[str, Any]:
        made = self.rest.request(
            "POST",
            self._repo_path(repo, f"/issues/{number}/comments"),
            json={"body": marked(body, key)},
        ).json()
        return {"id": made["id"], "number": number, "url": made["html_url"]}

    def create_pull_request(self, args: dict[str, Any], key: str, repo: str = "") -> dict[str, Any]:
        """Branch `copilot/<key>` from the base, one commit per changed file, then the PR."""
        repo = repo or self.repo
        base = (
            args.get("base")
            or self.rest.request("GET", self._repo_path(repo)).json()["default_branch"]
        )
        branch = branch_for(key)
        head = self.rest.request("GET", self._repo_path(repo, f"/git/ref/heads/{base}")).json()
        # 422 = the branch exists: an earlier attempt made it, so keep it and go on.
        self.rest.request(
            "POST",
            self._repo_path(repo, "/git/refs"),
            json={"ref": f"refs/heads/{branch}", "sha": head["object"]["sha"]},
            allow=(422,),
        )
        for change in args.get("changes", []):
            self._put_file(repo, branch, change, args["title"])
        made = self.rest.request(
            "POST",
            self._repo_path(repo, "/pulls"),
            json={
                "title": args["title"],
                "head": branch,
                "base": base,
                "body": marked(args.get("body", ""), key),
            },
        ).json()
        return {"number": made["number"], "url": made["html_url"], "branch": branch}

    def _put_file(self, repo: str, branch: str, change: dict[str, Any], title: str) -> None:
        current = self.read_file(change["path"], repo, ref=branch)
        payload: dict[str, Any] = {
            "message": title,
            "content": base64.b64encode(change["content"].encode()).decode(),
            "branch": branch,
        }
        if current is not None:
            if current["content"] == change["content"]:
                return  # committed by an earlier attempt
            _check_base(change, current["sha"], self.repo)
            payload["sha"] = current["sha"]
        self.rest.request(
            "PUT", self._repo_path(repo, f"/contents/{quote(change['path'])}"), json=payload
        )

    # Idempotency lookups ----------------------------------------------------------------
    def find_marked_issue(self, key: str, repo: str = "") -> dict[str, Any] | None:
        """The issue whose body carries the key. The search index lags creation by seconds
        to minutes, so the newest issues are listed first (consistent), then searched."""
        recent = self.rest.request(
            "GET",
            self._repo_path(repo, "/issues"),
            params={"state": "all", "sort": "created", "direction": "desc", "per_page": 50},
        ).json()
        found = _with_marker(recent, key)
        if found is None:
            q = f'"{MARKER}: {key}" in:body is:issue repo:{repo or self.repo}'
            params = {"q": q, "advanced_search": "true"}
            body = self.rest.request("GET", "/search/issues", params=params).json()
            found = _with_marker(body.get("items", []), key)
        return None if found is None else {"number": found["number"], "url": found["html_url"]}

    def find_marked_comment(self, number: int, key: str, repo: str = "") -> dict[str, Any] | None:
        path = self._repo_path(repo, f"/issues/{number}/comments")
        item = _with_marker(self.rest.request("GET", path, params={"per_page": 100}).json(), key)
        return (
            None if item is None else {"id": item["id"], "number": number, "url": item["html_url"]}
        )

    def find_pull_request(self, key: str, repo: str = "") -> dict[str, Any] | None:
        repo = repo or self.repo
        owner = repo.split("/")[0]
        branch = branch_for(key)
        found = self.rest.request(
            "GET",
            self._repo_path(repo, "/pulls"),
            params={"head": f"{owner}:{branch}", "state": "all"},
        ).json()
        if not found:
            return None
        return {"number": found[0]["number"], "url": found[0]["html_url"], "branch": branch}


def _check_base(change: dict[str, Any], sha: str, where: str) -> None:
    """Refuse to commit over a file that changed since the diff was approved: the person
    approved a diff against one version, and applying it to another would revert work."""
    base = change.get("base_sha") or ""
    if base and base != sha:
        raise ToolError(
            f"{change['path']} changed in {where} since this diff was made "
            f"({base[:7]} -> {sha[:7]}); run the task again to propose a fresh change."
        )


def _with_marker(items: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The first item whose body has the marker as a whole line (k1 must not match k10)."""
    line = f"{MARKER}: {key}"
    return next((i for i in items if line in (i.get("body") or "").splitlines()), None)
