"""LLM access for the agents: provider lookup, structured calls, repair and fallback.

`Models.call()` is the one place that turns a provider reply into validated JSON: it tries
the configured provider, asks once for a repair when the JSON does not match the schema,
and falls back to the offline stub for that step when the provider fails for good. Every
attempt comes back as a `UsageNote`, so the run records failures instead of hiding them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from copilot.config import Settings
from copilot.errors import ConfigError, ProviderError
from copilot.llm.base import LLMRequest, LLMResponse, Passage, Provider, StepSpec
from copilot.llm.stub import StubProvider

__all__ = [
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


@dataclass
class CallOutcome:
    data: dict[str, Any]
    notes: list[UsageNote] = field(default_factory=list)

    @property
    def fell_back(self) -> bool:
        return any(n.fallback for n in self.notes)


class Models:
    def __init__(self, primary: Provider, fallback: Provider | None = None) -> None:
        self.primary = primary
        self.fallback = fallback or StubProvider()

    def call(self, request: LLMRequest) -> CallOutcome:
        outcome = CallOutcome(data={})
        data = self._with_repair(self.primary, request, outcome)
        if data is None and self.primary is not self.fallback:
            data, _ = _try(self.fallback, request, outcome, fallback=True)
        if data is None:
            raise ProviderError("The offline provider produced no valid reply; this is a bug.")
        outcome.data = data
        return outcome

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


def _try(
    provider: Provider, request: LLMRequest, outcome: CallOutcome, *, fallback: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """(valid data or None, the raw reply or None when the call itself failed)."""
    started = time.perf_counter()
    try:
        response = provider.complete(request)
    except ProviderError as exc:
        outcome.notes.append(
            UsageNote(
                None,
                "failed",
                provider.name,
                provider.model,
                fallback=fallback,
                error_class=exc.error_class,
                error=str(exc),
                attempts=exc.attempts,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        )
        return None, None
    data, problem = parse_json(response.text, request.schema)
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
