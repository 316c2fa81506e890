"""The embedder's memo: repeated texts (the runbook lines the reviewer scores on every run)
come back as the model's own vectors, without the model, and the memo stays bounded."""

from __future__ import annotations

import numpy as np
import pytest

from copilot import embeddings


class Counting:
    """The real model behind a counter of the texts it is asked to encode."""

    def __init__(self, model: object) -> None:
        self.model, self.texts = model, 0

    def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
        self.texts += len(texts)
        return self.model.encode(texts, **kwargs)  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def embedder(monkeypatch: pytest.MonkeyPatch) -> embeddings.Embedder:
    shared = embeddings.get_embedder()
    fresh = embeddings.Embedder.__new__(embeddings.Embedder)
    fresh.__dict__.update(shared.__dict__, _memo=type(shared._memo)())
    monkeypatch.setattr(fresh, "_model", Counting(shared._model))
    return fresh


def test_a_repeated_text_is_not_encoded_again_and_gets_the_same_vector(embedder):
    first = embedder.encode(["disk full on the db volume", "pods are OOMKilled"])
    again = embedder.encode(["pods are OOMKilled", "a new line", "disk full on the db volume"])
    assert embedder._model.texts == 3  # only "a new line" was new
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[2], first[0])
    direct = embedder._model_encode(["a new line"], 64)[0]
    assert np.allclose(again[1], direct, atol=1e-6)


def test_duplicates_in_one_call_are_encoded_once(embedder):
    vectors = embedder.encode(["same", "same", "other"])
    assert embedder._model.texts == 2
    assert np.array_equal(vectors[0], vectors[1])


def test_the_memo_is_bounded_and_keeps_the_most_recently_used(embedder, monkeypatch):
    monkeypatch.setattr(embeddings, "MEMO_SIZE", 2)
    embedder.encode(["a1", "b2", "c3"])  # larger than the memo: still one vector each
    assert len(embedder._memo) == 2
    embedder.encode(["b2"])
    embedder.encode(["d4"])
    assert list(embedder._memo) == ["b2", "d4"]
    assert embedder.encode([]).shape == (0, embeddings.DIMENSIONS)
