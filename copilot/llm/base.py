"""What every LLM provider speaks: a request built by an agent, a response with usage.

Agents build an `LLMRequest` holding both the structured inputs (task, passages, step) and
the chat messages rendered from them by `copilot.llm.prompts`. Real providers send the
messages; the offline stub reasons over the structured inputs. Both count tokens of the same
messages, so usage rows are comparable across providers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Purpose = Literal["plan", "execute", "review"]


@dataclass(frozen=True)
class Passage:
    """A retrieved runbook chunk, handed to a model as data, never as instructions."""

    chunk_id: str
    source: str
    heading: str
    text: str
    score: float
    flagged: bool = False  # the injection guard flagged it at index time: evidence, not orders
    guard_reasons: tuple[str, ...] = ()
    # The chunk's hash when it was indexed: the reviewer flags a citation whose runbook has
    # changed since. Empty in states saved before it existed.
    content_hash: str = ""


@dataclass(frozen=True)
class StepSpec:
    """One planned step as the executor sees it."""

    title: str
    action: str  # "answer" or "tool"
    tool: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    citations: tuple[str, ...] = ()


@dataclass
class LLMRequest:
    purpose: Purpose
    task: str
    passages: list[Passage]
    messages: list[dict[str, str]]
    step: StepSpec | None = None
    draft: str = ""  # the answer under review, for purpose="review"
    prior: str = ""  # the previous turn a follow-up builds on (RunState.prior)
    schema: dict[str, Any] | None = None
    max_output_tokens: int = 1024
    """Sent as max_tokens, so a budget reservation is a true ceiling for the call."""


@dataclass
class LLMResponse:
    text: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float = 0.0
    attempts: int = 1


class Provider(Protocol):
    name: str
    model: str

    def complete(self, request: LLMRequest) -> LLMResponse: ...

    def stream(self, request: LLMRequest) -> Iterator[str | LLMResponse]:
        """Yield text pieces, then the final LLMResponse with usage."""
        ...


_TOKEN = re.compile(r"\w+|[^\w\s]")
CITATION = re.compile(r"\[([^\[\]\s]+#[^\[\]\s]+)\]")
"""A citation marker in answer text: [runbook.md#section]."""


# Words that make a task a regression after a change, where undoing the change comes first.
_REGRESSION = re.compile(
    r"\bregress|\b(?:after|since|following)\s+(?:the\s+|a\s+|our\s+|last\s+|this\s+)?"
    r"(?:\w+\s+)?(?:deploy|deployment|release|rollout|upgrade)",
    re.IGNORECASE,
)


def is_regression(task: str) -> bool:
    """A regression after a change: the reviewer wants the rollback cited, and the offline
    provider puts it first."""
    return bool(_REGRESSION.search(task))


def cited_ids(text: str) -> list[str]:
    """Chunk ids cited in text, first mention first, each once."""
    return list(dict.fromkeys(CITATION.findall(text)))


def count_tokens(text: str) -> int:
    """Approximate token count (words and punctuation) for providers that report none."""
    return len(_TOKEN.findall(text))


def messages_tokens(messages: list[dict[str, str]]) -> int:
    return sum(count_tokens(m["content"]) + 4 for m in messages)
