"""The index-time door: every chunk is assessed once, when it enters the index, and its flag
and reasons are stored with it in the manifest. A chunk whose text is unchanged keeps its
verdict, unless the guard itself changed (GUARD_VERSION), which re-assesses the whole index.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from copilot.embeddings import Encoder
from copilot.guard import semantic
from copilot.guard.detector import assess_chunks

if TYPE_CHECKING:
    from copilot.chunking import Chunk


def _guard_version() -> str:
    """A digest of what decides a verdict: the rules, both libraries and the thresholds."""
    here = Path(__file__).parent
    digest = hashlib.sha256(f"{semantic.THRESHOLD}/{semantic.MARGIN}".encode())
    for name in ("patterns.py", "normalise.py", "decode.py", "attacks.txt", "benign.txt"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


GUARD_VERSION = _guard_version()


def guard_chunks(
    chunks: Sequence[Chunk],
    known: Sequence[Chunk] = (),
    encoder_factory: Callable[[], Encoder] | None = None,
) -> list[Chunk]:
    """`chunks` with `flagged` and `guard_reasons` filled in. `known` are chunks already
    assessed by this GUARD_VERSION: their verdict is reused for the same text and heading."""
    verdicts = {(c.content_hash, c.heading): (c.flagged, c.guard_reasons) for c in known}
    todo = [c for c in chunks if (c.content_hash, c.heading) not in verdicts]
    if todo:
        encoder = encoder_factory() if encoder_factory else None
        results = assess_chunks(
            [c.embedding_text() for c in todo],
            [f"chunk {c.chunk_id}" for c in todo],
            encoder=encoder,
        )
        for c, r in zip(todo, results, strict=True):
            verdicts[(c.content_hash, c.heading)] = (r.flagged, tuple(r.reasons))
    return [
        dataclasses.replace(
            c,
            flagged=verdicts[(c.content_hash, c.heading)][0],
            guard_reasons=verdicts[(c.content_hash, c.heading)][1],
        )
        for c in chunks
    ]
