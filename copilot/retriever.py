"""The retriever: the persisted index plus the embedder, loaded lazily and once.

Besides search it answers two questions the engine asks around a search: does any runbook
cover what was asked (`covers`), and is a chat message a follow-up that should be searched
together with the previous task (`is_follow_up`, `follow_up_query`)?
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from copilot.embeddings import get_embedder
from copilot.index import MANIFEST, Encoder, Hit, Index, RefreshReport, refresh_index
from copilot.llm.base import Passage


class Retriever:
    def __init__(
        self, corpus: Path, index_dir: Path, encoder_factory: Callable[[], Encoder] = get_embedder
    ) -> None:
        self.corpus = corpus
        self.index_dir = index_dir
        self._encoder_factory = encoder_factory
        self._index: Index | None = None
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def refresh(self) -> RefreshReport:
        with self._lock:
            self._index, report = refresh_index(self.corpus, self.index_dir, self._encoder_factory)
            self._stamp = manifest_stamp(self.index_dir)
        return report

    @property
    def index(self) -> Index:
        """The index on disk; built from the corpus the first time if there is none, and
        reloaded when another process (`python -m copilot index`) has refreshed it."""
        with self._lock:
            stamp = manifest_stamp(self.index_dir)
            if self._index is None or stamp != self._stamp:
                self._index = Index.load(self.index_dir)
                if self._index is None:
                    self._index, _ = refresh_index(
                        self.corpus, self.index_dir, self._encoder_factory
                    )
                self._stamp = manifest_stamp(self.index_dir)
            return self._index

    def search(self, query: str, k: int = 4) -> list[Hit]:
        """Hybrid search (MiniLM + BM25, fused by reciprocal rank), best first."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int = 4) -> list[list[Hit]]:
        """Batch search: one encoder call for all queries."""
        index = self.index
        vectors = self._encoder_factory().encode(queries)
        return [index.search_hybrid(q, v, k) for q, v in zip(queries, vectors, strict=True)]

    def covers(self, hits: Sequence[Hit]) -> bool:
        return covers(hits)


def manifest_stamp(index_dir: Path) -> tuple[int, int] | None:
    try:
        stat = (index_dir / MANIFEST).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def to_passage(hit: Hit) -> Passage:
    c = hit.chunk
    return Passage(c.chunk_id, c.source, c.heading, c.text, hit.score)
