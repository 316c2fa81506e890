"""The persisted search index under $COPILOT_HOME/index.

Layout: `manifest.json` (model, file hashes, chunk metadata, the name of the vector file)
and `vectors-<generation>.npy`. The vector file is written first and the manifest replaced
atomically after it, so a reader never sees a manifest pointing at missing vectors.
Refresh re-embeds only chunks whose content hash is new and drops files that are gone.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from copilot.chunking import Chunk, chunk_markdown, content_hash
from copilot.embeddings import DIMENSIONS, MODEL_NAME
from copilot.errors import CorpusError
from copilot.guard.chunks import GUARD_VERSION, guard_chunks

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


class Encoder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float

    def as_dict(self) -> dict[str, object]:
        return {
            "chunk_id": self.chunk.chunk_id,
            "source": self.chunk.source,
            "heading": self.chunk.heading,
            "start": self.chunk.start,
            "end": self.chunk.end,
            "score": round(self.score, 4),
            "text": self.chunk.text,
            "flagged": self.chunk.flagged,
        }


@dataclass
class RefreshReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks_total: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        files = len(self.added) + len(self.changed) + len(self.unchanged)
        return (
            f"{self.chunks_total} chunks from {files} files ({len(self.added)} added, "
            f"{len(self.changed)} changed, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged); "
            f"embedded {self.chunks_embedded} chunks in {self.seconds:.2f} s"
        )


class Index:
    """Chunks and their unit vectors, searchable by cosine similarity."""

    def __init__(
        self,
        chunks: list[Chunk],
        vectors: np.ndarray,
        file_hashes: dict[str, str],
        guard_version: str = GUARD_VERSION,
    ) -> None:
        self.chunks = chunks
        self.vectors = vectors
        self.file_hashes = file_hashes
        self.guard_version = guard_version  # which injection guard assessed the chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def search(self, query_vector: np.ndarray, k: int) -> list[Hit]:
        if not self.chunks:
            return []
        scores = self.vectors @ query_vector.astype(np.float32)
        k = min(k, len(self.chunks))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(self.chunks[i], float(scores[i])) for i in top]

    @classmethod
    def load(cls, index_dir: Path) -> Index | None:
        manifest_path = index_dir / MANIFEST
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("model") != MODEL_NAME:
                return None  # built by another model: its vectors cannot be compared with ours
            vectors = np.load(index_dir / manifest["vectors"])
            chunks = [
                Chunk(
                    **c
                    | {"headings": tuple(c["headings"])}
                    | {"guard_reasons": tuple(c.get("guard_reasons", ()))}
                )
                for c in manifest["chunks"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged index is rebuilt from the corpus rather than shown as a traceback.
            log.warning("index in %s is unreadable (%s); it will be rebuilt", index_dir, exc)
            return None
        return cls(chunks, vectors, manifest["files"], manifest.get("guard_version", ""))

    def save(self, index_dir: Path) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        old = index_dir / MANIFEST
        previous = _vectors_named_in(old)
        name = f"vectors-{uuid.uuid4().hex[:12]}.npy"
        np.save(index_dir / name, self.vectors)
        manifest = {
            "model": MODEL_NAME,
            "dimensions": DIMENSIONS,
            "vectors": name,
            "files": self.file_hashes,
            "guard_version": self.guard_version,
            "chunks": [asdict(c) for c in self.chunks],
        }
        tmp = index_dir / f".{MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, old)
        # Keep the previous vectors: another process may have just read the old manifest.
        for stale in index_dir.glob("vectors-*.npy"):
            if stale.name not in (name, previous):
                stale.unlink(missing_ok=True)


def _vectors_named_in(manifest: Path) -> str | None:
    try:
        return str(json.loads(manifest.read_text())["vectors"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_corpus(corpus_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Markdown files under corpus_dir as {relative path: text}, plus warnings for skipped files."""
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"Corpus folder {corpus_dir} does not exist; create it with Markdown runbooks, "
            "or point COPILOT_CORPUS (or --corpus) at one."
        )
    texts: dict[str, str] = {}
    warnings: list[str] = []
    # Broken links are kept so they get a warning instead of vanishing without a word.
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(corpus_dir).as_posix()
        if any(part.startswith(".") for part in path.relative_to(corpus_dir).parts):
            continue
        problem, text = _read_runbook(path)
        if problem:
            warnings.append(f"skipped {rel}: {problem}")
        else:
            texts[rel] = text
    for warning in warnings:
        log.warning(warning)
    return texts, warnings


def _read_runbook(path: Path) -> tuple[str, str]:
    if path.suffix.lower() not in (".md", ".markdown"):
        return "not a Markdown (.md) file", ""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror})", ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {exc.start}); re-save it as UTF-8", ""
    if "\x00" in text:
        return "binary content, not Markdown", ""
    if not text.strip():
        return "empty file", ""
    return "", text


def refresh_index(
    corpus_dir: Path, index_dir: Path, encoder_factory: Callable[[], Encoder]
) -> tuple[Index, RefreshReport]:
    """Bring the index in line with the corpus, embedding only new or changed text."""
    started = time.perf_counter()
    texts, warnings = read_corpus(corpus_dir)
    if not texts:
        raise CorpusError(
            f"Corpus folder {corpus_dir} has no readable Markdown runbooks"
            + (f" ({'; '.join(warnings)})" if warnings else "")
            + ". Add .md files, or point COPILOT_CORPUS (or --corpus) at a folder that has them."
        )
    old = Index.load(index_dir)
    old_hashes = old.file_hashes if old else {}
    report = RefreshReport(warnings=warnings)
    hashes = {name: content_hash(text) for name, text in texts.items()}
    for name, digest in hashes.items():
        bucket = (
            report.unchanged
            if old_hashes.get(name) == digest
            else (report.changed if name in old_hashes else report.added)
        )
        bucket.append(name)
    report.removed = sorted(set(old_hashes) - set(hashes))
    guarded = old is not None and old.guard_version == GUARD_VERSION
    if old and guarded and not report.added and not report.changed and not report.removed:
        report.chunks_total = len(old)
        report.seconds = time.perf_counter() - started
        return old, report
    chunks = [c for name in sorted(texts) for c in chunk_markdown(name, texts[name])]
    # The index-time door of the injection guard: each new or changed chunk is assessed once.
    chunks = guard_chunks(chunks, old.chunks if old and guarded else (), encoder_factory)
    vectors = _vectors_for(chunks, old, encoder_factory, report)
    index = Index(chunks, vectors, hashes)
    index.save(index_dir)
    report.chunks_total = len(chunks)
    report.seconds = time.perf_counter() - started
    return index, report


def _vectors_for(
    chunks: list[Chunk],
    old: Index | None,
    encoder_factory: Callable[[], Encoder],
    report: RefreshReport,
) -> np.ndarray:
    """Reuse the vector of any chunk whose text and heading path are unchanged."""
    known: dict[tuple[str, str], np.ndarray] = {}
    if old:
        for i, c in enumerate(old.chunks):
            known[(c.content_hash, c.heading)] = old.vectors[i]
    vectors = np.zeros((len(chunks), DIMENSIONS), dtype=np.float32)
    todo = []
    for i, c in enumerate(chunks):
        key = (c.content_hash, c.heading)
        if key in known:
            vectors[i] = known[key]
        else:
            todo.append(i)
    if todo:
        fresh = encoder_factory().encode([chunks[i].embedding_text() for i in todo])
        vectors[todo] = fresh
    report.chunks_embedded = len(todo)
    return vectors
