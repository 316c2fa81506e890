"""Retrieval figures: MRR and recall@3 per mode (dense, BM25, hybrid) on the held-out and
tuning query sets, out-of-scope handling, warm query latency, index build time.

Run with `make bench`. Prints figures; asserts nothing (the quality floors are in
tests/test_search_quality.py, timings belong here). BENCH_SMOKE=1 (`make bench-smoke`) indexes
a few runbooks and measures only the queries they answer, so CI proves the script still runs
(figures meaningless).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
SMOKE_RUNBOOKS = (
    "pod-oomkilled.md",
    "message-queue-consumer-lag.md",
    "secret-rotation.md",
    "disk-full.md",
)
"""In smoke mode only these are indexed (embedding all of them takes ~7-40 s); between them
they answer some questions of every query set."""
SMOKE_OUT_OF_SCOPE = 4
REFRESHES = 2 if SMOKE else 5
BM25_BUILDS = 2 if SMOKE else 10
LATENCY_ROUNDS = 1 if SMOKE else 3
FUSION_ROUNDS = 1 if SMOKE else 5

from copilot.config import Settings  # noqa: E402
from copilot.embeddings import get_embedder  # noqa: E402
from copilot.index import Index, Lexical  # noqa: E402
from copilot.retriever import Retriever  # noqa: E402
from copilot.service import Services  # noqa: E402
from tests.test_search_quality import MODES, load, measure  # noqa: E402

SETS = (
    "heldout_queries.jsonl",
    "heldout_fresh_queries.jsonl",
    "heldout_blind3_queries.jsonl",
    "heldout_blind4_queries.jsonl",
    "tuning_queries.jsonl",
    "labelled_queries.jsonl",
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def queries_of(name: str) -> list[dict[str, str]]:
    """A query set; in smoke mode only the questions the indexed runbooks answer."""
    queries = load(name)
    if not SMOKE:
        return queries
    if "source" not in queries[0]:  # out of scope: no runbook answers these
        return queries[:SMOKE_OUT_OF_SCOPE]
    return [q for q in queries if q["source"] in SMOKE_RUNBOOKS]


def bench_build(home: Path, corpus: Path) -> Retriever:
    get_embedder()  # the model load is bench_core's figure, not the index's
    retriever = Services(Settings(home=home, corpus=corpus)).retriever
    report = retriever.refresh()
    print(f"index build (embed + BM25):     {report.chunks_total} chunks in {report.seconds:.2f} s")
    index = retriever.index
    started = time.perf_counter()
    for _ in range(BM25_BUILDS):
        Lexical.build(index.chunks)
    took = (time.perf_counter() - started) * 1000 / BM25_BUILDS
    print(f"BM25 build alone:               {took:.1f} ms")
    refresh = [retriever.refresh().seconds * 1000 for _ in range(REFRESHES)]
    print(f"refresh, nothing changed:       p50 {statistics.median(refresh):.1f} ms")
    return retriever


def bench_quality(index: Index) -> None:
    print("quality (MRR / recall@3)             dense          bm25           hybrid")
    for name in SETS:
        queries = queries_of(name)
        if not queries:
            print(f"  {name}: no question about the indexed runbooks")
            continue
        levels = [("runbook", False)] + ([("section", True)] if name != SETS[-1] else [])
        for level, by_section in levels:
            cells = []
            for mode in MODES:
                f = measure(index, mode, queries, by_section)
                cells.append(f"{f['mrr']:.3f} / {f['recall_at_3']:.2f}")
            label = f"{name.rsplit('_', 1)[0]} ({len(queries)}) by {level}"
            print(f"  {label:34} " + "   ".join(cells))


def bench_coverage(retriever: Retriever) -> None:
    checks = [(name, True) for name in SETS[:4]]
    checks += [("out_of_scope.jsonl", False), ("out_of_scope_blind2.jsonl", False)]
    for name, want in checks:
        queries = [q["q"] for q in queries_of(name)]
        found = retriever.search_many(queries, 3)
        covered = [retriever.coverage(q, h).covered for q, h in zip(queries, found, strict=True)]
        right = sum(1 for c in covered if c == want)
        verdict = "answered" if want else "declined (no runbook covers this)"
        print(f"coverage: {name:28} {right}/{len(queries)} {verdict}")


def bench_latency(retriever: Retriever) -> None:
    queries = [q["q"] for q in queries_of("heldout_queries.jsonl")]
    index, encoder = retriever.index, get_embedder()
    retriever.search("warm up", 4)
    for mode in MODES:
        times = []
        for _ in range(LATENCY_ROUNDS):
            for q in queries:
                started = time.perf_counter()
                if mode == "bm25":
                    index.search_lexical(q, 4)
                elif mode == "dense":
                    index.search(encoder.encode([q])[0], 4)
                else:
                    retriever.search(q, 4)
                times.append((time.perf_counter() - started) * 1000)
        print(
            f"query latency warm, {mode:6} ({len(times)}):  p50 {pct(times, 50):6.2f} ms   "
            f"p95 {pct(times, 95):6.2f} ms"
        )


def bench_fusion(index: Index) -> None:
    """Search cost once the query vector exists: what hybrid adds to a dense lookup. (The
    query encoding above dominates and swings with the load on the machine.)"""
    queries = [q["q"] for q in queries_of("heldout_queries.jsonl")]
    vectors = get_embedder().encode(queries)
    for mode in ("dense", "hybrid"):
        times = []
        for _ in range(FUSION_ROUNDS):
            for q, v in zip(queries, vectors, strict=True):
                started = time.perf_counter()
                index.search(v, 4) if mode == "dense" else index.search_hybrid(q, v, 4)
                times.append((time.perf_counter() - started) * 1000)
        print(
            f"search given the vector, {mode:6}: p50 {pct(times, 50):6.2f} ms   "
            f"p95 {pct(times, 95):6.2f} ms"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = REPO / "corpus"
        if SMOKE:
            corpus = Path(tmp) / "corpus"
            corpus.mkdir()
            for name in SMOKE_RUNBOOKS:
                shutil.copy(REPO / "corpus" / name, corpus)
        retriever = bench_build(Path(tmp) / "home", corpus)
        bench_quality(retriever.index)
        bench_coverage(retriever)
        bench_latency(retriever)
        bench_fusion(retriever.index)


if __name__ == "__main__":
    main()
