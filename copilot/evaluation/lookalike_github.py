"""A GitHub-like REST server: real sockets on 127.0.0.1, state in memory. The tests and the
evaluation harness (copilot.evaluation) talk to it as they would to GitHub.

`FakeServer` is the shared machinery (also used by lookalike_jira.py): routes, an auth check,
every request recorded (method, path, query, headers, JSON body), and scripted faults for the
next matching request — an error status with headers (429 + Retry-After), a *lost*
response (the server acts on the request, then drops the connection without answering), or a
*hung* one (it acts, then answers only once the test sets `release`).

    with FakeGitHub(token="t") as gh:
        gh.fail_next("POST", r"/issues$", 429, {"retry-after": "3"})
        gh.lose_next("POST", r"/pulls$")
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

Reply = tuple[int, Any]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    method: str
    pattern: str
    status: int = 0  # 0 = lose the response after acting on the request
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # act on the request, then answer only once `release` is set


class FakeServer:
    """Routes + auth + recorded requests + scripted faults, on a real loopback socket."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def route(self, method: str, pattern: str, handler: Callable[..., Reply]) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def fail_next(self, method: str, pattern: str, status: int, headers: dict[str, str]) -> None:
        self.faults.append(Fault(method, pattern, status, headers))

    def lose_next(self, method: str, pattern: str) -> None:
        self.faults.append(Fault(method, pattern))

    def hang_next(self, method: str, pattern: str) -> None:
        self.faults.append(Fault(method, pattern, hang=True))

    def authorized(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def sent(self, method: str | None = None, pattern: str = "") -> list[Request]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and re.search(pattern, r.path)
        ]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and re.search(fault.pattern, path):
                self.faults.remove(fault)
                return fault
        return None

    def dispatch(self, request: Request) -> tuple[Reply, Fault | None]:
        with self.lock:
            self.requests.append(request)
            fault = self._take_fault(request.method, request.path)
            if fault and fault.status:
                return (fault.status, {"message": "scripted fault"}), fault
            if not self.authorized(request.headers):
                return (401, {"message": "Bad credentials"}), None
            for method, pattern, handler in self.routes:
                match = pattern.match(request.path)
                if method == request.method and match:
                    return handler(request, *[unquote(g) for g in match.groups()]), fault
            return (404, {"message": "Not Found"}), fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=split.path,
                    query={k: v[0] for k, v in parse_qs(split.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=json.loads(raw) if raw else None,
                )
                (status, body), fault = server.dispatch(request)
                if fault is not None and fault.hang:
                    server.release.wait(timeout=10)  # bounded: the fixture releases on exit
                elif fault is not None and not fault.status:
                    self.close_connection = True  # acted on it; the answer never arrives
                    return
                payload = b"" if status == 204 else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (fault.headers if fault else {}).items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class FakeGitHub(FakeServer):
    """One repository with branches of files, issues, comments and pull requests."""

    def __init__(self, *, token: str = "ghp-test", repo: str = "acme/infra") -> None:
        super().__init__()
        self.token = token
        self.repo = repo
        self.branches: dict[str, dict[str, str]] = {"main": {}}
        self.commits: list[dict[str, Any]] = [{"sha": _sha("seed"), "message": "Seed"}]
        self.issues: list[dict[str, Any]] = []
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.pulls: list[dict[str, Any]] = []
        r = re.escape(repo)
        self.route("GET", rf"/repos/{r}", self._repo)
        self.route("GET", rf"/repos/{r}/contents/(.+)", self._get_contents)
        self.route("PUT", rf"/repos/{r}/contents/(.+)", self._put_contents)
        self.route("GET", rf"/repos/{r}/commits", self._commits)
        self.route("GET", rf"/repos/{r}/git/ref/heads/(.+)", self._get_ref)
        self.route("POST", rf"/repos/{r}/git/refs", self._create_ref)
        self.route("POST", rf"/repos/{r}/issues", self._create_issue)
        self.route("GET", rf"/repos/{r}/issues", self._list_issues)
        self.route("POST", rf"/repos/{r}/issues/(\d+)/comments", self._create_comment)
        self.route("GET", rf"/repos/{r}/issues/(\d+)/comments", self._list_comments)
        self.route("POST", rf"/repos/{r}/pulls", self._create_pull)
        self.route("GET", rf"/repos/{r}/pulls", self._list_pulls)
        self.route("GET", r"/search/issues", self._search)

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.token}"

    def seed(self, files: dict[str, str]) -> None:
        self.branches["main"].update(files)

    def _html(self, kind: str, number: int) -> str:
        return f"https://github.test/{self.repo}/{kind}/{number}"

    def _repo(self, _: Request) -> Reply:
        return 200, {"full_name": self.repo, "default_branch": "main"}

    def _get_contents(self, req: Request, path: str) -> Reply:
        files = self.branches.get(req.query.get("ref", "main"))
        if files is None:
            return 404, {"message": "No commit found for the ref"}
        if path in files:
            content = base64.b64encode(files[path].encode()).decode()
            return 200, {
                "type": "file",
                "path": path,
                "sha": _sha(files[path]),
                "content": content,
                "encoding": "base64",
            }
        names = sorted(
            {p[len(path) + 1 :].split("/")[0] for p in files if p.startswith(path + "/")}
        )
        if names:
            return 200, [{"name": n, "path": f"{path}/{n}", "type": "dir"} for n in names]
        return 404, {"message": "Not Found"}

    def _put_contents(self, req: Request, path: str) -> Reply:
        files = self.branches.get(req.body["branch"])
        if files is None:
            return 404, {"message": "Branch not found"}
        if path in files and req.body.get("sha") != _sha(files[path]):
            return 409, {"message": f"{path} does not match the sha"}
        files[path] = base64.b64decode(req.body["content"]).decode()
        self.commits.insert(
            0, {"sha": _sha(req.body["message"] + path), "message": req.body["message"]}
        )
        return 200, {"content": {"path": path, "sha": _sha(files[path])}}

    def _commits(self, req: Request) -> Reply:
        limit = int(req.query.get("per_page", 30))
        return 200, [
            {"sha": c["sha"], "commit": {"message": c["message"]}} for c in self.commits[:limit]
        ]

    def _get_ref(self, _: Request, branch: str) -> Reply:
        if branch not in self.branches:
            return 404, {"message": "Not Found"}
        return 200, {"ref": f"refs/heads/{branch}", "object": {"sha": _sha(branch)}}

    def _create_ref(self, req: Request) -> Reply:
        branch = req.body["ref"].removeprefix("refs/heads/")
        if branch in self.branches:
            return 422, {"message": "Reference already exists"}
        self.branches[branch] = dict(self.branches["main"])
        return 201, {"ref": req.body["ref"], "object": {"sha": req.body["sha"]}}

    def _next_number(self) -> int:
        return len(self.issues) + 1

    def _create_issue(self, req: Request) -> Reply:
        if not req.body.get("title"):
            return 422, {"message": "Validation Failed", "errors": [{"field": "title"}]}
        number = self._next_number()
        issue = {
            "number": number,
            "title": req.body["title"],
            "body": req.body.get("body", ""),
            "state": "open",
            "html_url": self._html("issues", number),
        }
        self.issues.append(issue)
        return 201, issue

    def _list_issues(self, req: Request) -> Reply:
        newest = sorted(self.issues, key=lambda i: i["number"], reverse=True)
        return 200, newest[: int(req.query.get("per_page", 30))]

    def _create_comment(self, req: Request, number: str) -> Reply:
        if not any(i["number"] == int(number) for i in self.issues):
            return 404, {"message": "Not Found"}
        thread = self.comments.setdefault(int(number), [])
        comment = {
            "id": 1000 + len(thread),
            "body": req.body["body"],
            "html_url": f"{self._html('issues', int(number))}#comment-{len(thread)}",
        }
        thread.append(comment)
        return 201, comment

    def _list_comments(self, _: Request, number: str) -> Reply:
        return 200, self.comments.get(int(number), [])

    def _create_pull(self, req: Request) -> Reply:
        if req.body["head"] not in self.branches:
            return 422, {"message": "Validation Failed", "errors": [{"field": "head"}]}
        number = self._next_number()
        pull = {
            "number": number,
            "title": req.body["title"],
            "body": req.body.get("body", ""),
            "state": "open",
            "head": {"ref": req.body["head"]},
            "base": {"ref": req.body["base"]},
            "html_url": self._html("pull", number),
        }
        self.issues.append({**pull, "pull_request": {}})
        self.pulls.append(pull)
        return 201, pull

    def _list_pulls(self, req: Request) -> Reply:
        owner = self.repo.split("/")[0]
        head = req.query.get("head", "")
        found = [p for p in self.pulls if not head or f"{owner}:{p['head']['ref']}" == head]
        return 200, found

    def _search(self, req: Request) -> Reply:
        q = req.query.get("q", "")
        phrase = re.search(r'"([^"]+)"', q)
        words = [w for w in re.sub(r'"[^"]*"|\S+:\S+', " ", q).split()]
        hits = [
            i
            for i in self.issues
            if (phrase is None or phrase.group(1) in i["body"])
            and all(w.lower() in (i["title"] + i["body"]).lower() for w in words)
        ]
        return 200, {"total_count": len(hits), "items": hits}
