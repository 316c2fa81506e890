"""Retrieval quality over the shipped corpus, with the real MiniLM model.

- tests/data/heldout_queries.jsonl: 44 questions in words that differ from the runbooks',
  each with the runbook (and, for 12 intent questions, the section) that answers it.
  Written and committed before any tuning. Its first measurement (hybrid by section: MRR
  0.925) showed intent questions were weak, and the tuning set gained 20 of them; the
  section-intent cues were written after that, so this set is no longer blind.
- tests/data/heldout_fresh_queries.jsonl: 24 more (12 intent questions), written and
  committed before that second tuning round and measured once after it: the blind figure.
- tests/data/heldout_blind3_queries.jsonl: 22 more (21 with a section), in plainer on-call
  words ("stop the bleeding", "where do I look", "go back to the previous version"), written
  and committed before it was ever measured. It shows the section-intent cues do not carry
  over: hybrid by section MRR 0.574, recall@3 0.73; by runbook 0.939 and 0.95. One cue-free
  idea (the section type whose corpus centroid is nearest the question, used when no cue
  fires) was judged on the tuning sets only (no change there) and measured once on the three
  held-out sets: 0.951 / 0.924 / 0.601 by section against 0.989 / 0.910 / 0.574 today, a
  loss on the first set, so it was not adopted.
  Its coverage: 21 of 22 covered; "after reverting a release, how do I confirm everything is
  healthy again" (relevance 0.463) is refused, the threshold left where it was calibrated.
- tests/data/heldout_blind4_queries.jsonl: 36 more (every runbook, each with a section),
  written from the runbooks alone by someone who had seen neither the retriever nor the
  other sets, and committed before anything measured it. Its first measurement, after
  the runbook summary stopped leading its sections and example questions became a second
  intent signal (copilot.intents): by section MRR 0.818, recall@3 0.86 (the code before
  those two changes: 0.751); by runbook 0.952, 0.94. The other sets moved to 0.977 /
  0.958 / 0.746 by section (from 0.989 / 0.910 / 0.574).
- Tuning only ever used tests/data/tuning_queries.jsonl and labelled_queries.jsonl.
- tests/data/out_of_scope.jsonl: 24 questions no runbook covers, half of them near-misses.
- tests/data/out_of_scope_blind2.jsonl: 20 more (14 near-misses: Outlook, Workday, SharePoint,
  vSphere ...), written blind with the fourth set. Measured once under the names rule's
  first form: 13 declined, but that form also refused an in-scope question ("too much RAM");
  with three-letter capitals no longer taken for names: 11 of 20 declined. Coverage of the
  four in-scope sets: 125 of 126 answered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from copilot.embeddings import get_embedder
from copilot.index import Hit, Index
from copilot.retriever import coverage, names_in
from copilot.service import Services

DATA = Path(__file__).parent / "data"
MODES = ("dense", "bm25", "hybrid")
HELDOUT = ("heldout_queries.jsonl", "heldout_fresh_queries.jsonl")
# Hybrid, by runbook and section. The target is MRR >= 0.97 and recall@3 = 1.00: met
# on the first set (0.977), not on the second (0.958, one question at rank 2 and one at 3):
# its floor is what was measured, so that a regression fails.
SECTION_MRR_FLOOR = {"heldout_queries.jsonl": 0.97, "heldout_fresh_queries.jsonl": 0.95}
BLIND3 = "heldout_blind3_queries.jsonl"
BLIND4 = "heldout_blind4_queries.jsonl"
# Far below the target, and recorded as such: each floor is the set's measurement rounded
# down (by runbook MRR, recall@3; by section MRR, recall@3), so that a regression fails and
# an improvement shows.
LATER_SET_FLOORS = {
    BLIND3: ((0.93, 0.95), (0.74, 0.86)),
    BLIND4: ((0.95, 0.94), (0.81, 0.86)),
}


def load(name: str) -> list[dict[str, str]]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def relevant(query: dict[str, str], hit: Hit, by_section: bool = True) -> bool:
    """The expected runbook, and the expected section when the query names one."""
    if hit.chunk.source != query["source"]:
        return False
    section = query.get("section") if by_section else None
    return section is None or hit.chunk.chunk_id.split("#", 1)[1] == section


def rank_of(query: dict[str, str], hits: Sequence[Hit], by_section: bool = True) -> int | None:
    return next((i for i, h in enumerate(hits, 1) if relevant(query, h, by_section)), None)


def search(index: Index, mode: str, queries: list[dict[str, str]], k: int) -> list[list[Hit]]:
    vectors = get_embedder().encode([q["q"] for q in queries])
    if mode == "dense":
        return [index.search(v, k) for v in vectors]
    if mode == "bm25":
        return [index.search_lexical(q["q"], k) for q in queries]
    return [index.search_hybrid(q["q"], v, k) for q, v in zip(queries, vectors, strict=True)]


def measure(
    index: Index, mode: str, queries: list[dict[str, str]], by_section: bool = True
) -> dict[str, float]:
    """MRR (over the top 20) and recall@3."""
    results = search(index, mode, queries, 20)
    ranks = [rank_of(q, hits, by_section) for q, hits in zip(queries, results, strict=True)]
    return {
        "mrr": sum(1 / r for r in ranks if r) / len(queries),
        "recall_at_3": sum(1 for r in ranks if r and r <= 3) / len(queries),
    }


@pytest.fixture(scope="module")
def index(built_index: Path) -> Index:
    loaded = Index.load(built_index)
    assert loaded is not None
    return loaded


def test_the_query_sets_are_big_enough_and_point_at_real_chunks(index: Index):
    heldout = [q for name in (*HELDOUT, *LATER_SET_FLOORS) for q in load(name)]
    assert len(load(HELDOUT[0])) >= 40 and len(load("out_of_scope.jsonl")) >= 20
    sections = {(c.source, c.chunk_id.split("#", 1)[1]) for c in index.chunks}
    for q in heldout + load("tuning_queries.jsonl"):
        assert (q["source"], q.get("section", "symptoms")) in sections, q
    tuning = {q["q"] for q in load("tuning_queries.jsonl") + load("labelled_queries.jsonl")}
    assert not tuning & {q["q"] for q in heldout}  # the held-out sets were never tuned on


@pytest.mark.parametrize("name", HELDOUT)
def test_hybrid_finds_the_runbook_for_every_heldout_question(index: Index, name, record_property):
    queries = load(name)
    figures = {mode: measure(index, mode, queries, by_section=False) for mode in MODES}
    print(f"\n{name} by runbook: {figures}")
    record_property("by_runbook", figures)
    assert figures["hybrid"]["recall_at_3"] == 1.0
    assert figures["hybrid"]["mrr"] >= 0.97


@pytest.mark.parametrize("name", HELDOUT)
def test_hybrid_finds_the_section_and_beats_each_ranking_alone(index: Index, name, record_property):
    queries = load(name)
    figures = {mode: measure(index, mode, queries) for mode in MODES}
    print(f"\n{name} by runbook and section: {figures}")
    record_property("by_section", figures)
    hybrid = figures["hybrid"]
    assert hybrid["recall_at_3"] == 1.0
    assert hybrid["mrr"] >= SECTION_MRR_FLOOR[name]
    assert hybrid["mrr"] > max(figures["dense"]["mrr"], figures["bm25"]["mrr"])


@pytest.mark.parametrize("name", LATER_SET_FLOORS)
def test_the_later_sets_hold_their_measurement(index: Index, name, record_property):
    queries = load(name)
    by_runbook = measure(index, "hybrid", queries, by_section=False)
    by_section = measure(index, "hybrid", queries)
    print(f"\n{name}: by runbook {by_runbook}, by section {by_section}")
    record_property(name, {"runbook": by_runbook, "section": by_section})
    (runbook_mrr, runbook_r3), (section_mrr, section_r3) = LATER_SET_FLOORS[name]
    assert by_runbook["mrr"] >= runbook_mrr and by_runbook["recall_at_3"] >= runbook_r3
    assert by_section["mrr"] >= section_mrr and by_section["recall_at_3"] >= section_r3


def test_recall_at_3_on_the_older_labelled_runbook_queries(services: Services):
    queries = load("labelled_queries.jsonl")
    results = services.retriever.search_many([q["q"] for q in queries], 3)
    misses = [q["q"] for q, hits in zip(queries, results, strict=True) if not rank_of(q, hits)]
    assert misses == []


def covered(services: Services, names: Sequence[str]) -> list[tuple[str, bool]]:
    """Each question of the sets, and whether the retriever says a runbook covers it."""
    questions = [q["q"] for name in names for q in load(name)]
    found = services.retriever.search_many(questions, 3)
    return [
        (q, services.retriever.coverage(q, hits).covered)
        for q, hits in zip(questions, found, strict=True)
    ]


def test_no_heldout_question_is_refused_and_out_of_scope_ones_are(services: Services):
    refused = [q for q, yes in covered(services, [*HELDOUT, BLIND4, BLIND3]) if not yes]
    answered = [q for q, yes in covered(services, ["out_of_scope.jsonl"]) if yes]
    # the one refusal: relevance 0.46, below the threshold calibrated before the set existed
    assert refused == ["after reverting a release, how do I confirm everything is healthy again"]
    assert len(answered) <= 24 // 10, answered  # at least 9 in 10 declined


def test_the_second_out_of_scope_set_holds_its_measurement(services: Services):
    """Written blind, and far below the 9 in 10 target: 11 of 20 declined (13 under the
    first form of the names rule, which also refused an in-scope question about RAM). The
    floor is the measurement, so that a regression fails and an improvement shows."""
    declined = [q for q, yes in covered(services, ["out_of_scope_blind2.jsonl"]) if not yes]
    assert len(declined) >= 11


def test_a_task_naming_a_system_no_runbook_mentions_is_not_covered(services: Services):
    retriever = services.retriever
    task = "How do I restart the COBOL batch scheduler on the mainframe"
    found = retriever.coverage(task, retriever.search(task, 3))
    assert not found.covered and found.relevance >= 0.5  # on relevance alone it was covered
    assert found.reason.startswith("no runbook mentions COBOL")
    known = "the CoreDNS pods in kube-system are crash looping"  # names the corpus uses
    assert retriever.coverage(known, retriever.search(known, 3)).covered


def test_names_are_capitalised_words_where_no_sentence_starts():
    assert names_in("Payroll export to SAP failed. Restart HANA from Workday on Friday") == [
        "HANA",
        "Workday",
    ]
    assert names_in("PagerDuty paged me: Kafka lag") == ["PagerDuty"]
    assert names_in("a worker is killed for using too much RAM and CPU") == []


def test_coverage_needs_hits(index: Index):
    assert coverage("disk full", [], index).covered is False
