"""The retriever: the persisted index plus the embedder, loaded lazily and once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from copilot.embeddings import get_embedder
from copilot.index import Encoder, Hit, Index, RefreshReport, refresh_index
from copilot.llm.base import Passage


class Retriever:
    def __init__(
        self, corpus: Path, index_dir: Path, encoder_factory: Callable[[], Encoder] = get_embedder
    ) -> None:
        self.corpus = corpus
        self.index_dir = index_dir
        self._encoder_factory = encoder_factory
        self._index: Index | None = None
        self._lock = threading.Lock()

    def refresh(self) -> RefreshReport:
        with self._lock:
            self._index, report = refresh_index(self.corpus, self.index_dir, self._encoder_factory)
        return report

    @property
    def index(self) -> Index:
        """The index on disk; built from the corpus the first time if there is none."""
        if self._index is None:
            loaded = Index.load(self.index_dir)
            if loaded is None:
                self.refresh()
            else:
                self._index = loaded
        assert self._index is not None
        return self._index

    def search(self, query: str, k: int = 4) -> list[Hit]:
        index = self.index
        vector = self._encoder_factory().encode([query])[0]
        return index.search(vector, k)

    def search_many(self, queries: list[str], k: int = 4) -> list[list[Hit]]:
        """Batch search: one encoder call for all queries."""
        index = self.index
        vectors = self._encoder_factory().encode(queries)
        return [index.search(v, k) for v in vectors]


def to_passage(hit: Hit) -> Passage:
    c = hit.chunk
    return Passage(c.chunk_id, c.source, c.heading, c.text, hit.score)
