"""Layer 2: decode spans an attacker encoded to hide an instruction, so the patterns can
read them: base64, hex (plain or \\x41 escapes), URL percent-encoding and rot13.

A decoded span counts only when it comes out as readable text: a sha256 digest, a container
image digest or random base64 in a runbook decodes to bytes, not to words, and is ignored.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse
from collections.abc import Iterator

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){8,}(?![0-9A-Fa-f])")
_HEX_ESCAPES = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){6,}")
_PERCENT = re.compile(r"[^\s%]{0,40}(?:%[0-9A-Fa-f]{2}[^\s%]{0,40}){3,}")
_MAX_SPANS = 50  # a pathological input cannot make one scan decode forever


def decoded_spans(text: str) -> Iterator[tuple[str, str]]:
    """(encoding, decoded text) for each span that decodes to readable text."""
    count = 0
    for name, found in (
        ("base64", _base64_spans(text)),
        ("hex", _hex_spans(text)),
        ("url-encoding", _percent_spans(text)),
    ):
        for decoded in found:
            count += 1
            if count > _MAX_SPANS:
                return
            yield name, decoded


def rot13(text: str) -> str:
    """The whole text rotated: ordinary prose becomes gibberish that no pattern matches,
    while an instruction hidden in rot13 comes out in clear."""
    return codecs.encode(text, "rot13")


def _base64_spans(text: str) -> Iterator[str]:
    for match in _BASE64.finditer(text):
        span = match.group()
        if span.isalnum() and (span.isalpha() or span.isdigit()):
            continue  # one long word or number, not an encoding
        raw = span.replace("-", "+").replace("_", "/")
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if readable := _readable(data):
            yield readable


def _hex_spans(text: str) -> Iterator[str]:
    for match in _HEX.finditer(text):
        if readable := _readable(bytes.fromhex(match.group())):
            yield readable
    for match in _HEX_ESCAPES.finditer(text):
        data = bytes.fromhex(match.group().replace("\\x", ""))
        if readable := _readable(data):
            yield readable


def _percent_spans(text: str) -> Iterator[str]:
    for match in _PERCENT.finditer(text):
        decoded = urllib.parse.unquote(match.group())
        if decoded != match.group() and _mostly_words(decoded):
            yield decoded


def _readable(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return decoded if _mostly_words(decoded) else None


def _mostly_words(text: str) -> bool:
    """Printable, and letters and spaces dominate, as in a sentence."""
    if not text or not all(c.isprintable() or c in "\n\t" for c in text):
        return False
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return letters / len(text) >= 0.7 and " " in text.strip()
