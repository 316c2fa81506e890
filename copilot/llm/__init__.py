"""LLM access for the agents: provider lookup, structured calls, repair and fallback.

`Models.call()` (and `Models.stream()` for text) is the one place that turns a provider reply
into validated data: it tries
the configured provider, asks once for a repair when the JSON does not match the schema,
and falls back to the offline stub for that step when the provider fails for good. Every
attempt comes back as a `UsageNote`, so the run records failures instead of hiding them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from copilot.config import Settings
from copilot.errors import ConfigError, ProviderError
from copilot.llm.base import LLMRequest, LLMResponse, Passage, Provider, StepSpec
from copilot.llm.stub import StubProvider

__all__ = [
    "CallOutcome",
    "LLMRequest",
    "LLMResponse",
    "Models",
    "Passage",
    "Provider",
    "StepSpec",
    "StubProvider",
    "UsageNote",
    "get_provider",
]


def get_provider(settings: Settings) -> Provider:
    """The provider named by LLM_PROVIDER, built from its settings."""
    if settings.llm_provider == "stub":
        return StubProvider()
    if settings.llm_provider in ("openai", "azure"):
        from copilot.llm.openai_provider import build_openai_provider

        return build_openai_provider(settings)
    raise ConfigError(
        f"LLM_PROVIDER={settings.llm_provider!r} is not known; use stub, openai or azure."
    )


@dataclass
class UsageNote:
    """One attempt at a call, as it will appear in llm_usage and the audit log."""

    response: LLMResponse | None
    status: str  # ok, failed, invalid
    provider: str
    model: str
    fallback: bool = False
    error_class: str | None = None
    error: str = ""
    attempts: int = 1
    latency_ms: float = 0.0
    retryable: bool = True


@dataclass
class CallOutcome:
    data: dict[str, Any]
    notes: list[UsageNote] = field(default_factory=list)

    @property
    def fell_back(self) -> bool:
        return any(n.fallback for n in self.notes)


class Models:
    """The configured provider with the offline stub behind it.

    A failure that retrying cannot fix (bad key, unknown model) trips a breaker: the rest of
    this run goes straight to the stub instead of asking the server again at every step.
    """

    def __init__(self, primary: Provider, fallback: Provider | None = None) -> None:
        self.primary = primary
        self.fallback = fallback or StubProvider()
        self.broken: ProviderError | None = None

    def call(self, request: LLMRequest) -> CallOutcome:
        outcome = CallOutcome(data={})
        data = None
        if not self._skip_broken(outcome):
            data = self._with_repair(self.primary, request, outcome)
            self._trip(outcome)
        if data is None:
            data, _ = _try(self.fallback, request, outcome, fallback=True)
        return _finish(outcome, data)

    def stream(self, request: LLMRequest, on_text: Callable[[str], None]) -> CallOutcome:
        """Like `call` for a text reply, handing each piece to on_text as it arrives."""
        outcome = CallOutcome(data={})
        text = None
        if not self._skip_broken(outcome):
            text = _try_stream(self.primary, request, outcome, on_text, fallback=False)
            self._trip(outcome)
        if text is None:
            text = _try_stream(self.fallback, request, outcome, on_text, fallback=True)
        return _finish(outcome, None if text is None else {"text": text})

    def _skip_broken(self, outcome: CallOutcome) -> bool:
        if self.broken is None:
            return False
        outcome.notes.append(
            UsageNote(
                None,
                "failed",
                self.primary.name,
                self.primary.model,
                error_class=self.broken.error_class,
                attempts=0,
                error=f"not called: earlier in this run {self.broken}",
            )
        )
        return True

    def _trip(self, outcome: CallOutcome) -> None:
        last = outcome.notes[-1] if outcome.notes else None
        if last and last.status == "failed" and not last.retryable and not last.fallback:
            self.broken = ProviderError(
                last.error,
                provider=last.provider,
                model=last.model,
                error_class=last.error_class or "",
            )

    def _with_repair(
        self, provider: Provider, request: LLMRequest, outcome: CallOutcome
    ) -> dict[str, Any] | None:
        """Try once; on invalid JSON, try again showing the model its reply and the problem."""
        data, reply = _try(provider, request, outcome, fallback=False)
        if data is not None or reply is None:
            return data
        problem = outcome.notes[-1].error
        repair = dataclasses.replace(
            request,
            messages=[
                *request.messages,
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": f"That reply is not valid: {problem}. "
                    "Reply again with JSON only, matching the schema.",
                },
            ],
        )
        data, _ = _try(provider, repair, outcome, fallback=False)
        return data


def _finish(outcome: CallOutcome, data: dict[str, Any] | None) -> CallOutcome:
    if data is None:
        raise ProviderError("The offline provider produced no valid reply; this is a bug.")
    outcome.data = data
    return outcome


def _failed(provider: Provider, exc: ProviderError, started: float, *, fallback: bool) -> UsageNote:
    return UsageNote(
        None,
        "failed",
        provider.name,
        provider.model,
        fallback=fallback,
        error_class=exc.error_class,
        error=str(exc),
        attempts=exc.attempts,
        latency_ms=(time.perf_counter() - started) * 1000,
        retryable=exc.retryable,
    )


def _try(
    provider: Provider, request: LLMRequest, outcome: CallOutcome, *, fallback: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """(valid data or None, the raw reply or None when the call itself failed)."""
    started = time.perf_counter()
    try:
        response = provider.complete(request)
    except ProviderError as exc:
        outcome.notes.append(_failed(provider, exc, started, fallback=fallback))
        return None, None
    data, problem = parse_reply(response.text, request.schema)
    outcome.notes.append(
        UsageNote(
            response,
            "ok" if problem is None else "invalid",
            response.provider,
            response.model,
            fallback=fallback,
            error_class=None if problem is None else "InvalidJSON",
            error=problem or "",
        )
    )
    return (data if problem is None else None), response.text


def _try_stream(
    provider: Provider,
    request: LLMRequest,
    outcome: CallOutcome,
    on_text: Callable[[str], None],
    *,
    fallback: bool,
) -> str | None:
    started = time.perf_counter()
    shown = False
    try:
        for item in provider.stream(request):
            if isinstance(item, LLMResponse):
                outcome.notes.append(
                    UsageNote(item, "ok", item.provider, item.model, fallback=fallback)
                )
                return item.text
            on_text(item)
            shown = True
    except ProviderError as exc:
        outcome.notes.append(_failed(provider, exc, started, fallback=fallback))
        if shown:  # the reader saw part of an answer: say why another one follows
            on_text(f"\n\n_({provider.name} stopped mid-answer; the offline answer follows)_\n\n")
    return None


def parse_reply(text: str, schema: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """Text replies pass as {"text": ...}; JSON replies are checked against their schema."""
    if schema is None:
        return {"text": text}, None
    return parse_json(text, schema)


def parse_json(text: str, schema: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """(data, None) when text is a JSON object matching schema, else ({}, what is wrong)."""
    body = text.strip()
    if body.startswith("```"):  # models like to fence JSON even when told not to
        body = body.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return {}, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not isinstance(data, dict):
        return {}, "not a JSON object"
    if schema:
        try:
            jsonschema.validate(data, schema)
        except jsonschema.ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            return {}, f"schema mismatch at {path}: {exc.message}"
    return data, None
