"""One small REST client shared by the GitHub and Jira adapters: timeouts, rate limits, errors.

Retries live here and nowhere else (one layer): a 429, or a GitHub 403 that says the rate
limit is spent, waits for `Retry-After` / `x-ratelimit-reset` and tries again, up to
`max_attempts` and never longer than `max_wait_s` in total. Nothing else is retried: a write
that timed out may have happened, and only the idempotency lookup can tell (registry.call).
`sleep` and `clock` are injectable so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from copilot.errors import ToolError

Describe = Callable[[int, str], str]
"""(status, path) -> what is at fault and how to fix it, for 401/403/404/422."""


@dataclass
class RetryPolicy:
    max_attempts: int = 3
    max_wait_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    waits: list[float] = field(default_factory=list)
    """Every wait taken, in seconds (read by tests and the benchmark figures)."""


class RestClient:
    """httpx.Client with a base URL, auth headers, a timeout and the retry policy above."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        describe: Describe,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._describe = describe
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            auth=auth,
        )
        self.requests = 0
        """Requests sent, retries included (for the requests-per-action figures)."""

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """The response, or ToolError. Statuses in `allow` come back instead of raising."""
        waited = 0.0
        for attempt in range(1, self.retry.max_attempts + 1):
            response = self._send(method, path, json=json, params=params)
            if response.status_code in allow or response.is_success:
                return response
            wait = _rate_limit_wait(response, self.retry.clock())
            if wait is None:
                raise self._error(response, path)
            if attempt == self.retry.max_attempts or waited + wait > self.retry.max_wait_s:
                raise ToolError(
                    f"{self.base_url} kept rate-limiting {method} {path} "
                    f"({attempt} attempts, next wait {wait:.0f} s); try again later.",
                    status_code=response.status_code,
                    url=str(response.request.url),
                )
            self.retry.waits.append(wait)
            self.retry.sleep(wait)
            waited += wait
        raise AssertionError("unreachable: the loop returns or raises")

    def _send(
        self, method: str, path: str, *, json: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        self.requests += 1
        try:
            return self._client.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise ToolError(
                f"{method} {self.base_url}{path} timed out; the server may still have acted "
                "on it, so a retry looks the result up first.",
                url=self.base_url + path,
            ) from exc
        except httpx.HTTPError as exc:
            raise ToolError(
                f"{method} {self.base_url}{path} failed ({type(exc).__name__}: {exc}).",
                url=self.base_url + path,
            ) from exc

    def _error(self, response: httpx.Response, path: str) -> ToolError:
        status = response.status_code
        detail = _detail(response)
        if status in (401, 403, 404, 422):
            message = f"{self._describe(status, path)} ({status}: {detail})"
        else:
            message = f"{response.request.method} {path} failed with {status}: {detail}"
        return ToolError(message, status_code=status, url=str(response.request.url))


def _rate_limit_wait(response: httpx.Response, now: float) -> float | None:
    """Seconds to wait before retrying, or None when the response is not a rate limit."""
    status = response.status_code
    headers = response.headers
    spent = headers.get("x-ratelimit-remaining") == "0"
    if status != 429 and not (status == 403 and (spent or "retry-after" in headers)):
        return None
    if "retry-after" in headers:
        try:
            return max(0.0, float(headers["retry-after"]))
        except ValueError:
            return 1.0
    if "x-ratelimit-reset" in headers:
        try:
            return max(0.0, float(headers["x-ratelimit-reset"]) - now)
        except ValueError:
            return 1.0
    # GitHub's secondary limits without a header: its docs say wait at least a minute.
    return 60.0 if status == 403 else 1.0


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        messages = body.get("errorMessages") or body.get("message") or body.get("errors")
        if messages:
            return str(messages)[:200]
    return str(body)[:200]
