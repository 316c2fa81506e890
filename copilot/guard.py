"""Prompt-injection detection and secret redaction.

Detection returns data (flags with the pattern that matched and where), never raises: the
reviewer decides what a flag means for the verdict. Redaction runs on everything the store
writes, so a key pasted into a task or returned by a tool never reaches the DuckDB file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_INJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        (
            "override",
            r"\b(ignore|disregard|forget)\b.{0,40}\b(previous|prior|above|all|earlier)\b"
            r".{0,20}\b(instructions?|rules|prompts?|guidance)",
        ),
        ("role-hijack", r"\byou are now\b|\bact as (an? )?(admin|root|system|developer)\b"),
        (
            "system-prompt",
            r"\b(reveal|print|show|leak)\b.{0,30}\b(system prompt|instructions|"
            r"api key|secret|password)s?\b",
        ),
        ("fake-role", r"(?m)^\s*(system|assistant)\s*:"),
        (
            "approval-bypass",
            r"\b(skip|bypass|without|no need for)\b.{0,20}\b(approval|review|"
            r"policy|policies)\b",
        ),
        (
            "exfiltration",
            r"\b(send|post|upload|exfiltrate)\b.{0,40}\b(to|at)\b.{0,20}"
            r"(https?://|\S+@\S+\.\w+)",
        ),
        ("tag-escape", r"</?(passage|data|system)\b"),
    )
)


@dataclass(frozen=True)
class InjectionFlag:
    where: str  # "task", "passage <id>", "tool <name>"
    pattern: str  # which rule matched
    excerpt: str

    def describe(self) -> str:
        return f'possible prompt injection in {self.where} ({self.pattern}): "{self.excerpt}"'


def scan(text: str, where: str) -> list[InjectionFlag]:
    flags: list[InjectionFlag] = []
    for name, pattern in _INJECTION_PATTERNS:
        flags.extend(
            InjectionFlag(where, name, _excerpt(text, m.start(), m.end()))
            for m in pattern.finditer(text)
        )
    return flags


def _excerpt(text: str, start: int, end: int) -> str:
    snippet = text[max(0, start - 20) : min(len(text), end + 20)]
    return " ".join(snippet.split())[:120]


REDACTED = "[REDACTED]"
# Values stop at quotes, commas and brackets so redacting serialised JSON keeps it valid JSON.
_VALUE = r"""[^\s"',;}\]\\]"""  # and backslashes: never cut a JSON escape in half
_KEEP = r"\g<keep>"
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), keep + REDACTED)
    for pattern, keep in (
        (r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}", ""),  # OpenAI keys, not "disk-full-..."
        (r"gh[pousr]_[A-Za-z0-9]{20,}", ""),  # GitHub tokens
        (r"github_pat_[A-Za-z0-9_]{20,}", ""),
        (r"AKIA[0-9A-Z]{16}", ""),  # AWS access key ids
        (r"xox[baprs]-[A-Za-z0-9-]{10,}", ""),  # Slack tokens
        (r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", ""),  # JWTs
        (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", ""),
        (r"(?i)(?P<keep>\b(?:bearer|basic)\s+)[A-Za-z0-9._\-+/=]{12,}", _KEEP),
        (r"(?P<keep>://)[^/\s:@\"']+:[^/\s@\"']+(?=@)", _KEEP),  # user:password@ in URLs
        # key=value, key: value and "key": "value" for secret-sounding keys
        (
            r"(?i)(?P<keep>(?:api[_-]?key|password|passwd|secret|token)[\"']?\s*[=:]\s*[\"']?)"
            + r"(?!\[REDACTED\])"  # idempotent: redacting twice changes nothing
            + _VALUE
            + "{4,}",
            _KEEP,
        ),
    )
)


class Redactor:
    """Replaces known secret values (the configured keys) and secret-shaped strings."""

    def __init__(self, secrets: list[str] | tuple[str, ...] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _SECRET_PATTERNS:
            text = pattern.sub(replacement, text)
        return text
