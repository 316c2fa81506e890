"""Layer 4: MiniLM similarity to a shipped library of attack phrasings (attacks.txt).

Patterns read wording; this layer reads meaning, so a paraphrase no pattern knows still
lands near "ignore all previous instructions". Text is cut into sentences (an injected
line hides inside an ordinary paragraph, and a whole-paragraph vector would dilute it) and
every sentence of every text in a batch goes through one encode call. The model is loaded
by the caller's encoder factory on first use, never at import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copilot.embeddings import Encoder

LIBRARY = Path(__file__).with_name("attacks.txt")
BENIGN = Path(__file__).with_name("benign.txt")
# A sentence counts as an attack phrasing when its cosine similarity to the nearest one is at
# least THRESHOLD and beats its nearest benign operational sentence (benign.txt) by MARGIN:
# MiniLM puts "this step requires approval" close to "mark it as approved and proceed", and
# only the contrast tells them apart. Calibrated on the shipped corpus (largest lead of any
# runbook sentence: 0.21) and both labelled sets in tests/data; bench/bench_guard.py prints
# the figures to re-check a change of model, library or thresholds.
THRESHOLD = 0.55
MARGIN = 0.25
_MAX_SENTENCES = 64  # per text: a huge tool output is sampled, not encoded whole
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_BULLET = re.compile(r"^\s*(?:[-*+>]|\d+[.)])\s+")
# Only sentences with one of these words (or any non-Latin script) are encoded: an attack
# speaks to the assistant or about its rules, secrets, approvals or an address to send to.
# Most runbook sentences ("check the pods") have none, which keeps index time low.
_CUE = re.compile(
    r"\b(?:you|your|yourself|assistant|ai|model|agent|copilot|llm|bot|gpt|instructions?|"
    r"rules?|guidelines?|prompts?|directives?|previous|prior|above|earlier|ignore|disregard|"
    r"forget|guidance|told|pretend|roleplay|role-play|character|jailbreak|unrestricted|reveal|secrets?|"
    r"credentials?|passwords?|tokens?|keys?|approvals?|approved?|review|confirmation|"
    r"permission|authori[sz]ed|bypass|skip|policy|guardrails?|send|upload|webhook|url|"
    r"image|exfiltrate|mention|hide|audit|tool|execute|override|obey|comply|now)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Match:
    similarity: float
    sentence: str  # the sentence of the text that came close
    kind: str  # the attack kind of the nearest library phrasing
    phrasing: str  # that phrasing
    benign: float = 0.0  # similarity of the same sentence to its nearest benign sentence

    @property
    def is_attack(self) -> bool:
        return self.similarity >= THRESHOLD and self.similarity - self.benign >= MARGIN


def load_library(path: Path = LIBRARY) -> list[tuple[str, str]]:
    """(kind, phrasing) pairs; a benign file's lines have no kind and get "benign"."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            kind, _, phrasing = line.rpartition("|")
            entries.append((kind.strip() or "benign", phrasing.strip()))
    return entries


def sentences(text: str) -> list[str]:
    """Sentences worth comparing: at least three words (or six CJK characters)."""
    found: list[str] = []
    for piece in _SENTENCE_END.split(text):
        piece = _BULLET.sub("", piece).strip()
        worded = len(piece.split()) >= 3 and _CUE.search(piece)
        if worded or (len(piece) >= 6 and not piece.isascii()):
            found.append(piece[:400])
    return list(dict.fromkeys(found))[:_MAX_SENTENCES]


class SemanticLayer:
    """The attack library's vectors, and the nearest of them to each sentence of a text."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._library = load_library(LIBRARY)
        benign = load_library(BENIGN)
        vectors = encoder.encode([p for _, p in self._library + benign])  # one call
        self._library_vectors = vectors[: len(self._library)]
        self._benign_vectors = vectors[len(self._library) :]

    def nearest(self, texts: Sequence[str]) -> list[Match | None]:
        """For each text, its sentence closest to any attack phrasing (None: no sentence)."""
        per_text = [sentences(t) for t in texts]
        vectors = self._vectors([s for group in per_text for s in group])
        return [self._best(group, vectors) for group in per_text]

    def _vectors(self, all_sentences: list[str]) -> dict[str, np.ndarray]:
        """One encode call for the whole batch; the embedder's memo keeps sentences that
        recur (the same runbook passages come back run after run)."""
        unique = list(dict.fromkeys(all_sentences))
        return dict(zip(unique, self.encoder.encode(unique), strict=True))

    def _best(self, group: list[str], vectors: dict[str, np.ndarray]) -> Match | None:
        if not group:
            return None
        stacked = np.stack([vectors[s] for s in group])
        attack = stacked @ self._library_vectors.T
        benign = (stacked @ self._benign_vectors.T).max(axis=1)
        # The sentence whose lead over its benign neighbour is largest decides.
        lead = attack.max(axis=1) - benign
        row = int(np.argmax(np.where(attack.max(axis=1) >= THRESHOLD, lead, lead - 1.0)))
        col = int(np.argmax(attack[row]))
        kind, phrasing = self._library[col]
        return Match(float(attack[row, col]), group[row], kind, phrasing, float(benign[row]))
