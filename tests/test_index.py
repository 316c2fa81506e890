"""Index refresh with the real MiniLM model on a small corpus of our own."""

import json
from pathlib import Path

import numpy as np
import pytest

from copilot.embeddings import get_embedder
from copilot.errors import CorpusError
from copilot.index import Index, line_texts, refresh_index
from copilot.intents import cue_intents, query_intents
from copilot.retriever import Retriever


class CountingEncoder:
    """The real embedder, counting how many texts it is asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        self.texts += list(texts)
        return get_embedder().encode(texts, batch_size)


def write(corpus: Path, name: str, text: str) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / name).write_text(text, encoding="utf-8")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    c = tmp_path / "corpus"
    write(c, "dns.md", "# DNS\n\n## Symptoms\n- NXDOMAIN errors\n\n## Fix\n1. Restart CoreDNS\n")
    write(c, "disk.md", "# Disk\n\n## Symptoms\n- df shows 100%\n\n## Fix\n1. Delete old logs\n")
    return c


def test_refresh_embeds_only_changed_text_and_drops_deleted_files(corpus, tmp_path):
    index_dir = tmp_path / "index"
    enc = CountingEncoder()
    index, report = refresh_index(corpus, index_dir, lambda: enc)
    assert report.added == ["disk.md", "dns.md"] and report.chunks_embedded == len(index) == 4

    enc.texts.clear()
    _, report = refresh_index(corpus, index_dir, lambda: enc)
    assert report.unchanged == ["disk.md", "dns.md"]
    assert report.chunks_embedded == 0 and enc.texts == []

    write(corpus, "dns.md", "# DNS\n\n## Symptoms\n- NXDOMAIN errors\n\n## Fix\n1. Flush caches\n")
    (corpus / "disk.md").unlink()
    index, report = refresh_index(corpus, index_dir, lambda: enc)
    assert report.changed == ["dns.md"] and report.removed == ["disk.md"]
    assert report.chunks_embedded == 1 and "Flush caches" in enc.texts[0]
    assert {c.source for c in index.chunks} == {"dns.md"}

    reloaded = Index.load(index_dir)
    assert reloaded is not None and [c.chunk_id for c in reloaded.chunks] == [
        c.chunk_id for c in index.chunks
    ]
    # the current and the previous data files are kept (a reader may hold the old manifest)
    assert len(list(index_dir.glob("vectors-*.npy"))) == 2
    assert len(list(index_dir.glob("bm25-*"))) == 2


def test_search_returns_text_source_heading_span_id_and_score(corpus, tmp_path):
    index, _ = refresh_index(corpus, tmp_path / "index", get_embedder)
    hits = index.search(get_embedder().encode(["coredns lookup failing"])[0], 2)
    top = hits[0].as_dict()
    assert top["source"] == "dns.md"
    assert set(top) >= {"text", "source", "heading", "start", "end", "chunk_id", "score"}
    assert hits[0].score >= hits[1].score


def test_hybrid_hits_carry_the_dense_cosine_the_fused_score_and_bm25(corpus, tmp_path):
    index, _ = refresh_index(corpus, tmp_path / "index", get_embedder)
    query = "CoreDNS fix"
    vector = get_embedder().encode([query])[0]
    hits = index.search_hybrid(query, vector, 4)
    assert hits[0].chunk.chunk_id == "dns.md#fix"
    assert [h.rank_score for h in hits] == sorted((h.rank_score for h in hits), reverse=True)
    dense = {h.chunk.chunk_id: h.score for h in index.search(vector, 4)}
    assert all(abs(h.score - dense[h.chunk.chunk_id]) < 1e-6 for h in hits)  # still a cosine
    assert hits[0].bm25 > 0 and hits[-1].bm25 == 0  # disk.md shares no word with the query
    assert set(hits[0].as_dict()) >= {"score", "rank_score", "bm25"}


def test_bm25_alone_ranks_by_shared_words_and_ignores_unknown_ones(corpus, tmp_path):
    index, _ = refresh_index(corpus, tmp_path / "index", get_embedder)
    assert index.search_lexical("delete logs", 1)[0].chunk.chunk_id == "disk.md#fix"
    assert all(h.bm25 == 0 for h in index.search_lexical("zzz qqq", 4))


def test_bm25_is_persisted_and_rebuilt_without_re_embedding(corpus, tmp_path):
    index_dir = tmp_path / "index"
    refresh_index(corpus, index_dir, get_embedder)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert (index_dir / manifest["bm25"] / "vocab.index.json").is_file()
    loaded = Index.load(index_dir)
    assert loaded is not None and loaded.lexical_saved
    assert loaded.search_lexical("delete logs", 1)[0].chunk.chunk_id == "disk.md#fix"

    # an index written before BM25 (or by an older tokenizer): search still works at once,
    # and the next refresh saves a BM25 index without embedding anything
    del manifest["bm25"]
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    loaded = Index.load(index_dir)
    assert loaded is not None and not loaded.lexical_saved
    assert loaded.search_lexical("delete logs", 1)[0].chunk.chunk_id == "disk.md#fix"
    enc = CountingEncoder()
    _, report = refresh_index(corpus, index_dir, lambda: enc)
    assert report.chunks_embedded == 0 and enc.texts == []
    assert "bm25" in json.loads((index_dir / "manifest.json").read_text())

    # a damaged BM25 directory is rebuilt from the chunks, not shown as a traceback
    name = json.loads((index_dir / "manifest.json").read_text())["bm25"]
    (index_dir / name / "params.index.json").write_text("{ not json")
    loaded = Index.load(index_dir)
    assert loaded is not None and not loaded.lexical_saved
    assert loaded.search_lexical("restart coredns", 1)[0].chunk.source == "dns.md"


def test_bad_files_are_skipped_with_a_warning_naming_them(corpus, tmp_path):
    (corpus / "latin1.md").write_bytes("# Caf\xe9\n".encode("latin-1"))
    (corpus / "notes.txt").write_text("not markdown")
    (corpus / "image.md").write_bytes(b"\x89PNG\x00\x00binary")
    (corpus / "moved.md").symlink_to(corpus / "gone.md")  # unreadable: a dangling link
    index, report = refresh_index(corpus, tmp_path / "index", get_embedder)
    joined = "\n".join(report.warnings)
    assert "latin1.md: not valid UTF-8" in joined
    assert "notes.txt: not a Markdown" in joined
    assert "image.md" in joined
    assert "moved.md: cannot be read" in joined
    assert {c.source for c in index.chunks} == {"dns.md", "disk.md"}


def test_missing_and_empty_corpus_say_what_to_do(tmp_path):
    with pytest.raises(CorpusError, match="does not exist.*COPILOT_CORPUS"):
        refresh_index(tmp_path / "nope", tmp_path / "index", get_embedder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no readable Markdown"):
        refresh_index(tmp_path / "empty", tmp_path / "index", get_embedder)
    assert not (tmp_path / "index" / "manifest.json").exists()


def test_a_damaged_index_is_rebuilt_not_shown_as_a_traceback(corpus, tmp_path):
    index_dir = tmp_path / "index"
    refresh_index(corpus, index_dir, get_embedder)
    (index_dir / "manifest.json").write_text("{ not json")
    assert Index.load(index_dir) is None
    index, report = refresh_index(corpus, index_dir, get_embedder)
    assert report.added == ["disk.md", "dns.md"] and len(index) == 4


def test_chunk_ids_from_file_names_with_spaces_still_work_as_citations():
    from copilot.chunking import chunk_markdown
    from copilot.llm.base import cited_ids

    chunk = chunk_markdown("team notes/On call [v2].md", "# On call\n\n- page the lead\n")[0]
    assert " " not in chunk.chunk_id and "[" not in chunk.chunk_id
    assert cited_ids(f"- page the lead [{chunk.chunk_id}]") == [chunk.chunk_id]


def test_a_refresh_by_another_process_is_picked_up_by_a_running_retriever(corpus, tmp_path):
    index_dir = tmp_path / "index"
    app = Retriever(corpus, index_dir, get_embedder)  # e.g. the Streamlit server's
    assert {h.chunk.source for h in app.search("certificate renewal", 4)} == {"disk.md", "dns.md"}
    write(corpus, "tls.md", "# TLS\n\n## Fix\n1. Renew the certificate with certbot\n")
    Retriever(corpus, index_dir, get_embedder).refresh()  # e.g. `python -m copilot index`
    assert app.search("certificate renewal", 1)[0].chunk.source == "tls.md"


@pytest.mark.parametrize(
    ("question", "sections"),
    [
        ("who should be paged when the replica is many minutes behind", {"escalation"}),
        ("how do I confirm the memory fix worked", {"verification"}),
        ("how do I undo the flag change", {"rollback"}),
        ("how do I find out why the job crashed", {"diagnosis"}),
        ("what should I do right away about the full disk", {"mitigation"}),
        ("the checkout pods are OOMKilled", set()),  # a situation, not a part of a runbook
    ],
)
def test_a_question_names_the_runbook_section_it_wants(question, sections):
    assert cue_intents(question) == sections


@pytest.mark.parametrize(
    ("question", "section"),
    [
        ("a critical CVE hit a library we use, how do we roll out the patch", "mitigation"),
        ("the cert lapses this weekend and renewal is stuck, any workaround", "mitigation"),
        ("once latency settles, what tells me the slowdown is really over", "verification"),
    ],
)
def test_without_a_cue_the_nearest_example_questions_name_the_section(question, section):
    assert cue_intents(question) == set()  # no word says it outright
    assert section in query_intents(question, get_embedder().encode([question])[0])


def test_a_situation_without_a_question_asks_for_no_section():
    text = "the checkout pods are OOMKilled"
    assert query_intents(text, get_embedder().encode([text])[0]) == set()


def test_the_intent_lifts_that_section_of_the_best_runbook_only(tmp_path):
    corpus = tmp_path / "corpus"
    write(corpus, "dns.md", "# DNS\n\n## Fix\n1. Restart CoreDNS\n\n## Escalation\n- sre\n")
    write(corpus, "tls.md", "# TLS\n\n## Fix\n1. Renew\n\n## Escalation\n- security team\n")
    index, _ = refresh_index(corpus, tmp_path / "index", get_embedder)
    query = "CoreDNS is failing, who do I page"
    hits = index.search_hybrid(query, get_embedder().encode([query])[0], 4)
    assert hits[0].chunk.chunk_id == "dns.md#escalation"
    assert hits[1].chunk.chunk_id == "dns.md#fix"  # not the other runbook's Escalation


def test_a_section_leads_its_runbook_not_the_runbook_summary(tmp_path):
    corpus = tmp_path / "corpus"
    summary = "# Disk full\n\nUse this runbook when a volume fills up and writes fail.\n\n"
    write(corpus, "disk.md", summary + "## Mitigation\n1. Delete rotated logs in /var/log\n")
    write(corpus, "dns.md", "# DNS\n\nUse this runbook for lookups.\n\n## Fix\n1. Restart\n")
    index, _ = refresh_index(corpus, tmp_path / "index", get_embedder)
    query = "a volume fills up and writes fail"  # the summary's own words
    hits = index.search_hybrid(query, get_embedder().encode([query])[0], 4)
    assert [h.chunk.chunk_id for h in hits[:2]] == ["disk.md#mitigation", "disk.md#disk-full"]
    dense = index.search(get_embedder().encode([query])[0], 1)
    assert dense[0].chunk.chunk_id == "disk.md#disk-full"  # which the summary matches best


class RememberingEncoder(CountingEncoder):
    """Also takes vectors computed earlier, as copilot.embeddings.Embedder does."""

    def __init__(self) -> None:
        super().__init__()
        self.remembered: dict[str, np.ndarray] = {}

    def remember(self, texts, vectors) -> None:
        self.remembered.update(zip(texts, vectors, strict=True))


def test_the_runbook_lines_answers_are_checked_against_are_encoded_once_and_kept(corpus, tmp_path):
    index_dir, enc = tmp_path / "index", CountingEncoder()
    index, report = refresh_index(corpus, index_dir, lambda: enc)
    lines = line_texts(index.chunks)
    assert "Restart CoreDNS" in lines and "1. Restart CoreDNS" not in lines  # bullet dropped
    assert report.lines_embedded == len(lines) and set(lines) <= set(enc.texts)

    write(corpus, "dns.md", "# DNS\n\n## Symptoms\n- NXDOMAIN errors\n\n## Fix\n1. Flush caches\n")
    enc.texts.clear()
    index, report = refresh_index(corpus, index_dir, lambda: enc)
    # only the changed section's text and its one new line are new
    assert report.lines_embedded == 2 and "Flush caches" in enc.texts

    reloaded = Index.load(index_dir)
    assert reloaded is not None and reloaded.line_vectors is not None
    fresh = get_embedder().encode(reloaded.line_texts)
    assert np.allclose(reloaded.line_vectors, fresh, atol=1e-5)


def test_an_index_saved_without_line_vectors_gets_them_on_the_next_refresh(corpus, tmp_path):
    index_dir = tmp_path / "index"
    index, _ = refresh_index(corpus, index_dir, get_embedder)
    index.line_vectors = None
    index.save(index_dir)  # as an index from before the line vectors were kept
    assert Index.load(index_dir).line_vectors is None  # type: ignore[union-attr]
    _, report = refresh_index(corpus, index_dir, get_embedder)
    assert report.chunks_embedded == 0 and report.lines_embedded > 0
    assert Index.load(index_dir).line_vectors is not None  # type: ignore[union-attr]


def test_a_retriever_hands_the_line_vectors_to_its_encoder_once(corpus, tmp_path):
    enc = RememberingEncoder()
    retriever = Retriever(corpus, tmp_path / "index", lambda: enc)
    retriever.refresh()
    retriever.search("coredns lookups fail", 2)
    index = retriever.index
    assert list(enc.remembered) == index.line_texts
    enc.remembered.clear()
    retriever.search("disk is full", 2)
    assert enc.remembered == {}  # once per loaded index
