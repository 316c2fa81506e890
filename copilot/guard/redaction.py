"""Secret redaction: runs on everything the store writes and every prompt that leaves the
machine, so a key pasted into a task or returned by a tool never reaches the DuckDB file.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"
# Values stop at quotes, commas and brackets so redacting serialised JSON keeps it valid JSON.
_VALUE = r"""[^\s"',;}\]\\]"""  # and backslashes: never cut a JSON escape in half
_KEEP = r"\g<keep>"
# The lines of a PEM body (base64 and the legacy Proc-Type/DEK-Info headers), each ending a
# line; JSON-escaped newlines count, so a key cut inside a serialised tool output goes too.
_EOL = r"(?=[ \t]*(?:\r?\n|\\[nr]|$))"
_PEM_LINE = r"(?:[A-Za-z0-9+/=]{4,}|(?:Proc-Type|DEK-Info):[^\n\\]*)"
_PEM_BODY = r"(?:(?:\s|\\[nrt])*" + _PEM_LINE + _EOL + ")*"
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), keep + REDACTED)
    for pattern, keep in (
        (r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}", ""),  # OpenAI keys, not "disk-full-..."
        (r"gh[pousr]_[A-Za-z0-9]{20,}", ""),  # GitHub tokens
        (r"github_pat_[A-Za-z0-9_]{20,}", ""),
        (r"AKIA[0-9A-Z]{16}", ""),  # AWS access key ids
        (r"xox[baprs]-[A-Za-z0-9-]{10,}", ""),  # Slack tokens
        (r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", ""),  # JWTs
        # A private key from its BEGIN header to its END line or, when the text was cut
        # before the END line (a chunk, an excerpt), through the key lines that follow the
        # header: a cut key is still a key.
        (
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
            r"(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|" + _PEM_BODY + ")",
            "",
        ),
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
