"""Jira Cloud REST v3 through a thin httpx client (see http.py for timeouts and rate limits).

Why not a client library: the maintained one (`jira`/pycontribs) is synchronous `requests`
with its own retry layer, targets v2 as well, and is not pinned here; the six endpoints used
below are small, and httpx gives the same timeout, retry and test seams as the GitHub client.

The idempotency key travels as the label `copilot-<key>` on created issues and as a marker
paragraph in comments.
"""

from __future__ import annotations

from typing import Any

import httpx

from copilot.errors import ToolError
from copilot.tools.http import RestClient, RetryPolicy

COMMENT_MARKER = "Copilot-Key"


def label_for(key: str) -> str:
    return f"copilot-{key}"


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document: one paragraph per block."""
    blocks = [b for b in text.split("\n\n") if b.strip()] or [""]
    content = [
        {"type": "paragraph", "content": [{"type": "text", "text": b}] if b else []} for b in blocks
    ]
    return {"type": "doc", "version": 1, "content": content}


def adf_text(doc: Any) -> str:
    """The text of an ADF document, paragraphs separated by blank lines."""
    if not isinstance(doc, dict):
        return str(doc or "")
    if doc.get("type") == "text":
        return str(doc.get("text", ""))
    parts = [adf_text(c) for c in doc.get("content", [])]
    return ("\n\n" if doc.get("type") == "doc" else "").join(parts)


class Jira:
    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        api_token: str,
        project: str,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.rest = RestClient(
            self.base_url,
            headers={"Accept": "application/json"},
            auth=(email, api_token),
            describe=self._describe,
            timeout_s=timeout_s,
            retry=retry,
            transport=transport,
        )

    def _describe(self, status: int, path: str) -> str:
        if status == 401:
            return (
                "Jira refused JIRA_EMAIL / JIRA_API_TOKEN: check both (the token is made at "
                "id.atlassian.com, Security, API tokens)"
            )
        if status == 403:
            return f"the Jira user JIRA_EMAIL may not do this in project {self.project}"
        if status == 404:
            return (
                f"Jira has no {path}: check the issue key, JIRA_PROJECT={self.project} and "
                "JIRA_BASE_URL"
            )
        return f"Jira project {self.project} rejected the fields sent to {path}"

    def url(self, key: str) -> str:
        return f"{self.base_url}/browse/{key}"

    # Reads ------------------------------------------------------------------------------
    def search(self, jql: str, max_results: int = 10) -> dict[str, Any]:
        body = self.rest.request(
            "POST",
            "/rest/api/3/search/jql",
            json={"jql": jql, "maxResults": max_results, "fields": ["summary", "status"]},
        ).json()
        issues = [
            {
                "key": i["key"],
                "summary": i["fields"].get("summary", ""),
                "status": (i["fields"].get("status") or {}).get("name", ""),
                "url": self.url(i["key"]),
            }
            for i in body.get("issues", [])
        ]
        return {"jql": jql, "issues": issues}

    def text_jql(self, query: str) -> str:
        words = query.replace('"', " ").strip()
        jql = f'project = "{self.project}"'
        return f'{jql} AND text ~ "{words}" ORDER BY created DESC' if words else jql

    def get_issue(self, key: str) -> dict[str, Any]:
        body = self.rest.request(
            "GET", f"/rest/api/3/issue/{key}", params={"fields": "summary,status,description"}
        ).json()
        fields = body["fields"]
        return {
            "key": body["key"],
            "summary": fields.get("summary", ""),
            "status": (fields.get("status") or {}).get("name", ""),
            "description": adf_text(fields.get("description")),
            "url": self.url(body["key"]),
        }

    # Writes -----------------------------------------------------------------------------
    def create_issue(self, args: dict[str, Any], key: str) -> dict[str, Any]:
        fields = {
            "project": {"key": args.get("project") or self.project},
            "summary": args["summary"],
            "issuetype": {"name": args.get("issue_type", "Task")},
            "description": adf(args.get("description", "")),
            "labels": [*args.get("labels", []), label_for(key)],
        }
        made = self.rest.request("POST", "/rest/api/3/issue", json={"fields": fields}).json()
        return {"key": made["key"], "url": self.url(made["key"])}

    def comment(self, issue: str, body: str, key: str) -> dict[str, Any]:
        text = f"{body.rstrip()}\n\n{COMMENT_MARKER}: {key}"
        made = self.rest.request(
            "POST", f"/rest/api/3/issue/{issue}/comment", json={"body": adf(text)}
        ).json()
        return {"key": issue, "comment_id": made["id"], "url": self.url(issue)}

    def transition(self, issue: str, transition: str) -> dict[str, Any]:
        found = self.rest.request("GET", f"/rest/api/3/issue/{issue}/transitions").json()
        options = found.get("transitions", [])
        wanted = transition.lower()
        match = next(
            (t for t in options if t["id"] == transition or t["name"].lower() == wanted), None
        )
        if match is None:
            names = ", ".join(t["name"] for t in options) or "none"
            raise ToolError(
                f"{issue} cannot move to {transition!r} now; available transitions: {names}."
            )
        self.rest.request(
            "POST",
            f"/rest/api/3/issue/{issue}/transitions",
            json={"transition": {"id": match["id"]}},
        )
        return {
            "key": issue,
            "status": match.get("to", {}).get("name", match["name"]),
            "url": self.url(issue),
        }

    # Idempotency lookups ----------------------------------------------------------------
    def find_labelled(self, key: str) -> dict[str, Any] | None:
        found = self.search(f'labels = "{label_for(key)}"', max_results=1)["issues"]
        return {"key": found[0]["key"], "url": found[0]["url"]} if found else None

    def find_comment(self, issue: str, key: str) -> dict[str, Any] | None:
        body = self.rest.request("GET", f"/rest/api/3/issue/{issue}/comment").json()
        for item in body.get("comments", []):
            if f"{COMMENT_MARKER}: {key}" in adf_text(item.get("body")).splitlines():
                return {"key": issue, "comment_id": item["id"], "url": self.url(issue)}
        return None
