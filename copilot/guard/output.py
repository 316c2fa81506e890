"""Output safety: text from a model, a runbook or a tool made inert before `st.markdown`.

The Markdown exfiltration channel is an image whose URL carries data: it loads the moment
the answer renders, with no click. So nothing here may render as active content:
  - no raw HTML: `<` outside code becomes `&lt;` (a tag shows as text);
  - no images, remote or not: `![alt](url)` becomes `image: alt (`url`)`;
  - no links: `[label](url)`, `<url>` and bare URLs become `label (`url`)`, the URL in a code
    span, so it is shown and can be copied but neither loads nor is clickable;
  - no reference definitions (`[r]: url` would revive `![x][r]`): their `]:` is escaped.
Code (fenced blocks at the start of a line, one-line inline spans) is already inert and kept
byte for byte, so commands stay copyable. Our citation markers `[file.md#section]` are not
links and pass through unchanged.

Where this module and a Markdown parser could disagree on what is code, it treats the text as
prose and escapes it: a stray `&lt;` in an odd code block is the price of never missing one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# A fence opening at column 0 is always top level, so its block ends only at a closing
# fence or the end of the text; an indented fence may end with its list item, so it is prose.
_FENCE = re.compile(
    r"^(?P<f>`{3,}|~{3,})[^\n]*(?:\n|\Z)(?:[\s\S]*?\n)??"
    r"(?:[ \t]{0,3}(?P=f)[`~]*[ \t]*(?:\n|\Z)|\Z)",
    re.MULTILINE,
)
# One-line code spans, not opened by an escaped backtick (`\`` is a literal backtick).
_INLINE = re.compile(r"(?<![\\`])(?P<b>`+)(?!`)[^\n]*?[^`\n](?P=b)(?!`)")
_CONSTRUCT = re.compile(
    r"!\[(?P<alt>[^\]\n]*)\]\((?P<src>[^)\n]*)\)"  # inline image
    r"|!\[(?P<refalt>[^\]\n]*)\]\[[^\]\n]*\]"  # reference image
    r"|\[(?P<label>[^\]\n]*)\]\((?P<href>[^)\n]*)\)"  # inline link
    r"|<(?P<auto>[A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\s]*)>"  # autolink
    r"|(?P<bare>\b(?:https?://|ftp://|www\.)[^\s<>()\[\]`'\"]*[^\s<>()\[\]`'\".,;:!?])"
)


def safe_markdown(text: str) -> str:
    """`text` with every image, link and HTML tag turned into plain, inert text."""
    return "".join(part if is_code else _prose(part) for is_code, part in _split_code(text))


def _split_code(text: str) -> Iterator[tuple[bool, str]]:
    pos = 0
    for fence in _FENCE.finditer(text):
        yield from _split_inline(text[pos : fence.start()])
        yield True, fence.group()
        pos = fence.end()
    yield from _split_inline(text[pos:])


def _split_inline(text: str) -> Iterator[tuple[bool, str]]:
    pos = 0
    for span in _INLINE.finditer(text):
        yield False, text[pos : span.start()]
        yield True, span.group()
        pos = span.end()
    yield False, text[pos:]


def _prose(text: str) -> str:
    parts: list[str] = []
    pos = 0
    for m in _CONSTRUCT.finditer(text):
        parts.append(_inert(text[pos : m.start()]))
        parts.append(_render(m))
        pos = m.end()
    parts.append(_inert(text[pos:]))
    return "".join(parts)


def _render(m: re.Match[str]) -> str:
    if m.group("src") is not None:
        return f"image: {_prose(m.group('alt')) or 'no description'} ({_code(m.group('src'))})"
    if m.group("refalt") is not None:
        return f"image: {_prose(m.group('refalt')) or 'no description'}"
    if m.group("href") is not None:
        label = _prose(m.group("label"))
        return f"{label} ({_code(m.group('href'))})" if label else _code(m.group("href"))
    return _code(m.group("auto") or m.group("bare"))


def _inert(text: str) -> str:
    """Escape what could still start HTML, an image, a link or a reference definition."""
    text = text.replace("<", "&lt;")
    text = text.replace("![", "!\\[").replace("](", "]\\(").replace("]:", "]\\:")
    return text


def _code(url: str) -> str:
    """The URL (title and angle brackets dropped) as a code span that no backtick ends."""
    url = url.strip()
    url = (url.split()[0] if url.split() else "").strip("<>")
    if not url:
        return "(no address)"
    fence = "`" * (max((len(r) for r in re.findall(r"`+", url)), default=0) + 1)
    pad = " " if url.startswith("`") or url.endswith("`") else ""
    return f"{fence}{pad}{url}{pad}{fence}"
