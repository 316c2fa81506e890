"""A small OpenAI-compatible HTTP server for tests: real sockets, scripted behaviour.

It serves `POST /v1/chat/completions` (OpenAI and compatible servers) and
`POST /openai/deployments/{deployment}/chat/completions?api-version=...` (Azure), plain or
streamed as server-sent events. Each request takes the next scripted behaviour from a queue
(`ok`, `status`, `slow`, `malformed`); once the queue is empty a `responder(request)` decides,
else the server answers 500 "nothing scripted". Every request is recorded.

    with FakeOpenAI() as server:
        server.script(status(429, headers={"Retry-After": "0"}), ok('{"a": 1}'))
        client = OpenAI(base_url=server.openai_url, api_key="k", max_retries=0)
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")


@dataclass
class Behaviour:
    """What the server does with one request."""

    status: int = 200
    content: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw_body: str | None = None  # sent as is, for malformed replies
    content_type: str = "application/json"
    usage: bool = True  # False: a server that reports no token usage
    model: str | None = None  # None: echo the requested model (or the Azure deployment)


def ok(
    content: str,
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    *,
    usage: bool = True,
    model: str | None = None,
) -> Behaviour:
    return Behaviour(
        content=content,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        usage=usage,
        model=model,
    )


def status(
    code: int,
    headers: dict[str, str] | None = None,
    message: str = "",
    error_code: str | None = None,
) -> Behaviour:
    """An error reply shaped like OpenAI's: {"error": {"message", "type", "code"}}."""
    error = {"message": message or f"fake error {code}", "type": "fake", "code": error_code}
    return Behaviour(status=code, headers=headers or {}, raw_body=json.dumps({"error": error}))


def slow(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Answer only after `seconds` (or never, if the test ends first)."""
    behaviour = then or ok('{"late": true}')
    behaviour.delay_s = seconds
    return behaviour


def malformed(content_type: str = "text/plain") -> Behaviour:
    return Behaviour(raw_body="not json", content_type=content_type)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    deployment: str | None = None  # set on the Azure path
    query: str = ""

    def message(self, role: str) -> str:
        """The first message of that role ("system", "user"), or ""."""
        messages = self.body.get("messages", [])
        return next((m["content"] for m in messages if m["role"] == role), "")


Responder = Callable[[Recorded], Behaviour]


class FakeOpenAI:
    """The server and its script; use as a context manager so it always shuts down."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder
        self.requests: list[Recorded] = []
        self.errors: list[Exception] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval for the serve loop.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def record(self, request: Recorded) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
        if self.responder is None:
            return status(500, message="fake server: nothing scripted for this request")
        try:
            return self.responder(request)
        except Exception as exc:  # a broken test responder should fail loudly, not hang up
            self.errors.append(exc)
            return status(500, message=f"fake server: responder raised {exc!r}")

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # wakes handlers still sleeping in slow()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            azure = _AZURE_PATH.match(parts.path)
            if parts.path != "/v1/chat/completions" and not azure:
                self._send(404, json.dumps({"error": {"message": f"no route {parts.path}"}}))
                return
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            request = Recorded(
                parts.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                azure.group(1) if azure else None,
                parts.query,
            )
            behaviour = fake.record(request)
            if behaviour.delay_s and fake.stopping.wait(behaviour.delay_s):
                return
            # The client may have given up (timeout) before we answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(behaviour, request)

        def _answer(self, b: Behaviour, request: Recorded) -> None:
            if b.raw_body is not None:
                self._send(b.status, b.raw_body, b.content_type, b.headers)
            elif request.body.get("stream"):
                self._stream(b, _model(b, request))
            else:
                self._send(200, json.dumps(_completion(b, _model(b, request))), headers=b.headers)

        def _send(
            self,
            code: int,
            body: str,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, b: Behaviour, model: str) -> None:
            # HTTP/1.0 without Content-Length: the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for event in _chunks(b, model):
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")

    return Handler


def _model(b: Behaviour, request: Recorded) -> str:
    return b.model or str(request.body.get("model") or request.deployment or "")


def _usage(b: Behaviour) -> dict[str, int]:
    return {
        "prompt_tokens": b.prompt_tokens,
        "completion_tokens": b.completion_tokens,
        "total_tokens": b.prompt_tokens + b.completion_tokens,
    }


def _completion(b: Behaviour, model: str) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": b.content},
                "finish_reason": "stop",
            }
        ],
    }
    if b.usage:
        reply["usage"] = _usage(b)
    return reply


def _chunks(b: Behaviour, model: str) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    pieces = re.findall(r"\S+\s*", b.content) or [""]
    for piece in pieces:
        delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
        yield base | {"choices": [delta]}
    yield base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if b.usage:
        yield base | {"choices": [], "usage": _usage(b)}
