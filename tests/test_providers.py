"""The OpenAI / Azure provider through the real `openai` client against a local fake server.

Sleep and clock are injected, so retries and the rate limiter never wait for real; only the
timeout tests spend real time (a 0.2 s client timeout).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from copilot.config import Settings
from copilot.errors import ConfigError, ProviderError
from copilot.llm import get_provider
from copilot.llm.base import LLMRequest, LLMResponse
from copilot.llm.openai_provider import OpenAIProvider, build_openai_provider
from copilot.llm.ratelimit import WINDOW_S, RateLimiter, shared_limiter
from tests.fake_openai import Behaviour, FakeOpenAI, malformed, ok, slow, status

KEY = "sk-test-0123456789abcdefghijklmnopqrstuv"
MESSAGES = [
    {"role": "system", "content": "You are the planner. Reply with JSON only."},
    {"role": "user", "content": "Task: pods are OOMKilled"},
]


class FakeTime:
    """A clock that only moves when someone sleeps; records every requested delay."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make(
    server: FakeOpenAI, fake_time: FakeTime, provider: str = "openai", **overrides: Any
) -> OpenAIProvider:
    if provider == "azure":
        fields: dict[str, Any] = {
            "azure_endpoint": server.url,
            "azure_api_key": KEY,
            "azure_deployment": "ops-mini",
        }
    else:
        fields = {"openai_api_key": KEY, "openai_base_url": server.openai_url}
    settings = Settings(llm_provider=provider, **(fields | overrides))
    return build_openai_provider(
        settings,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        limiter=RateLimiter(10_000, clock=fake_time.clock, sleep=fake_time.sleep),
    )


def openai_settings(server: FakeOpenAI, **overrides: Any) -> Settings:
    return Settings(
        llm_provider="openai", openai_api_key=KEY, openai_base_url=server.openai_url, **overrides
    )


def request(schema: dict[str, Any] | None = None) -> LLMRequest:
    return LLMRequest("plan", "pods are OOMKilled", [], list(MESSAGES), schema=schema)


def fail(provider: OpenAIProvider, req: LLMRequest | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        provider.complete(req or request())
    error = info.value
    # openai exceptions never leave the provider, not even chained.
    assert error.__cause__ is None and error.__context__ is None
    assert KEY not in str(error)
    return error


# success ------------------------------------------------------------------------------
def test_complete_sends_messages_and_reads_usage(server, fake_time):
    server.script(ok('{"steps": []}', prompt_tokens=123, completion_tokens=45))
    response = make(server, fake_time).complete(request(schema={"type": "object"}))

    assert response.text == '{"steps": []}'
    assert (response.provider, response.model) == ("openai", "gpt-4o-mini")
    assert (response.prompt_tokens, response.completion_tokens) == (123, 45)
    assert response.attempts == 1 and response.latency_ms > 0
    [sent] = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["messages"] == MESSAGES
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["temperature"] == 0
    assert sent.body["response_format"] == {"type": "json_object"}


def test_a_dated_snapshot_of_the_configured_model_keeps_the_configured_name(server, fake_time):
    server.script(ok("{}", model="gpt-4o-mini-2024-07-18"), ok("{}", model="llama3:8b"))
    provider = make(server, fake_time)
    assert provider.complete(request()).model == "gpt-4o-mini"
    assert provider.complete(request()).model == "llama3:8b"  # another model answered


def test_free_text_requests_do_not_ask_for_json_mode(server, fake_time):
    server.script(ok("plain words"))
    make(server, fake_time).complete(request(schema=None))
    assert "response_format" not in server.requests[0].body


def test_reasoning_models_get_no_temperature(server, fake_time):
    server.script(ok("{}"))
    make(server, fake_time, openai_model="o3-mini").complete(request())
    assert "temperature" not in server.requests[0].body


def test_stream_yields_deltas_then_the_response_with_usage(server, fake_time):
    server.script(ok("check the pod events", prompt_tokens=30, completion_tokens=4))
    items = list(make(server, fake_time).stream(request()))

    *pieces, final = items
    assert "".join(str(p) for p in pieces) == "check the pod events"
    assert all(isinstance(p, str) for p in pieces) and len(pieces) > 1
    assert isinstance(final, LLMResponse)
    assert final.text == "check the pod events"
    assert (final.prompt_tokens, final.completion_tokens, final.attempts) == (30, 4, 1)
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_a_server_without_usage_gets_counted_tokens(server, fake_time, caplog):
    server.script(ok("three small words", usage=False), ok("{}", usage=False))
    provider = make(server, fake_time)
    *_, final = provider.stream(request())
    response = provider.complete(request())

    assert isinstance(final, LLMResponse)
    assert final.completion_tokens == 3 and final.prompt_tokens > 0
    assert response.completion_tokens == 2
    assert "no token usage" in caplog.text


def test_azure_uses_the_deployment_path_api_version_and_api_key(server, fake_time):
    server.script(ok("{}", prompt_tokens=9, completion_tokens=2, model="gpt-4o-mini-2024-07-18"))
    response = make(server, fake_time, "azure", azure_api_version="2024-10-21").complete(request())

    assert response.provider == "azure"
    # Azure reports the base model, which is what the price table knows.
    assert response.model == "gpt-4o-mini-2024-07-18"
    [sent] = server.requests
    assert sent.deployment == "ops-mini"
    assert sent.query == "api-version=2024-10-21"
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers


def test_azure_stream(server, fake_time):
    server.script(ok("one two", prompt_tokens=5, completion_tokens=2))
    *pieces, final = make(server, fake_time, "azure").stream(request())
    assert pieces == ["one ", "two"]
    assert isinstance(final, LLMResponse) and final.provider == "azure"


# retries ------------------------------------------------------------------------------
def test_429_waits_as_long_as_retry_after_says(server, fake_time):
    server.script(status(429, headers={"Retry-After": "7"}), ok("{}"))
    response = make(server, fake_time).complete(request())
    assert response.attempts == 2
    assert fake_time.sleeps == [7.0]
    assert len(server.requests) == 2


def test_retry_after_ms_wins_over_retry_after(server, fake_time):
    server.script(status(429, headers={"retry-after-ms": "1500", "Retry-After": "9"}), ok("{}"))
    make(server, fake_time).complete(request())
    assert fake_time.sleeps == [1.5]


def test_500_twice_then_success_backs_off_exponentially(server, fake_time):
    server.script(status(500), status(503), ok("{}"))
    response = make(server, fake_time).complete(request())
    assert response.attempts == 3 and len(server.requests) == 3
    first, second = fake_time.sleeps
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 1.5  # 0.5 * 2**n plus up to 0.5 jitter


def test_a_timeout_is_retried(server, fake_time):
    server.script(slow(2.0), ok("{}"))
    response = make(server, fake_time, llm_timeout_s=0.2).complete(request())
    assert response.attempts == 2


def test_timeouts_to_the_end_raise_a_provider_error(server, fake_time):
    server.script(slow(2.0), slow(2.0))
    error = fail(make(server, fake_time, llm_timeout_s=0.2, llm_max_attempts=2))
    assert error.error_class == "APITimeoutError"
    assert error.attempts == 2 and error.retryable
    assert "LLM_TIMEOUT_S=0.2" in str(error)


@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_requests_never_exceed_llm_max_attempts(server, fake_time, attempts):
    server.script(*[status(500, message=f"upstream rejected {KEY}")] * 10)
    error = fail(make(server, fake_time, llm_max_attempts=attempts))
    assert len(server.requests) == attempts == error.attempts
    assert error.error_class == "InternalServerError"
    assert f"LLM_MAX_ATTEMPTS={attempts}" in str(error)


def test_retries_stop_within_llm_max_retry_s(server, fake_time):
    server.script(*[status(429, headers={"Retry-After": "2"})] * 10)
    error = fail(make(server, fake_time, llm_max_attempts=10, llm_max_retry_s=5))
    # Attempts at t=0, 2 and 4; one more would start at 6 > 5.
    assert len(server.requests) == 3
    assert fake_time.sleeps == [2.0, 2.0]
    assert error.error_class == "RateLimitError"
    assert "LLM_MAX_RETRY_S=5" in str(error)


def test_a_retry_after_beyond_the_budget_is_not_waited_for(server, fake_time):
    server.script(status(429, headers={"Retry-After": "600"}), ok("{}"))
    error = fail(make(server, fake_time, llm_max_retry_s=60))
    assert len(server.requests) == 1 and fake_time.sleeps == []
    assert error.attempts == 1


def test_connection_refused_is_retried_then_explained(fake_time):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        llm_provider="openai", openai_api_key=KEY, openai_base_url=f"http://127.0.0.1:{port}/v1"
    )
    provider = build_openai_provider(settings, sleep=fake_time.sleep, clock=fake_time.clock)
    error = fail(provider)
    assert error.error_class == "APIConnectionError" and error.attempts == 4
    assert "OPENAI_BASE_URL" in str(error)


# failures that are not retried ---------------------------------------------------------
def test_401_is_not_retried_and_names_the_key_to_check(server, fake_time):
    # Some servers quote the key they rejected; it must not reach our message.
    server.script(status(401, message=f"Incorrect API key provided: {KEY}"), ok("{}"))
    error = fail(make(server, fake_time))
    assert len(server.requests) == 1 and fake_time.sleeps == []
    assert error.error_class == "AuthenticationError"
    assert (error.provider, error.model, error.attempts) == ("openai", "gpt-4o-mini", 1)
    assert "OPENAI_API_KEY" in str(error) and "LLM_PROVIDER=stub" in str(error)
    assert not error.retryable


def test_azure_401_names_the_azure_key(server, fake_time):
    server.script(status(401))
    error = fail(make(server, fake_time, "azure"))
    assert "AZURE_OPENAI_API_KEY" in str(error)


@pytest.mark.parametrize(
    ("code", "error_class", "hint"),
    [
        (400, "BadRequestError", "OPENAI_MODEL"),
        (403, "PermissionDeniedError", "permissions"),
        (404, "NotFoundError", "OPENAI_MODEL"),
        (422, "UnprocessableEntityError", "OPENAI_MODEL"),
    ],
)
def test_other_4xx_are_not_retried(server, fake_time, code, error_class, hint):
    server.script(status(code, message=f"the server explains {code}"), ok("{}"))
    error = fail(make(server, fake_time))
    assert len(server.requests) == 1
    assert error.error_class == error_class
    assert hint in str(error)
    assert f"the server explains {code}" in str(error)


def test_azure_404_names_the_deployment(server, fake_time):
    server.script(status(404, message="The API deployment for this resource does not exist."))
    error = fail(make(server, fake_time, "azure"))
    assert "AZURE_OPENAI_DEPLOYMENT" in str(error) and "'ops-mini'" in str(error)


def test_exhausted_quota_is_not_retried(server, fake_time):
    server.script(status(429, message="You exceeded your quota", error_code="insufficient_quota"))
    error = fail(make(server, fake_time))
    assert len(server.requests) == 1
    assert error.error_class == "RateLimitError" and "billing" in str(error)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
def test_a_non_json_body_becomes_a_provider_error(server, fake_time, content_type):
    server.script(malformed(content_type), ok("{}"))
    error = fail(make(server, fake_time))
    assert error.error_class == "APIResponseValidationError"
    assert len(server.requests) == 1
    assert "OPENAI_BASE_URL" in str(error)


def test_a_json_body_of_the_wrong_shape_becomes_a_provider_error(server, fake_time):
    server.script(status(200, message="not a completion"))  # {"error": {...}} with 200
    error = fail(make(server, fake_time))
    assert error.error_class == "APIResponseValidationError"


def test_a_non_sse_stream_becomes_a_provider_error(server, fake_time):
    server.script(malformed("text/event-stream"))
    with pytest.raises(ProviderError) as info:
        list(make(server, fake_time).stream(request()))
    assert info.value.error_class == "APIResponseValidationError"


def test_stream_failures_are_retried_before_the_first_delta(server, fake_time):
    server.script(status(503, headers={"Retry-After": "0"}), ok("fine"))
    *_, final = make(server, fake_time).stream(request())
    assert isinstance(final, LLMResponse) and final.attempts == 2


def test_an_error_inside_a_stream_is_not_retried(server, fake_time):
    first = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini"}
    first["choices"] = [{"index": 0, "delta": {"content": "half "}, "finish_reason": None}]
    events = [first, {"error": {"message": f"overloaded, key {KEY}"}}]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    server.script(Behaviour(raw_body=body, content_type="text/event-stream"), ok("whole"))
    seen: list[object] = []
    with pytest.raises(ProviderError) as info:
        seen.extend(make(server, fake_time).stream(request()))
    assert seen == ["half "] and len(server.requests) == 1
    assert info.value.error_class == "APIError" and "overloaded" in str(info.value)
    assert KEY not in str(info.value)


def test_the_provider_repr_never_shows_the_key(server, fake_time):
    assert KEY not in repr(make(server, fake_time))


# rate limit ---------------------------------------------------------------------------
def test_the_limiter_holds_across_threads(fake_time):
    limiter = RateLimiter(3, clock=fake_time.clock, sleep=fake_time.sleep)
    granted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        started = limiter.acquire()
        with lock:
            granted.append(started)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)

    granted.sort()
    assert len(granted) == 10
    # No window of 60 s ever holds more than 3 starts.
    assert all(b - a >= WINDOW_S for a, b in zip(granted, granted[3:], strict=False))
    assert granted[-1] - granted[0] >= 3 * WINDOW_S


def test_every_http_attempt_takes_a_slot(server, fake_time):
    limiter = RateLimiter(2, clock=fake_time.clock, sleep=fake_time.sleep)
    settings = Settings(
        llm_provider="openai", openai_api_key=KEY, openai_base_url=server.openai_url
    )
    provider = build_openai_provider(
        settings, sleep=fake_time.sleep, clock=fake_time.clock, limiter=limiter
    )
    server.script(status(500, headers={"Retry-After": "0"}), ok("{}"), ok("{}"))
    provider.complete(request())  # two attempts: the window is full
    provider.complete(request())  # waits for the oldest start to leave the window
    assert fake_time.sleeps == [0.0, WINDOW_S]


def test_providers_of_one_endpoint_share_a_limiter(server):
    settings = Settings(
        llm_provider="openai", openai_api_key=KEY, openai_base_url=server.openai_url
    )
    a, b = build_openai_provider(settings), build_openai_provider(settings)
    assert a._limiter is b._limiter
    assert shared_limiter("openai", "http://elsewhere/v1", 60) is not a._limiter
    faster = build_openai_provider(dataclasses.replace(settings, llm_rate_limit_per_min=5))
    assert faster._limiter is a._limiter and a._limiter.per_minute == 5


# configuration ------------------------------------------------------------------------
def test_openai_without_a_key_is_a_config_error():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        Settings.load(environ={"LLM_PROVIDER": "openai"}, dotenv=None)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        Settings().with_provider("openai")


def test_azure_without_its_settings_is_a_config_error():
    with pytest.raises(ConfigError, match="AZURE_OPENAI_ENDPOINT.*AZURE_OPENAI_DEPLOYMENT"):
        Settings.load(
            environ={"LLM_PROVIDER": "azure", "AZURE_OPENAI_API_KEY": "k" * 32}, dotenv=None
        )


def test_get_provider_builds_the_configured_provider(server):
    settings = Settings.load(
        environ={
            "LLM_PROVIDER": "openai",
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": server.openai_url,
            "OPENAI_MODEL": "gpt-4.1-mini",
        },
        dotenv=None,
    )
    provider = get_provider(settings)
    assert (provider.name, provider.model) == ("openai", "gpt-4.1-mini")
    server.script(ok(json.dumps({"ok": True})))
    assert provider.complete(request()).text == '{"ok": true}'


def test_building_a_stub_through_the_openai_builder_is_refused():
    with pytest.raises(ConfigError, match="openai or azure"):
        build_openai_provider(Settings())
