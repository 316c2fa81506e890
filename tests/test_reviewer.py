"""The reviewer's per-line grounding rules, on constructed states and on real offline runs.

Constructed states use real runbook text from the shipped corpus and the real MiniLM model.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from copilot.chunking import chunk_markdown
from copilot.config import Settings
from copilot.embeddings import get_embedder
from copilot.llm.base import Passage
from copilot.run import grounding
from copilot.run.reviewer import review_rules
from copilot.run.state import RunState, StepState, StepStatus
from copilot.service import Services
from tests.conftest import CORPUS

OOM = "pod-oomkilled.md"
MITIGATION = "pod-oomkilled.md#mitigation"
DIAGNOSIS = "pod-oomkilled.md#diagnosis"


def passage(chunk_id: str, corpus: Path = CORPUS) -> Passage:
    source = chunk_id.split("#")[0]
    chunk = next(
        c for c in chunk_markdown(source, (corpus / source).read_text()) if c.chunk_id == chunk_id
    )
    return Passage(
        chunk.chunk_id, source, chunk.heading, chunk.text, 0.9, content_hash=chunk.content_hash
    )


def runbook_lines(chunk_id: str) -> list[str]:
    """Bullet or numbered lines of a chunk, as the offline provider copies them."""
    lines = passage(chunk_id).text.splitlines()
    return ["- " + grounding.plain(ln) for ln in lines if re.match(r"(- |\d+\. )", ln)]


def state_with(
    lines: list[str], cites: str = MITIGATION, task: str = "checkout pods are OOMKilled"
) -> RunState:
    """One answered step whose lines cite `cites`; the cited chunks were retrieved for it."""
    state = RunState(run_id="r1", task=task, user="ana")
    state.note_passages([passage(MITIGATION), passage(DIAGNOSIS)])
    state.step_retrieved = {1: [MITIGATION, DIAGNOSIS]}
    answer = "\n".join(f"{line} [{cites}]" for line in lines)
    state.steps = [
        StepState(1, "Mitigate", "answer", [cites], status=StepStatus.DONE, answer=answer)
    ]
    return state


def test_copied_runbook_lines_pass_every_rule():
    state = state_with(runbook_lines(MITIGATION))
    verdict, reasons = review_rules(state, corpus=CORPUS)
    assert verdict == "pass", reasons
    assert len(state.line_checks) == len(runbook_lines(MITIGATION)) >= 3
    assert all(c["status"] == "pass" and c["similarity"] > 0.9 for c in state.line_checks)


def test_a_line_citing_a_chunk_not_retrieved_fails_naming_step_and_line():
    state = state_with(runbook_lines(MITIGATION)[:1])
    state.steps[0].answer += "\n- Restart the pods [disk-full.md#mitigation]"
    verdict, reasons = review_rules(state, corpus=CORPUS)
    assert verdict == "fail"
    assert any(
        r.startswith("step 1 line 2:") and "disk-full.md#mitigation" in r and "not retrieved" in r
        for r in reasons
    )


def test_a_command_not_in_the_cited_passage_fails():
    invented = "- Raise the memory limit: `kubectl delete namespace search --force`"
    state = state_with([*runbook_lines(MITIGATION)[:1], invented])
    verdict, reasons = review_rules(state, corpus=CORPUS)
    assert verdict == "fail"
    assert any("step 1 line 2:" in r and "kubectl delete namespace" in r for r in reasons)
    assert state.line_checks[0]["status"] == "pass"


def test_a_command_wrapped_differently_still_counts_as_verbatim():
    line = runbook_lines(MITIGATION)[0]
    state = state_with([line.replace(" ", "  ")])
    assert grounding.check_lines(state, get_embedder(), None)[0].status == "pass"


def test_a_line_about_something_else_is_weakly_supported():
    off_topic = "- Renew the TLS certificate with cert-manager before it expires."
    state = state_with([*runbook_lines(MITIGATION)[:2], off_topic])
    verdict, reasons = review_rules(state, corpus=CORPUS)
    assert verdict == "warn"
    weak = state.line_checks[2]
    assert weak["status"] == "warn" and weak["similarity"] < grounding.SUPPORT_THRESHOLD
    assert any(r.startswith("step 1 line 3: weakly supported") for r in reasons)


def test_all_lines_of_a_run_are_encoded_in_one_call():
    calls: list[int] = []

    class Counting:
        def encode(self, texts, batch_size=64):
            calls.append(len(texts))
            return get_embedder().encode(texts)

    state = state_with(runbook_lines(MITIGATION))
    state.steps.append(
        StepState(
            2,
            "Diagnose",
            "answer",
            [DIAGNOSIS],
            status=StepStatus.DONE,
            answer="\n".join(f"{ln} [{DIAGNOSIS}]" for ln in runbook_lines(DIAGNOSIS)),
        )
    )
    state.step_retrieved[2] = [DIAGNOSIS]
    checks = grounding.check_lines(state, Counting(), None)
    assert len(calls) == 1 and {c.step for c in checks} == {1, 2}


def test_an_edited_runbook_makes_the_citation_stale(tmp_path: Path):
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    state = state_with(runbook_lines(MITIGATION))
    assert review_rules(state, corpus=corpus)[0] == "pass"
    path = corpus / OOM
    path.write_text(path.read_text().replace("rollout undo", "rollout undo --to-revision=2"))
    verdict, reasons = review_rules(state, corpus=corpus)
    assert verdict == "warn"
    assert any("step 1 line 1:" in r and "stale" in r and "changed" in r for r in reasons)
    path.unlink()
    assert any("no longer in the corpus" in r for r in review_rules(state, corpus=corpus)[1])


def test_a_state_saved_before_the_checks_still_loads_and_is_judged_by_its_text():
    data = json.loads(state_with(runbook_lines(MITIGATION)).to_json())
    del data["line_checks"]
    for p in data["passages"].values():
        del p["content_hash"]
    old = RunState.from_json(json.dumps(data))
    assert old.passages[MITIGATION].content_hash == "" and old.line_checks == []
    assert review_rules(old, corpus=CORPUS)[0] == "pass"


def test_a_regression_after_a_deploy_must_cite_the_mitigation():
    task = "checkout latency regression after the deploy; pods OOMKilled"
    state = state_with(runbook_lines(DIAGNOSIS), cites=DIAGNOSIS, task=task)
    verdict, reasons = review_rules(state, corpus=CORPUS)
    assert verdict == "warn"
    assert any(
        r.startswith("the answer: does not cover the rollback/mitigation") and MITIGATION in r
        for r in reasons
    )
    covered = state_with(runbook_lines(MITIGATION), task=task)
    assert review_rules(covered, corpus=CORPUS)[0] == "pass"
    not_a_regression = state_with(runbook_lines(DIAGNOSIS), cites=DIAGNOSIS)
    assert review_rules(not_a_regression, corpus=CORPUS)[0] == "pass"


@pytest.mark.parametrize(
    ("task", "regression"),
    [
        ("p99 latency went up after the deploy of payments", True),
        ("errors since the release this morning", True),
        ("search regressed after yesterday's rollout", True),
        ("plan the deploy of payments for Friday", False),
        ("disk full on db-1", False),
    ],
)
def test_regression_wording(task: str, regression: bool):
    assert grounding.is_regression(task) is regression


def test_a_real_offline_run_passes_with_zero_warnings(services: Services):
    state = services.run("p99 latency regression after the deploy of checkout")
    assert state.verdict == "pass", state.reasons
    assert state.line_checks and all(c["status"] == "pass" for c in state.line_checks)
    stored = services.store.query("SELECT state_json FROM runs WHERE run_id = ?", [state.run_id])
    assert RunState.from_json(stored[0]["state_json"]).line_checks == state.line_checks


def test_a_real_run_over_an_edited_runbook_is_stale(tmp_path: Path, settings: Settings):
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    services = Services(Settings(home=settings.home, corpus=corpus, auth="none"))
    state = services.run("Pods in checkout are OOMKilled; raise the memory limit")
    assert state.verdict == "pass", state.reasons
    cited = state.steps[0].citations[0]
    source = corpus / state.passages[cited].source
    # A line of the cited section itself changes on disk.
    first = next(ln for ln in state.passages[cited].text.splitlines() if ln[:1] in "-123")
    source.write_text(source.read_text().replace(first, first + " (edited)"))
    verdict, reasons = review_rules(state, corpus=corpus)
    assert verdict == "warn"
    assert any(f"cites {cited}, which is stale" in r for r in reasons)


def test_the_chat_lists_the_line_checks_under_the_answer(settings: Settings, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO

    monkeypatch.setenv("COPILOT_HOME", str(settings.home))
    monkeypatch.setenv("COPILOT_CORPUS", str(settings.corpus))
    monkeypatch.delenv("LLM_PROVIDER", raising=False)
    monkeypatch.chdir(settings.home)
    st.cache_resource.clear()
    st.cache_data.clear()
    app = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120)
    app.run()
    app.chat_input[0].set_value("TLS certificate for api.acme.com expires in 3 days").run()
    assert not app.exception and not app.error
    assert "Line checks (0 problems)" in [e.label for e in app.expander]
    shown = [t.value for t in app.text]
    assert "Step 1 line 1: PASS (support 1.00)" in shown
