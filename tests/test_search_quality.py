"""Retrieval quality over the shipped corpus: recall@3 on a labelled query set of our own."""

import json
from pathlib import Path

from copilot.service import Services

QUERIES = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "labelled_queries.jsonl").read_text().splitlines()
    if line.strip()
]


def recall_at(services: Services, k: int) -> tuple[float, list[str]]:
    results = services.retriever.search_many([q["q"] for q in QUERIES], k)
    misses = [
        q["q"]
        for q, hits in zip(QUERIES, results, strict=True)
        if q["source"] not in {h.chunk.source for h in hits}
    ]
    return 1 - len(misses) / len(QUERIES), misses


def test_recall_at_3_on_labelled_queries(services: Services, record_property):
    recall, misses = recall_at(services, 3)
    record_property("recall_at_3", recall)
    print(f"\nrecall@3 = {recall:.3f} over {len(QUERIES)} queries; misses: {misses}")
    assert len(QUERIES) >= 30
    assert recall >= 0.9, misses


def test_top_hit_is_the_expected_runbook_for_most_queries(services: Services):
    recall, misses = recall_at(services, 1)
    print(f"\nrecall@1 = {recall:.3f}; misses: {misses}")
    assert recall >= 0.75, misses
