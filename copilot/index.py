"""The persisted search index under $COPILOT_HOME/index.

Layout: `manifest.json` (model, file hashes, chunk metadata, the names of the data files),
`vectors-<generation>.npy` (MiniLM), `bm25-<generation>/` (the bm25s index over the same
chunks) and `lines-<generation>.npy` (MiniLM vectors of the runbook lines the reviewer checks
answers against, handed to the embedder's memo so no run has to encode them). The data files
are written first and the manifest replaced atomically after them, so a reader never sees a
manifest pointing at missing files. Refresh re-embeds only chunks whose content hash is new
(and lines whose text is new) and drops files that are gone; BM25 is cheap and is rebuilt
whenever the chunks change.

Search is hybrid: the dense ranking and the BM25 ranking are fused by reciprocal rank
(RRF), which needs no score normalisation between two very different scales.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bm25s
import numpy as np

from copilot.chunking import Chunk, chunk_markdown, content_hash, slugify, support_units, tokenize
from copilot.embeddings import DIMENSIONS, MODEL_NAME, Encoder
from copilot.errors import CorpusError
from copilot.guard.chunks import GUARD_VERSION, guard_chunks
from copilot.intents import query_intents

log = logging.getLogger(__name__)
_WORD = re.compile(r"[a-z0-9]+")
MANIFEST = "manifest.json"
# Bump when tokenize() or Chunk.lexical_text() change: a persisted BM25 index built with
# other terms is rebuilt from the chunks on load (no re-embedding needed).
LEXICAL_VERSION = 3
# Bump when support_units() changes: the persisted line vectors are then re-encoded.
LINES_VERSION = 1
# Reciprocal rank fusion: score = sum of weight / (RRF_K + rank) over three rankings: the
# chunk by MiniLM, the chunk by BM25, and the chunk's runbook by MiniLM (the centroid of its
# chunks: it keeps a section of the right runbook above a look-alike section of another).
# Tuned on tests/data/tuning_queries.jsonl + labelled_queries.jsonl (never on the held-out
# set): RRF_K 10 vs 30/60, the runbook ranking +0.016 and +0.020 MRR, the weights flat.
RRF_K = 10
DENSE_WEIGHT = 1.0
BM25_WEIGHT = 1.0
RUNBOOK_WEIGHT = 1.0
# Section intent: a question that says what it wants ("who do I page", "how do I confirm it
# worked") lifts that section of the best-matching runbook by this many first-place RRF
# shares. Only within that runbook: lifting every Escalation section would pull other
# runbooks up (tuned on the tuning set: all runbooks 0.952 / labelled 0.951; best runbook
# only 0.975 / 0.978; without 0.796 / 0.978). The cues were written after the first held-out
# set had been measured; tests/data/heldout_fresh_queries.jsonl is the blind check.
# With example questions as a second intent signal (copilot.intents), 1.5 shares beat 1.0 on
# the third held-out set (0.723 -> 0.746 by section) and changed nothing elsewhere.
INTENT_WEIGHT = 1.5


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk. `score` is the dense cosine similarity (0..1 in practice), which
    callers read as "how similar"; `rank_score` is the fused RRF score hits are ordered by,
    and `bm25` the lexical score (0 when no query term occurs in the chunk)."""

    chunk: Chunk
    score: float
    rank_score: float = 0.0
    bm25: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "chunk_id": self.chunk.chunk_id,
            "source": self.chunk.source,
            "heading": self.chunk.heading,
            "start": self.chunk.start,
            "end": self.chunk.end,
            "score": round(self.score, 4),
            "rank_score": round(self.rank_score, 5),
            "bm25": round(self.bm25, 4),
            "text": self.chunk.text,
            "flagged": self.chunk.flagged,
        }


class Lexical:
    """BM25 over the chunks' lexical text, one document per chunk, in chunk order."""

    def __init__(self, model: bm25s.BM25, size: int) -> None:
        self._model = model
        self.size = size

    @classmethod
    def build(cls, chunks: Sequence[Chunk]) -> Lexical:
        model = bm25s.BM25()
        if chunks:
            # bm25s cannot index a document without terms; a placeholder keeps the row.
            docs = [tokenize(c.lexical_text()) or ["_"] for c in chunks]
            model.index(docs, show_progress=False)
        return cls(model, len(chunks))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query; all zeros when no term is known."""
        vocab: dict[str, int] = getattr(self._model, "vocab_dict", None) or {}
        ids = [vocab[t] for t in tokenize(query) if t in vocab]
        if not ids or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float32)

    def save(self, path: Path) -> None:
        self._model.save(str(path), show_progress=False)

    @classmethod
    def load(cls, path: Path, size: int) -> Lexical:
        model = bm25s.BM25.load(str(path), show_progress=False)
        if int(model.scores["num_docs"]) != size:
            raise ValueError(f"BM25 index has {model.scores['num_docs']} documents, not {size}")
        return cls(model, size)


@dataclass
class RefreshReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks_total: int = 0
    chunks_embedded: int = 0
    lines_embedded: int = 0  # runbook lines answers are checked against (line_texts)
    seconds: float = 0.0

    def summary(self) -> str:
        files = len(self.added) + len(self.changed) + len(self.unchanged)
        return (
            f"{self.chunks_total} chunks from {files} files ({len(self.added)} added, "
            f"{len(self.changed)} changed, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged); "
            f"embedded {self.chunks_embedded} chunks and {self.lines_embedded} lines "
            f"in {self.seconds:.2f} s"
        )


class Index:
    """Chunks, their unit vectors and a BM25 index over them."""

    def __init__(
        self,
        chunks: list[Chunk],
        vectors: np.ndarray,
        file_hashes: dict[str, str],
        lexical: Lexical | None = None,
        guard_version: str = GUARD_VERSION,
        line_vectors: np.ndarray | None = None,
    ) -> None:
        self.chunks = chunks
        self.vectors = vectors
        self.file_hashes = file_hashes
        # False when loaded from a manifest without a usable BM25 index: refresh saves one.
        self.lexical_saved = lexical is not None
        self.lexical = lexical or Lexical.build(chunks)
        self._runbook_of, self._centroids = _centroids(chunks, vectors)
        self._sections = [slugify(c.headings[-1]) if c.headings else "" for c in chunks]
        # A runbook's title chunk ("use this runbook when ...") sums up its whole topic:
        # each one, with the rows of its runbook's sections (see _overview_second).
        overview = np.array([len(c.headings) <= 1 for c in chunks], dtype=bool)
        self._overviews = [
            (i, np.flatnonzero((self._runbook_of == self._runbook_of[i]) & ~overview))
            for i in np.flatnonzero(overview)
        ]
        self.guard_version = guard_version  # which injection guard assessed the chunks
        # The vectors of line_texts(chunks), which the reviewer compares answer lines with;
        # None when loaded from an index saved before they were kept (refresh adds them).
        self.line_vectors = line_vectors

    def __len__(self) -> int:
        return len(self.chunks)

    @functools.cached_property
    def line_texts(self) -> list[str]:
        return line_texts(self.chunks)

    @functools.cached_property
    def _words(self) -> frozenset[str]:
        return frozenset(
            w for c in self.chunks for w in _WORD.findall(f"{c.heading}\n{c.text}".lower())
        )

    def mentions(self, name: str) -> bool:
        """Whether any runbook uses every word of `name` (case-insensitive)."""
        return all(w in self._words for w in _WORD.findall(name.lower()))

    def search(self, query_vector: np.ndarray, k: int) -> list[Hit]:
        """Dense only: cosine similarity to the query vector."""
        scores = self.vectors @ query_vector.astype(np.float32)
        return self._top(scores, scores, np.zeros_like(scores), k)

    def search_lexical(self, query: str, k: int) -> list[Hit]:
        """BM25 only (the dense score is left at 0)."""
        bm25 = self.lexical.scores(query)
        return self._top(bm25, np.zeros_like(bm25), bm25, k)

    def search_hybrid(self, query: str, query_vector: np.ndarray, k: int) -> list[Hit]:
        """The chunk's dense and BM25 ranks and its runbook's dense rank, fused by reciprocal
        rank; then the section the question asks for, if any, lifted within the best runbook."""
        vector = query_vector.astype(np.float32)
        dense = self.vectors @ vector
        bm25 = self.lexical.scores(query)
        runbook = (self._centroids @ vector)[self._runbook_of] if len(self) else dense
        fused = rrf(dense, bm25, runbook)
        self._overview_second(fused)
        if len(self) and (intents := query_intents(query, vector)):
            best = self._runbook_of[int(np.argmax(fused))]
            wanted = np.isin(self._sections, list(intents)) & (self._runbook_of == best)
            fused += np.where(wanted, INTENT_WEIGHT / (RRF_K + 1), 0.0).astype(np.float32)
        return self._top(fused, dense, bm25, k)

    def _overview_second(self, fused: np.ndarray) -> None:
        """A question is answered by a section, not by the runbook's summary: where the
        title chunk ranks first within its runbook, it trades scores with the runbook's best
        section, so the runbook keeps its place and the section leads it."""
        for i, rows in self._overviews:
            if len(rows):
                j = rows[np.argmax(fused[rows])]
                if fused[i] > fused[j]:
                    fused[i], fused[j] = fused[j], fused[i]

    def _top(self, order: np.ndarray, dense: np.ndarray, bm25: np.ndarray, k: int) -> list[Hit]:
        if not self.chunks or k <= 0:
            return []
        top = np.argsort(-order, kind="stable")[: min(k, len(self.chunks))]
        return [Hit(self.chunks[i], float(dense[i]), float(order[i]), float(bm25[i])) for i in top]

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
        return cls(
            chunks,
            vectors,
            manifest["files"],
            _load_lexical(index_dir, manifest, chunks),
            manifest.get("guard_version", ""),
            _load_lines(index_dir, manifest, chunks),
        )

    def save(self, index_dir: Path) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        old = index_dir / MANIFEST
        previous = _files_named_in(old)
        generation = uuid.uuid4().hex[:12]
        name = f"vectors-{generation}.npy"
        np.save(index_dir / name, self.vectors)
        lexical = f"bm25-{generation}"
        self.lexical.save(index_dir / lexical)
        lines = f"lines-{generation}.npy"
        if self.line_vectors is not None:
            np.save(index_dir / lines, self.line_vectors)
        manifest = {
            "model": MODEL_NAME,
            "dimensions": DIMENSIONS,
            "vectors": name,
            "bm25": lexical,
            "bm25_version": LEXICAL_VERSION,
            **(
                {"lines": lines, "lines_version": LINES_VERSION}
                if self.line_vectors is not None
                else {}
            ),
            "files": self.file_hashes,
            "guard_version": self.guard_version,
            "chunks": [asdict(c) for c in self.chunks],
        }
        tmp = index_dir / f".{MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, old)
        self.lexical_saved = True
        # Keep the previous files: another process may have just read the old manifest.
        kept = (name, lexical, lines, *previous)
        for pattern in ("vectors-*.npy", "bm25-*", "lines-*.npy"):
            for stale in index_dir.glob(pattern):
                if stale.name not in kept:
                    _remove(stale)


def rrf(dense: np.ndarray, bm25: np.ndarray, runbook: np.ndarray) -> np.ndarray:
    """Reciprocal rank fusion of score arrays over the same chunks. A chunk that shares no
    term with the query gets nothing from BM25 (its rank there would be arbitrary). The
    runbook ranking is dense: chunks of one runbook share its rank (ties by dense rank)."""
    fused = DENSE_WEIGHT / (RRF_K + 1 + _ranks(dense))
    lexical = BM25_WEIGHT / (RRF_K + 1 + _ranks(bm25))
    fused += np.where(bm25 > 0, lexical, 0.0)
    fused += RUNBOOK_WEIGHT / (RRF_K + 1 + _dense_ranks(runbook))
    return fused.astype(np.float32)


def _dense_ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank where equal scores share a rank (1, 1, 2 ...): one rank per runbook."""
    unique = np.unique(-scores)
    return np.searchsorted(unique, -scores)


def _centroids(chunks: Sequence[Chunk], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each chunk the row of its runbook, and each runbook's normalised mean vector."""
    sources = sorted({c.source for c in chunks})
    row = {s: i for i, s in enumerate(sources)}
    runbook_of = np.array([row[c.source] for c in chunks], dtype=np.int64)
    centroids = np.zeros((len(sources), vectors.shape[1] if vectors.ndim == 2 else DIMENSIONS))
    np.add.at(centroids, runbook_of, vectors)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return runbook_of, (centroids / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of each element, best first; ties keep chunk order."""
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
    return ranks


def _load_lexical(
    index_dir: Path, manifest: dict[str, object], chunks: list[Chunk]
) -> Lexical | None:
    """The persisted BM25 index, or None (then it is rebuilt from the chunks) when it is
    missing, from an older tokenizer or unreadable."""
    name = manifest.get("bm25")
    if not isinstance(name, str) or manifest.get("bm25_version") != LEXICAL_VERSION:
        return None
    try:
        return Lexical.load(index_dir / name, len(chunks))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("BM25 index in %s is unreadable (%s); rebuilding it", index_dir, exc)
        return None


def _load_lines(
    index_dir: Path, manifest: dict[str, object], chunks: list[Chunk]
) -> np.ndarray | None:
    """The persisted line vectors, or None (refresh re-encodes them) when they are missing,
    from another version of support_units() or do not match the chunks."""
    name = manifest.get("lines")
    if not isinstance(name, str) or manifest.get("lines_version") != LINES_VERSION:
        return None
    try:
        vectors = np.load(index_dir / name)
    except (OSError, ValueError) as exc:
        log.warning("line vectors in %s are unreadable (%s); re-encoding them", index_dir, exc)
        return None
    return vectors if vectors.shape == (len(line_texts(chunks)), DIMENSIONS) else None


def line_texts(chunks: Sequence[Chunk]) -> list[str]:
    """Every chunk's support units (copilot.chunking.support_units), each once."""
    return list(dict.fromkeys(u for c in chunks for u in support_units(c.text)))


def _files_named_in(manifest: Path) -> tuple[str, ...]:
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return ()
    if not isinstance(data, dict):
        return ()
    return tuple(str(data[key]) for key in ("vectors", "bm25", "lines") if key in data)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
        if old.line_vectors is None:  # an index from before the line vectors were kept
            old.line_vectors = _lines_for(old.chunks, None, encoder_factory, report)
        if not old.lexical_saved or report.lines_embedded:
            old.save(index_dir)  # an index from before BM25, or from an older tokenizer
        report.chunks_total = len(old)
        report.seconds = time.perf_counter() - started
        return old, report
    chunks = [c for name in sorted(texts) for c in chunk_markdown(name, texts[name])]
    # The index-time door of the injection guard: each new or changed chunk is assessed once.
    chunks = guard_chunks(chunks, old.chunks if old and guarded else (), encoder_factory)
    vectors = _vectors_for(chunks, old, encoder_factory, report)
    lines = _lines_for(chunks, old, encoder_factory, report)
    index = Index(chunks, vectors, hashes, line_vectors=lines)
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


def _lines_for(
    chunks: list[Chunk],
    old: Index | None,
    encoder_factory: Callable[[], Encoder],
    report: RefreshReport,
) -> np.ndarray:
    """Line vectors, reusing the old index's for any line it already had."""
    texts = line_texts(chunks)
    known: dict[str, np.ndarray] = {}
    if old is not None and old.line_vectors is not None:
        known = dict(zip(old.line_texts, old.line_vectors, strict=True))
    todo = [t for t in texts if t not in known]
    if todo:
        known.update(zip(todo, encoder_factory().encode(todo), strict=True))
    report.lines_embedded = len(todo)
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.stack([known[t] for t in texts]).astype(np.float32)
