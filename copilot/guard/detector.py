"""The layered injection guard: `assess` a text, `assess_chunks` a batch at index time.

Layers, in the order a text goes through them, each hit naming its layer and phrase:
  normalise  NFKC, invisible characters, confusables, spaced-out letters, leetspeak
  decode     base64, hex, URL-encoding and rot13 spans, decoded and read again
  pattern    rules in eight languages (patterns.py)
  semantic   MiniLM similarity to the shipped library of attack phrasings (semantic.py)
A hit in the plain text is reported as `pattern`; the same rule found only after undoing a
disguise is reported under that disguise, so a reader sees how the phrase was hidden.
Detection returns data and never raises: the engine and reviewer decide what a flag means.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from copilot.embeddings import Encoder
from copilot.guard import decode, normalise
from copilot.guard.patterns import RULES, SQUASHED
from copilot.guard.semantic import THRESHOLD, Match, SemanticLayer

# The disguise layers read this much of a text (the plain patterns read all of it): each
# variant is a full pass of every rule, and a 500 kB tool output would otherwise take ~10 s.
DISGUISE_CHARS = 64_000
PATTERN_SCORE = 0.9
DISGUISED_SCORE = 0.95  # hiding an instruction is itself a sign of intent
_NORMALISERS: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("json-escapes", normalise.json_escapes),
    ("nfkc", normalise.nfkc),
    ("invisible", normalise.invisible),
    ("confusables", normalise.confusables),
    ("spaced-letters", normalise.spaced),
    ("leetspeak", normalise.leetspeak),
)


@dataclass(frozen=True)
class InjectionFlag:
    where: str  # "task", "passage <id>", "tool <name>", "chunk <id>"
    pattern: str  # which rule matched: override, role-play, exfiltration, ...
    excerpt: str
    layer: str = "pattern"  # pattern | normalise:<how> | decode:<encoding> | semantic

    def describe(self) -> str:
        return (
            f"possible prompt injection in {self.where} ({self.layer}: {self.pattern}): "
            f'"{self.excerpt}"'
        )

    def reason(self) -> str:
        return f'{self.layer}: {self.pattern} "{self.excerpt}"'


@dataclass(frozen=True)
class GuardResult:
    flagged: bool
    score: float  # 0..1; flagged results score at least 0.5
    reasons: list[str] = field(default_factory=list)
    flags: list[InjectionFlag] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"flagged": self.flagged, "score": round(self.score, 3), "reasons": self.reasons}


def assess(
    text: str, where: str = "text", *, encoder: Encoder | None = None, semantic: bool = True
) -> GuardResult:
    """Run every layer over one text. `semantic=False` skips the model (patterns only)."""
    return assess_chunks([text], [where], encoder=encoder, semantic=semantic)[0]


def assess_chunks(
    texts: Sequence[str],
    wheres: Sequence[str] | None = None,
    *,
    encoder: Encoder | None = None,
    semantic: bool = True,
) -> list[GuardResult]:
    """Assess many texts with one encode call for the semantic layer (index time, --jsonl)."""
    wheres = list(wheres) if wheres is not None else [f"chunk {i}" for i in range(len(texts))]
    if len(wheres) != len(texts):
        raise ValueError("assess_chunks needs one `where` per text")
    lexical = [_lexical_flags(t, w) for t, w in zip(texts, wheres, strict=True)]
    nearest: list[Match | None] = [None] * len(texts)
    if semantic and texts:
        nearest = semantic_layer(encoder).nearest(texts)
    return [
        _result(flags, match, where)
        for flags, match, where in zip(lexical, nearest, wheres, strict=True)
    ]


def scan(text: str, where: str) -> list[InjectionFlag]:
    """The flags alone: what the reviewer lists under a verdict."""
    return assess(text, where).flags


# lexical layers -----------------------------------------------------------------------------
def _lexical_flags(text: str, where: str) -> list[InjectionFlag]:
    flags = list(_pattern_flags(text, where, "pattern"))
    seen = {f.pattern for f in flags}
    for layer, variant in _variants(text[:DISGUISE_CHARS]):
        for flag in _pattern_flags(variant, where, layer):
            if flag.pattern not in seen:  # report a rule once, under the first layer it hit
                seen.add(flag.pattern)
                flags.append(flag)
    return flags


def _variants(text: str) -> Iterator[tuple[str, str]]:
    """The text with each disguise undone in turn (cumulatively), then its decoded spans."""
    current, undone = text, []
    for name, undo in _NORMALISERS:
        changed = undo(current)
        if changed is not None:
            current = changed
            undone.append(name)
            yield "normalise:" + "+".join(undone), current
    for run in normalise.spaced_runs(text):
        yield "normalise:spaced-letters", run
    for source in dict.fromkeys((text, current)):
        for encoding, decoded in decode.decoded_spans(source):
            yield f"decode:{encoding}", decoded
            for inner, twice in decode.decoded_spans(decoded):  # base64 inside base64
                yield f"decode:{encoding}+{inner}", twice
    yield "decode:rot13", decode.rot13(current)


def _pattern_flags(text: str, where: str, layer: str) -> Iterator[InjectionFlag]:
    for rule in RULES:
        for m in rule.pattern.finditer(text):
            name = rule.name if rule.lang == "en" else f"{rule.name} [{rule.lang}]"
            yield InjectionFlag(where, name, _excerpt(text, m.start(), m.end()), layer)
    if layer != "pattern":  # letters-only phrases: only for text that was disguised
        squashed = normalise.squash(text)
        for name, pattern in SQUASHED:
            if m2 := pattern.search(squashed):
                yield InjectionFlag(where, name, m2.group(), layer)


def _excerpt(text: str, start: int, end: int) -> str:
    snippet = text[max(0, start - 20) : min(len(text), end + 20)]
    return " ".join(snippet.split())[:120]


# scoring ------------------------------------------------------------------------------------
def _result(flags: list[InjectionFlag], match: Match | None, where: str) -> GuardResult:
    score = 0.0
    if flags:
        disguised = any(f.layer != "pattern" for f in flags)
        score = DISGUISED_SCORE if disguised else PATTERN_SCORE
        score = min(1.0, score + 0.02 * (len({f.pattern for f in flags}) - 1))
    reasons = [f.reason() for f in flags]
    if match is not None:
        score = max(score, _semantic_score(match))
        if match.is_attack:
            excerpt = " ".join(match.sentence.split())[:120]
            semantic_flag = InjectionFlag(where, match.kind, excerpt, "semantic")
            reasons.append(
                f'{semantic_flag.reason()} ~ "{match.phrasing}" '
                f"(similarity {match.similarity:.2f}, benign {match.benign:.2f})"
            )
            if not flags:  # a pattern hit already names the phrase; one flag per text
                flags = [semantic_flag]
    return GuardResult(bool(flags), round(score, 4), reasons, flags)


def _semantic_score(match: Match) -> float:
    """At least 0.5 when the layer calls it an attack, rising with similarity; below 0.5,
    proportional to how close the sentence came."""
    if match.is_attack:
        return 0.5 + 0.5 * (match.similarity - THRESHOLD) / (1 - THRESHOLD)
    return max(0.0, min(0.49, 0.5 * match.similarity / THRESHOLD))


_LAYER: SemanticLayer | None = None
_LAYER_LOCK = threading.Lock()


def semantic_layer(encoder: Encoder | None = None) -> SemanticLayer:
    """The semantic layer, built on first use over the shared MiniLM embedder (or the
    encoder given) and kept while callers keep asking with the same encoder."""
    global _LAYER
    with _LAYER_LOCK:
        if encoder is None:
            from copilot.embeddings import get_embedder  # loads torch: only when first needed

            encoder = get_embedder()
        if _LAYER is None or _LAYER.encoder is not encoder:
            _LAYER = SemanticLayer(encoder)
        return _LAYER
