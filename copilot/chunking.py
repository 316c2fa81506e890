"""Markdown-aware chunking: one chunk per heading section, long sections split by paragraph.

Each chunk knows its file, heading path, character span in the file and a content hash, so
the index can reuse embeddings for text that did not change.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_CHUNK_CHARS = 1200
# How many times the heading path counts in a chunk's BM25 text (tuned on
# tests/data/tuning_queries.jsonl, never on the held-out set).
HEADING_WEIGHT = 3
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^(```|~~~)")
_ID_UNSAFE = re.compile(r"[\s\[\]#]+")
_WORD = re.compile(r"[a-z0-9]+")
BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# Words people use for what a standard runbook section does, keyed by its heading's slug.
SECTION_TERMS = {
    "symptoms": "symptom signs alert alerts firing look like seeing noticed",
    "diagnosis": "diagnose investigate find cause why check determine confirm triage",
    "mitigation": "mitigate fix resolve stop remediate workaround relief now quickly",
    "verification": "verify confirm worked fixed resolved check afterwards recovered",
    "escalation": "escalate page paged call contact who owner team help",
    "rollback": "roll back revert undo abort back out restore previous",
    "revocation": "revoke remove withdraw expire access",
}
LINK_SECTIONS = frozenset({"related", "see-also"})
_STOP_TEXT = """
a an and are as at be but by can could do does for from has have how i if in into is it its
me my no not of on or our so such that the their then there these they this to was we what
when where which who why will with you your
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    source: str
    headings: tuple[str, ...]
    start: int
    end: int
    text: str
    content_hash: str
    # Set by the injection guard at index time (copilot.guard.chunks): a flagged chunk may be
    # cited as evidence, never followed.
    flagged: bool = False
    guard_reasons: tuple[str, ...] = ()

    @property
    def heading(self) -> str:
        return " > ".join(self.headings)

    @property
    def title(self) -> str:
        return self.headings[0] if self.headings else self.source

    def embedding_text(self) -> str:
        """What gets embedded: the heading path gives a section its document's context."""
        return f"{self.heading}\n{self.text}"

    def lexical_text(self) -> str:
        """What BM25 indexes: the heading path repeated, so that a query naming the runbook
        or the section outweighs a passing mention in a body, plus the everyday words for
        what a standard section is for ("who do I page" -> Escalation). A "Related" list
        names other runbooks: indexing its body would make it match their topics."""
        section = slugify(self.headings[-1]) if self.headings else ""
        intent = SECTION_TERMS.get(section, "")
        body = "" if section in LINK_SECTIONS else self.text
        return "\n".join([self.heading] * HEADING_WEIGHT + [intent, body])


def support_units(text: str) -> list[str]:
    """What an answer line citing this chunk is compared with (copilot.run.grounding): the
    text whole, each of its non-empty lines (bullets, steps, without the bullet) and, for a
    line of several sentences (an introduction paragraph), each sentence, since an answer
    may quote one. The index keeps their vectors, so a first run does not encode them."""
    lines = [BULLET.sub("", ln).strip() for ln in text.splitlines()]
    lines = [x for x in lines if len(x) > 3 and not x.startswith("#")]
    sentences = [s for s in _SENTENCE.split(" ".join(lines)) if len(s) > 3]
    return [text, *dict.fromkeys(lines + sentences)]


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tokenize(text: str) -> list[str]:
    """Lower-cased word stems without stop words: the terms BM25 matches on. The stemmer is
    deliberately crude (plurals and -ing/-ed), but it is the same for runbooks and queries."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def _stem(word: str) -> str:
    if word[:-1].isdigit() and word.endswith("s"):
        return word[:-1]  # "502s" are 502s
    if len(word) <= 4 or not word.isalpha():
        return word
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and not word.endswith(("ss", "us", "is")):
            word = word[: -len(suffix)] + replacement
            break
    # "rotate", "rotated" and "rotating" all become "rotat"
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def chunk_markdown(source: str, text: str) -> list[Chunk]:
    """Split a Markdown document into heading sections with their character spans."""
    chunks: list[Chunk] = []
    seen_ids: dict[str, int] = {}
    for headings, start, end in _sections(text):
        for piece_start, piece_end in _split_long(text, start, end):
            body = text[piece_start:piece_end].strip()
            if not body or (_HEADING.match(body) and "\n" not in body):
                continue  # a heading with nothing under it says nothing on its own
            # Ids appear in [brackets] in answers: no spaces or brackets, or citations break.
            base = (
                f"{_ID_UNSAFE.sub('-', source)}#{slugify(headings[-1]) if headings else 'preamble'}"
            )
            seen_ids[base] = seen_ids.get(base, 0) + 1
            chunk_id = base if seen_ids[base] == 1 else f"{base}-{seen_ids[base]}"
            lead = len(text[piece_start:piece_end]) - len(text[piece_start:piece_end].lstrip())
            chunks.append(
                Chunk(
                    chunk_id=chunk_id,
                    source=source,
                    headings=tuple(headings),
                    start=piece_start + lead,
                    end=piece_start + lead + len(body),
                    text=body,
                    content_hash=content_hash(body),
                )
            )
    return chunks


def _sections(text: str) -> list[tuple[list[str], int, int]]:
    """(heading path, start, end) for each heading section; code fences are not headings."""
    marks: list[tuple[int, int, str]] = []  # (offset, level, title)
    in_fence = False
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if _FENCE.match(stripped.lstrip()):
            in_fence = not in_fence
        elif not in_fence and (match := _HEADING.match(stripped)):
            marks.append((offset, len(match.group(1)), match.group(2).strip()))
        offset += len(line)
    sections: list[tuple[list[str], int, int]] = []
    if not marks or marks[0][0] > 0:
        sections.append(([], 0, marks[0][0] if marks else len(text)))
    stack: list[tuple[int, str]] = []
    for i, (start, level, title) in enumerate(marks):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        sections.append(([t for _, t in stack], start, end))
    return sections


def _split_long(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cut a section longer than MAX_CHUNK_CHARS at paragraph breaks."""
    if end - start <= MAX_CHUNK_CHARS:
        return [(start, end)]
    pieces: list[tuple[int, int]] = []
    piece_start = start
    for match in re.finditer(r"\n\s*\n", text[start:end]):
        cut = start + match.end()
        if cut - piece_start >= MAX_CHUNK_CHARS * 0.6:
            pieces.append((piece_start, cut))
            piece_start = cut
    if piece_start < end:
        pieces.append((piece_start, end))
    return pieces
