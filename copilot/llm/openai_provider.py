"""OpenAI, Azure OpenAI and any OpenAI-compatible server, behind the `Provider` protocol.

Errors: only `copilot.errors.ProviderError` leaves this module. Every openai exception (and
the malformed replies the client lets through as plain text or a bare JSON error) is
translated once, in `_failure`, and raised outside the `except` block so the vendor exception,
which carries the request and its auth headers, is not even chained to it.

Retries live in this one layer: the openai client is built with max_retries=0 and tenacity
retries 429, 5xx, timeouts and connection errors, honouring Retry-After, bounded by
LLM_MAX_ATTEMPTS and by LLM_MAX_RETRY_S across the whole call. Every HTTP attempt first takes
a slot from the process-wide LLM_RATE_LIMIT_PER_MIN limiter.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from openai.types.chat import ChatCompletion
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from copilot.config import Settings
from copilot.errors import ConfigError, ProviderError
from copilot.llm.base import LLMRequest, LLMResponse, count_tokens, messages_tokens
from copilot.llm.ratelimit import RateLimiter, shared_limiter

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Malformed(Exception):
    """The server answered 200 with something that is not a chat completion."""


MALFORMED = "APIResponseValidationError"
# What a request may raise: ValueError is the client's json.loads of a body that claims to be
# JSON and is not. Reading a reply adds what a JSON body of the wrong shape raises.
_REQUEST_ERRORS = (openai.OpenAIError, ValueError)
_SHAPE_ERRORS = (_Malformed, ValueError, AttributeError, IndexError, TypeError)
_BACKOFF = wait_exponential_jitter(initial=0.5, max=20.0, jitter=0.5)
# Reasoning models refuse any temperature but the default.
_NO_TEMPERATURE = re.compile(r"^(o\d|gpt-5)")


@dataclass(frozen=True)
class EnvNames:
    """The settings a user would fix, named in error messages."""

    key: str
    model: str
    url: str


OPENAI_ENV = EnvNames("OPENAI_API_KEY", "OPENAI_MODEL", "OPENAI_BASE_URL")
AZURE_ENV = EnvNames(
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_DEPLOYMENT",
    "AZURE_OPENAI_ENDPOINT (and AZURE_OPENAI_API_VERSION)",
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    """HTTP attempts per call, the first included."""
    timeout_s: float = 30.0
    """Seconds one HTTP attempt may take."""
    max_retry_s: float = 60.0
    """Seconds the whole call may take, waits between attempts included."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.llm_max_attempts, settings.llm_timeout_s, settings.llm_max_retry_s)


class OpenAIProvider:
    """Chat completions over the official client (OpenAI, AzureOpenAI or a compatible URL)."""

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        name: str,
        model: str,
        env: EnvNames = OPENAI_ENV,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.model = model
        self._client = client
        self._env = env
        self._retry = retry or RetryPolicy()
        self._limiter = limiter or RateLimiter(60)
        self._sleep = sleep
        self._clock = clock
        self._warned_no_usage = False

    def __repr__(self) -> str:  # never show the client: it holds the key
        return f"OpenAIProvider(name={self.name!r}, model={self.model!r})"

    def complete(self, request: LLMRequest) -> LLMResponse:
        started = time.perf_counter()
        reply, attempts = self._send(lambda timeout: self._create(request, timeout, stream=False))
        try:
            text, usage, model = _read_completion(reply)
        except _SHAPE_ERRORS as exc:
            failure = self._failure(exc, attempts)
        else:
            return self._response(request, text, usage, model, started, attempts)
        raise failure

    def stream(self, request: LLMRequest) -> Iterator[str | LLMResponse]:
        started = time.perf_counter()
        chunks, attempts = self._send(lambda timeout: self._create(request, timeout, stream=True))
        pieces: list[str] = []
        usage: Any = None
        model = ""
        failure: ProviderError | None = None
        try:
            with chunks:  # closes the HTTP response even when the consumer stops early
                for chunk in chunks:
                    usage = chunk.usage or usage
                    model = chunk.model or model
                    if chunk.choices and (piece := chunk.choices[0].delta.content):
                        pieces.append(piece)
                        yield piece
        # Text may already be out, so a stream that breaks half-way is not retried.
        except _REQUEST_ERRORS + _SHAPE_ERRORS as exc:
            failure = self._failure(exc, attempts)
        if failure is None and not pieces and usage is None:
            failure = self._failure(_Malformed("the stream carried no chunks"), attempts)
        if failure is not None:
            raise failure
        yield self._response(request, "".join(pieces), usage, model, started, attempts)

    # one HTTP request --------------------------------------------------------------------
    def _create(self, request: LLMRequest, timeout: float, *, stream: bool) -> Any:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_output_tokens,
        }
        if not _NO_TEMPERATURE.match(self.model):
            params["temperature"] = 0
        if request.schema:
            params["response_format"] = {"type": "json_object"}
        if stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        return self._client.chat.completions.create(**params, timeout=timeout)

    def _response(
        self,
        request: LLMRequest,
        text: str,
        usage: Any,
        model: str,
        started: float,
        attempts: int,
    ) -> LLMResponse:
        if usage is None:  # some compatible servers send none; count as the stub does
            if not self._warned_no_usage:
                self._warned_no_usage = True
                log.warning("%s sent no token usage; recording an approximate count", self.name)
            prompt, completion = messages_tokens(request.messages), count_tokens(text)
        else:
            prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
        return LLMResponse(
            text=text,
            provider=self.name,
            model=self._model_name(model),
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_ms=(time.perf_counter() - started) * 1000,
            attempts=attempts,
        )

    def _model_name(self, reported: str) -> str:
        """The configured name, unless the server names a different model.

        OpenAI reports a dated snapshot of the configured model: keep the configured name so
        usage rows group with failed calls and runs. Azure reports the base model behind a
        deployment: keep that, as the price table knows models, not deployment names.
        """
        return self.model if not reported or reported.startswith(self.model) else reported

    # retries -----------------------------------------------------------------------------
    def _send(self, send: Callable[[float], T]) -> tuple[T, int]:
        """send(timeout) with retries; returns its result and the number of attempts."""
        started = self._clock()
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=_wait,
            stop=lambda state: self._stop(state, started),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )

        def attempt() -> T:
            self._limiter.acquire()
            return send(self._timeout_left(started))

        try:
            return retrying(attempt), _attempts(retrying)
        except _REQUEST_ERRORS as exc:
            failure = self._failure(exc, _attempts(retrying), retried=True)
        raise failure

    def _stop(self, state: RetryCallState, started: float) -> bool:
        if state.attempt_number >= self._retry.max_attempts:
            return True
        return self._clock() - started + state.upcoming_sleep > self._retry.max_retry_s

    def _timeout_left(self, started: float) -> float:
        """An attempt may not outlive the call's budget."""
        left = self._retry.max_retry_s - (self._clock() - started)
        return max(0.1, min(self._retry.timeout_s, left))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(  # the class and status only: an error's text may quote the key
            "%s %s: %s; attempt %d of %d failed, retrying in %.2fs",
            self.name,
            self.model,
            _describe(exc),
            state.attempt_number,
            self._retry.max_attempts,
            state.upcoming_sleep,
        )

    # translation -------------------------------------------------------------------------
    def _failure(
        self, exc: BaseException, attempts: int, *, retried: bool = False
    ) -> ProviderError:
        """The ProviderError for exc; `retried` when the retry loop gave up on it."""
        error_class, what, advice = self._explain(exc)
        retryable = _retryable(exc)
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if retried and retryable and attempts < self._retry.max_attempts:
            tries += f"; another would pass LLM_MAX_RETRY_S={self._retry.max_retry_s:g}"
        elif retried and retryable:
            tries += f" (LLM_MAX_ATTEMPTS={self._retry.max_attempts})"
        message = f"{self.name} model {self.model!r}: {what} after {tries}. {advice}"
        return ProviderError(
            self._scrub(message),
            provider=self.name,
            model=self.model,
            attempts=attempts,
            error_class=error_class,
            retryable=retryable,
        )

    def _explain(self, exc: BaseException) -> tuple[str, str, str]:
        """(error_class, what happened, what to do)."""
        env, stub = self._env, "or use LLM_PROVIDER=stub."
        if isinstance(exc, openai.APITimeoutError):
            return (
                "APITimeoutError",
                f"no reply within LLM_TIMEOUT_S={self._retry.timeout_s:g}s",
                f"Raise LLM_TIMEOUT_S or check the server, {stub}",
            )
        if isinstance(exc, openai.APIConnectionError):
            return (
                "APIConnectionError",
                f"could not connect to {self._client.base_url}",
                f"Check {env.url} and the network, {stub}",
            )
        if isinstance(exc, openai.APIStatusError):
            return self._explain_status(exc)
        if isinstance(exc, _SHAPE_ERRORS):
            return (
                MALFORMED,
                "the reply is not a chat completion (malformed or non-JSON body)",
                f"Check that {env.url} points at an OpenAI-compatible API, {stub}",
            )
        detail = " ".join(str(exc).split())[:200]  # e.g. an error event inside a stream
        return type(exc).__name__, f"the call failed ({detail})", f"Try again, {stub}"

    def _explain_status(self, exc: openai.APIStatusError) -> tuple[str, str, str]:
        env, stub, code = self._env, "or use LLM_PROVIDER=stub.", exc.status_code
        said = _server_said(exc)
        if code == 401:
            what, advice = "the API key was rejected (401)", f"Check {env.key}, {stub}"
        elif code == 403:
            what = f"the key may not use this model (403){said}"
            advice = f"Check the key's permissions and {env.model}, {stub}"
        elif code == 404:
            what = f"model {self.model!r} was not found (404){said}"
            advice = f"Check {env.model} and {env.url}, {stub}"
        elif code == 429 and _error_code(exc) == "insufficient_quota":
            what, advice = "the account's quota is used up (429)", f"Check billing, {stub}"
        elif code == 429:
            what = f"rate limited (429){said}"
            advice = f"Wait a minute or lower LLM_RATE_LIMIT_PER_MIN, {stub}"
        elif code >= 500:
            what, advice = f"the server failed ({code}){said}", f"Try again later, {stub}"
        else:
            what = f"the server refused the request ({code}){said}"
            advice = f"Check {env.model} and the request settings, {stub}"
        return type(exc).__name__, what, advice

    def _scrub(self, text: str) -> str:
        key = str(getattr(self._client, "api_key", "") or "")
        return text.replace(key, "[REDACTED]") if len(key) >= 6 else text


def build_openai_provider(
    settings: Settings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    limiter: RateLimiter | None = None,
) -> OpenAIProvider:
    """The provider for LLM_PROVIDER=openai or azure; sleep, clock and limiter are test seams."""
    client, model, env = _client(settings)
    endpoint = settings.azure_endpoint if env is AZURE_ENV else str(client.base_url)
    return OpenAIProvider(
        client,
        name=settings.llm_provider,
        model=model,
        env=env,
        retry=RetryPolicy.from_settings(settings),
        limiter=limiter
        or shared_limiter(settings.llm_provider, endpoint, settings.llm_rate_limit_per_min),
        sleep=sleep,
        clock=clock,
    )


def _client(settings: Settings) -> tuple[openai.OpenAI, str, EnvNames]:
    common: dict[str, Any] = {"max_retries": 0, "timeout": settings.llm_timeout_s}
    try:
        if settings.llm_provider == "azure":
            azure = openai.AzureOpenAI(
                azure_endpoint=settings.azure_endpoint,
                api_key=settings.azure_api_key,
                api_version=settings.azure_api_version,
                **common,
            )
            return azure, settings.azure_deployment, AZURE_ENV
        if settings.llm_provider == "openai":
            client = openai.OpenAI(
                api_key=settings.openai_api_key,
                base_url=settings.openai_base_url or None,
                **common,
            )
            return client, settings.openai_model, OPENAI_ENV
    except (openai.OpenAIError, ValueError) as exc:
        problem = type(exc).__name__
    else:
        raise ConfigError(
            f"LLM_PROVIDER={settings.llm_provider!r} is not an OpenAI-style provider; "
            "use openai or azure."
        )
    raise ConfigError(  # the client's own message may quote what it was given, key included
        f"Could not set up LLM_PROVIDER={settings.llm_provider} ({problem}); check "
        "OPENAI_BASE_URL or AZURE_OPENAI_ENDPOINT / AZURE_OPENAI_API_VERSION, "
        "or use LLM_PROVIDER=stub."
    )


def _read_completion(reply: object) -> tuple[str, Any, str]:
    """(text, usage or None, model) of a chat completion; _Malformed if it is not one."""
    # Without strict validation the client hands back the body as str when it is not JSON.
    if not isinstance(reply, ChatCompletion):
        raise _Malformed(f"got {type(reply).__name__}, not a chat completion")
    return reply.choices[0].message.content or "", reply.usage, reply.model or ""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return _error_code(exc) != "insufficient_quota"  # waiting will not refill it
        return exc.status_code >= 500
    return False


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    hinted = _retry_after(exc)
    return hinted if hinted is not None else _BACKOFF(state)


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, then Retry-After), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name, "")) * scale
        except ValueError:
            continue  # absent, or an HTTP date: fall back to backoff
        if 0 <= seconds < float("inf"):
            return seconds
    return None


def _attempts(retrying: Retrying) -> int:
    return int(retrying.statistics.get("attempt_number", 1))


def _error_code(exc: openai.APIStatusError) -> str:
    return str(exc.code or "")


def _server_said(exc: BaseException) -> str:
    """The server's own error message, short; a 401's is left out as it may quote the key."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code == 401:
        return ""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else body
    if not isinstance(message, str) or not message.strip():
        return ""
    return f": {' '.join(message.split())[:200]}"


def _describe(exc: BaseException | None) -> str:
    status = getattr(exc, "status_code", None)
    return type(exc).__name__ + (f" ({status})" if status else "")
