"""A Jira-Cloud-like REST v3 server for the tests and the evaluation harness (real sockets;
see lookalike_github.FakeServer).

Checks Basic auth (email:token), that the project exists, and that descriptions and comments
are Atlassian Document Format; understands the three JQL shapes the adapter sends.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from copilot.evaluation.lookalike_github import FakeServer, Reply, Request

TRANSITIONS: list[dict[str, Any]] = [
    {"id": "11", "name": "To Do", "to": {"name": "To Do"}},
    {"id": "21", "name": "In Progress", "to": {"name": "In Progress"}},
    {"id": "31", "name": "Done", "to": {"name": "Done"}},
]


def _is_adf(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("type") == "doc" and doc.get("version") == 1


def _text(doc: Any) -> str:
    if isinstance(doc, dict):
        return str(doc.get("text", "")) + " ".join(_text(c) for c in doc.get("content", []))
    return ""


class FakeJira(FakeServer):
    def __init__(
        self, *, email: str = "ops@acme.test", token: str = "jira-tok", project: str = "OPS"
    ):
        super().__init__()
        self.credentials = base64.b64encode(f"{email}:{token}".encode()).decode()
        self.projects = {project}
        self.issues: dict[str, dict[str, Any]] = {}
        self.route("POST", r"/rest/api/3/search/jql", self._search)
        self.route("POST", r"/rest/api/3/issue", self._create)
        self.route("GET", r"/rest/api/3/issue/([A-Z]+-\d+)", self._get)
        self.route("POST", r"/rest/api/3/issue/([A-Z]+-\d+)/comment", self._comment)
        self.route("GET", r"/rest/api/3/issue/([A-Z]+-\d+)/comment", self._comments)
        self.route("GET", r"/rest/api/3/issue/([A-Z]+-\d+)/transitions", self._transitions)
        self.route("POST", r"/rest/api/3/issue/([A-Z]+-\d+)/transitions", self._transition)

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Basic {self.credentials}"

    def _search(self, req: Request) -> Reply:
        jql = req.body["jql"]
        label = re.search(r'labels = "([^"]+)"', jql)
        text = re.search(r'text ~ "([^"]+)"', jql)
        hits = [
            i
            for i in self.issues.values()
            if (not label or label.group(1) in i["fields"]["labels"])
            and (
                not text
                or any(w.lower() in i["fields"]["summary"].lower() for w in text.group(1).split())
            )
        ]
        return 200, {"issues": hits[: req.body.get("maxResults", 50)]}

    def _create(self, req: Request) -> Reply:
        fields = req.body["fields"]
        project = fields["project"]["key"]
        if project not in self.projects:
            return 404, {"errorMessages": [f"project {project} does not exist"]}
        if not fields.get("summary") or not _is_adf(fields.get("description")):
            return 400, {"errors": {"description": "Operation value must be an ADF document"}}
        key = f"{project}-{len(self.issues) + 1}"
        self.issues[key] = {
            "id": str(10000 + len(self.issues)),
            "key": key,
            "fields": {**fields, "status": {"name": "To Do"}, "labels": fields.get("labels", [])},
            "comments": [],
        }
        return 201, {
            "id": self.issues[key]["id"],
            "key": key,
            "self": f"{self.url}/rest/api/3/issue/{key}",
        }

    def _get(self, _: Request, key: str) -> Reply:
        if key not in self.issues:
            return 404, {"errorMessages": ["Issue does not exist or you do not have permission."]}
        issue = self.issues[key]
        return 200, {"id": issue["id"], "key": key, "fields": issue["fields"]}

    def _comment(self, req: Request, key: str) -> Reply:
        if key not in self.issues:
            return 404, {"errorMessages": ["Issue does not exist"]}
        if not _is_adf(req.body.get("body")):
            return 400, {"errors": {"body": "Comment body must be an ADF document"}}
        thread = self.issues[key]["comments"]
        thread.append({"id": str(20000 + len(thread)), "body": req.body["body"]})
        return 201, thread[-1]

    def _comments(self, _: Request, key: str) -> Reply:
        if key not in self.issues:
            return 404, {"errorMessages": ["Issue does not exist"]}
        return 200, {"comments": self.issues[key]["comments"]}

    def _transitions(self, _: Request, key: str) -> Reply:
        if key not in self.issues:
            return 404, {"errorMessages": ["Issue does not exist"]}
        return 200, {"transitions": TRANSITIONS}

    def _transition(self, req: Request, key: str) -> Reply:
        match = next((t for t in TRANSITIONS if t["id"] == req.body["transition"]["id"]), None)
        if key not in self.issues or match is None:
            return 400, {"errorMessages": ["transition is not valid"]}
        self.issues[key]["fields"]["status"] = {"name": match["to"]["name"]}
        return 204, {}

    def comment_texts(self, key: str) -> list[str]:
        return [_text(c["body"]) for c in self.issues[key]["comments"]]
