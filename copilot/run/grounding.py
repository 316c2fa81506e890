"""Per-line grounding checks of an answer: pure functions over a RunState and an encoder.

Each bullet line of each answered step is checked against the passages it cites:
1. the cited chunk was retrieved in this run (else fail);
2. every `backticked` span occurs verbatim in a cited passage, or differs from a span of it only
   by the runbook's example service named where the task's service goes (copilot.names;
   else fail: an invented command);
3. the line means what a cited passage says: MiniLM cosine above SUPPORT_THRESHOLD (else warn);
4. the cited runbook still holds that chunk on disk (else warn: the citation is stale);
and, for the answer as a whole, 5. a task about a regression after a deploy cites the
mitigation or rollback section of the cited runbooks when they have one (else warn).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from copilot.chunking import BULLET, chunk_markdown, content_hash, support_units
from copilot.embeddings import Encoder
from copilot.llm.base import is_regression
from copilot.names import substitute, task_service
from copilot.run.state import RunState, StepStatus

# Calibrated on offline answers to 24 tasks of tests/data/tuning_queries.jsonl over the shipped
# corpus: their 451 lines (copied runbook lines) scored at least 0.676 (the lowest: an intro
# sentence of backup-restore-verification.md). The same lines re-cited to a chunk of another
# runbook (415 pairs) scored a median 0.32; 11 stayed above 0.60, all on a neighbouring topic
# (open a Jira ticket, scale out). 0.60 keeps every copied line and refuses the off-topic.
# A line is scored against the best of the passage as a whole and each of its lines, because
# MiniLM reads only the first 256 word pieces of a long passage.
SUPPORT_THRESHOLD = 0.60

_CITATION = re.compile(r"\s*\[([^\[\]\s]+#[^\[\]\s]*)\]")
_CODE = re.compile(r"`([^`\n]+)`")
_REMEDY = re.compile(r"mitigat|rollback|roll back|roll-back", re.IGNORECASE)


@dataclass
class LineCheck:
    step: int
    line: int  # 1-based among the step's bullet lines
    text: str
    citations: list[str]
    status: str = "pass"  # pass | warn | fail
    similarity: float | None = None
    reasons: list[str] = field(default_factory=list)

    def problem(self, status: str, reason: str) -> None:
        self.reasons.append(reason)
        if _RANK[status] > _RANK[self.status]:
            self.status = status


_RANK = {"pass": 0, "warn": 1, "fail": 2}


def answer_lines(state: RunState) -> list[LineCheck]:
    """The bullet lines of every answered step, with the passages each cites (its own
    [markers], or the step's citations when the line has none)."""
    lines: list[LineCheck] = []
    for s in state.steps:
        if s.action != "answer" or s.status != StepStatus.DONE:
            continue
        bullets = [ln for ln in s.answer.splitlines() if BULLET.match(ln)]
        for n, raw in enumerate(bullets, start=1):
            cited = _CITATION.findall(raw) or list(s.citations)
            lines.append(LineCheck(s.position, n, raw.strip(), list(dict.fromkeys(cited))))
    return lines


def plain(line: str) -> str:
    """The line as a person reads it: no bullet, no [citation] markers."""
    return BULLET.sub("", _CITATION.sub("", line)).strip()


def check_lines(state: RunState, encoder: Encoder, corpus: Path | None) -> list[LineCheck]:
    """Run rules 1-4 on every answer line. `corpus` None skips the stale check (no runbook
    folder to compare with)."""
    lines = answer_lines(state)
    for lc in lines:
        _check_retrieved(state, lc)
        _check_commands(state, lc)
    _check_support(state, lines, encoder)
    if corpus is not None:
        stale = stale_citations(state, corpus)
        for lc in lines:
            for chunk_id in lc.citations:
                if chunk_id in stale:
                    lc.problem("warn", f"cites {chunk_id}, which is stale: {stale[chunk_id]}")
    return lines


def _check_retrieved(state: RunState, lc: LineCheck) -> None:
    if not lc.citations:
        lc.problem("fail", "cites no passage")
    for chunk_id in lc.citations:
        if chunk_id not in state.passages:
            lc.problem("fail", f"cites {chunk_id}, which was not retrieved in this run")


def _check_commands(state: RunState, lc: LineCheck) -> None:
    texts = [_squash(state.passages[c].text) for c in lc.citations if c in state.passages]
    if not texts:
        return  # nothing to compare with: rule 1 already failed the line
    # The one substitution allowed: the runbook's example service -> the task's service.
    if target := task_service(state.query or state.task):
        texts += [substitute(t, target) for t in texts]
    for command in _CODE.findall(lc.text):
        if not any(_squash(command) in t for t in texts):
            lc.problem("fail", f"quotes `{command[:80]}`, which is not in the cited passage")


def _squash(text: str) -> str:
    """Runs of whitespace as one space: a command wrapped over two lines is the same."""
    return " ".join(text.split())


def _check_support(state: RunState, lines: list[LineCheck], encoder: Encoder) -> None:
    """Rule 3 with ONE encode call for the whole run: lines, passages and passage lines."""
    cited = sorted({c for lc in lines for c in lc.citations if c in state.passages})
    units = {c: support_units(state.passages[c].text) for c in cited}
    texts = [plain(lc.text) for lc in lines]
    offsets: dict[str, tuple[int, int]] = {}
    for c in cited:
        offsets[c] = (len(texts), len(texts) + len(units[c]))
        texts += units[c]
    if not lines or not cited:
        return
    vectors = encoder.encode(texts)
    for i, lc in enumerate(lines):
        scores = [
            float(np.max(vectors[lo:hi] @ vectors[i]))
            for c in lc.citations
            if c in offsets
            for lo, hi in [offsets[c]]
        ]
        if not scores:
            continue
        lc.similarity = round(max(scores), 3)
        if lc.similarity < SUPPORT_THRESHOLD:
            lc.problem(
                "warn",
                f"weakly supported by {', '.join(lc.citations)} (similarity {lc.similarity:.2f} "
                f"< {SUPPORT_THRESHOLD})",
            )


def stale_citations(state: RunState, corpus: Path) -> dict[str, str]:
    """Cited chunk id -> why it is stale: the runbook on disk no longer holds that text."""
    cited = {c for s in state.steps for c in s.citations} | {
        c for s in state.steps for c in _CITATION.findall(s.answer)
    }
    current: dict[str, dict[str, str] | None] = {}
    stale: dict[str, str] = {}
    for chunk_id in sorted(c for c in cited if c in state.passages):
        p = state.passages[chunk_id]
        if p.source not in current:
            current[p.source] = _chunk_hashes(corpus, p.source)
        hashes = current[p.source]
        if hashes is None:
            stale[chunk_id] = f"{p.source} is no longer in the corpus"
        elif chunk_id not in hashes:
            stale[chunk_id] = f"{p.source} no longer has that section"
        elif hashes[chunk_id] != (p.content_hash or content_hash(p.text)):
            stale[chunk_id] = f"{p.source} changed since it was indexed; re-index and re-run"
    return stale


def _chunk_hashes(corpus: Path, source: str) -> dict[str, str] | None:
    try:
        text = (corpus / source).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return {c.chunk_id: c.content_hash for c in chunk_markdown(source, text)}


def missing_remedy(state: RunState, corpus: Path | None) -> list[str]:
    """Rule 5: remedy sections (mitigation/rollback) of the cited runbooks the answer should
    cite for a regression after a deploy; empty when it cites one, or none exists."""
    if not is_regression(state.task):
        return []
    cited = {c for s in state.steps if s.action == "answer" for c in s.citations}
    cited |= {c for s in state.steps for c in _CITATION.findall(s.answer)}
    sources = {state.passages[c].source for c in cited if c in state.passages}
    sections = [x for src in sorted(sources) for x in _sections(state, corpus, src)]
    remedies = sorted(c for c, heading in sections if _REMEDY.search(heading))
    return [] if not remedies or set(remedies) & cited else remedies


def _sections(state: RunState, corpus: Path | None, source: str) -> list[tuple[str, str]]:
    """(chunk id, heading) of a runbook: from disk when possible, else what was retrieved."""
    if corpus is not None:
        try:
            text = (corpus / source).read_bytes().decode("utf-8")
            return [(c.chunk_id, " > ".join(c.headings)) for c in chunk_markdown(source, text)]
        except (OSError, UnicodeDecodeError):
            pass
    return [(c, p.heading) for c, p in state.passages.items() if p.source == source]


def check_answer(state: RunState, encoder: Encoder, corpus: Path | None) -> list[LineCheck]:
    """All checks: one per answer line, and a whole-answer entry (step 0, line 0) when the
    answer misses the remedy section a regression after a deploy needs."""
    checks = check_lines(state, encoder, corpus)
    if remedies := missing_remedy(state, corpus):
        whole = LineCheck(0, 0, "(the answer as a whole)", remedies)
        whole.problem(
            "warn",
            "does not cover the rollback/mitigation for a regression after a deploy: "
            f"cite {', '.join(remedies)}",
        )
        checks.append(whole)
    return checks


def as_dicts(lines: list[LineCheck]) -> list[dict[str, Any]]:
    return [lc.__dict__ | {"reasons": list(lc.reasons)} for lc in lines]
