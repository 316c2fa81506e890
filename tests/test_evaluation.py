"""The evaluation harness: suite checks, metrics on constructed results, and one tiny real run
(`python -m copilot bench --tasks 5`: both configurations, a real index of the corpus copy with
the poisoned runbooks, the Jira look-alike on 127.0.0.1, report files). Figures are reported,
not asserted; what is asserted are the product's guarantees and the harness's structure.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from copilot import cli
from copilot.errors import ConfigError, InputError
from copilot.evaluation import metrics, report, suite
from copilot.service import Services
from tests.conftest import REPO

PAGE = str(REPO / "pages" / "screens" / "evaluation.py")


def row(**fields: Any) -> dict[str, Any]:
    """A per-task result as TaskResult.as_dict() writes it, with neutral defaults."""
    base: dict[str, Any] = {
        "id": "t",
        "kind": "ordinary",
        "config": "governed",
        "status": "completed",
        "verdict": "pass",
        "runbooks": [],
        "sections": [],
        "expected_runbook": "",
        "expected_section": "",
        "not_runbook": "",
        "covered": True,
        "admits_missing": False,
        "approvals": 0,
        "approved_writes": 0,
        "side_effects": 0,
        "unauthorized_writes": 0,
        "injection": "",
        "injection_named": False,
        "decision": "",
        "budget_action": "",
        "budget_outcome": "none",
        "lines": 0,
        "unsupported_lines": 0,
        "cost_usd": 0.0,
        "latency_ms": 100.0,
        "llm_calls": 0,
        "store_writes": 0,
    }
    return base | fields


# the suite ----------------------------------------------------------------------------
def test_the_shipped_suite_has_every_kind_and_a_quick_subset_of_each() -> None:
    full, quick = suite.load(), suite.load(suite="quick")
    assert len(full) >= 60
    assert {t.kind for t in quick} == set(suite.KINDS)
    assert set(t.id for t in quick) < set(t.id for t in full)
    assert [t.kind for t in suite.load(limit=6)] == list(suite.KINDS)
    runbooks = {p.name for p in (REPO / "corpus").glob("*.md")} | {
        p.name for p in suite.POISONED.glob("*.md")
    }
    named = {t.runbook for t in full if t.runbook} | {t.not_runbook for t in full if t.not_runbook}
    assert named <= runbooks  # every expectation names a runbook the world indexes


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 1: not JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"id": "a", "kind": "chat", "task": "x"}', "kind 'chat' is not known"),
        ('{"id": "a", "kind": "ordinary", "task": " "}', "'task' is missing"),
        ('{"id": "a", "kind": "ordinary", "task": "x"}', "needs runbook"),
        (
            '{"id": "a", "kind": "write", "task": "x", "runbook": "r", "approver": "maybe"}',
            "approver must be",
        ),
        (
            '{"id": "a", "kind": "write", "task": "x", "runbook": "r", "approver": "edit"}',
            "needs 'edit'",
        ),
        (
            '{"id": "a", "kind": "budget", "task": "x", "limit_usd": 1, "action": "pray"}',
            "action must be",
        ),
        ('{"id": "a", "kind": "follow_up", "task": "x", "first": "y"}', "runbook or not_runbook"),
        ('{"id": "a", "kind": "uncovered", "task": "x", "colour": 1}', "unknown field(s) colour"),
    ],
)
def test_a_bad_line_is_refused_with_its_line_number(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InputError, match="line 1") as caught:
        suite.load(path)
    assert message in str(caught.value)


def test_duplicate_ids_unknown_suites_and_missing_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"id": "a", "kind": "uncovered", "task": "x"}\n' * 2)
    with pytest.raises(InputError, match="id 'a' is used twice"):
        suite.load(path)
    with pytest.raises(InputError, match="use one of quick, full"):
        suite.load(suite="huge")
    with pytest.raises(InputError, match="does not exist"):
        suite.load(tmp_path / "none.jsonl")
    with pytest.raises(InputError, match="at least 1"):
        suite.load(limit=0)


# metrics ------------------------------------------------------------------------------
def test_metrics_on_constructed_results() -> None:
    rows = [
        row(kind="injection", side_effects=1, unauthorized_writes=1, injection_named=False),
        row(kind="injection", side_effects=0, injection_named=True),
        row(kind="injection", side_effects=1, approved_writes=1, injection_named=True),
        row(kind="write", decision="approve", approvals=1, side_effects=1, approved_writes=1),
        row(kind="write", decision="reject", approvals=1, side_effects=1, unauthorized_writes=1),
        row(expected_runbook="dns.md", runbooks=["dns.md"], expected_section="Diagnosis",
            sections=["DNS > Diagnosis"], lines=4, unsupported_lines=1, latency_ms=10.0),
        row(expected_runbook="disk.md", runbooks=["dns.md"], lines=6, latency_ms=30.0),
        row(kind="uncovered", admits_missing=True),
        row(kind="uncovered", admits_missing=False),
        row(kind="budget", budget_action="stop", budget_outcome="stop", status="failed"),
        row(kind="budget", budget_action="fallback", budget_outcome="none"),
        row(kind="follow_up", expected_runbook="b.md", not_runbook="a.md", runbooks=["b.md"]),
        row(kind="follow_up", expected_runbook="b.md", not_runbook="a.md",
            runbooks=["b.md", "a.md"]),
        row(status="failed", cost_usd=0.26, llm_calls=13, store_writes=26),
    ]  # fmt: skip
    m = metrics.summarise(rows)
    assert m["tasks"] == 14
    assert m["attack_success_rate"] == pytest.approx(1 / 3, abs=1e-4)  # an approved one is not
    assert m["injections_named"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["unauthorized_writes"] == 2
    assert m["writes_paused"] == 1.0 and m["writes_as_decided"] == 0.5
    assert m["right_runbook_rate"] == 0.5 and m["right_section_rate"] == 1.0
    assert m["follow_ups_ok"] == 0.5
    assert m["unsupported_lines"] == 1 and m["unsupported_line_rate"] == 0.1
    assert m["admits_missing_rate"] == 0.5 and m["budget_as_configured"] == 0.5
    assert m["failed"] == 1  # the budget stop was expected
    assert m["cost_per_task_usd"] == pytest.approx(0.26 / 14, abs=1e-6)
    assert m["llm_calls_per_task"] == round(13 / 14, 2) and m["store_writes_per_task"] == round(
        26 / 14, 2
    )
    assert m["latency_p50_ms"] == 100.0 and m["latency_p95_ms"] == 100.0


def test_rates_without_tasks_are_not_applicable_and_percentiles_interpolate() -> None:
    m = metrics.summarise([row()])
    assert m["attack_success_rate"] is None and m["admits_missing_rate"] is None
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([1, 2, 3, 4], 50) == 2.5
    assert metrics.percentile([10, 20, 30, 40, 50], 95) == 48.0
    both = metrics.by_config([row(config="governed"), row(config="baseline", latency_ms=7)])
    assert list(both) == ["governed", "baseline"] and both["baseline"]["latency_p50_ms"] == 7


def test_report_files_and_history(tmp_path: Path) -> None:
    rows = [row(), row(config="baseline", kind="injection", side_effects=1, unauthorized_writes=1)]
    built = report.build(rows, suite="quick", provider="stub", wall_s=12.34)
    json_path, md_path = report.write(built, tmp_path)
    assert json.loads(json_path.read_text())["configs"]["baseline"]["attack_success_rate"] == 1.0
    text = md_path.read_text()
    assert "| attack success rate | n/a | 1 |" in text and "| t | injection | baseline |" in text
    (tmp_path / "broken.json").write_text("{")
    assert [r["file"] for r in report.history(tmp_path)] == [json_path.name]
    with pytest.raises(InputError, match="make bench"):
        report.latest(tmp_path / "empty")


def test_an_unknown_configuration_is_refused(services: Services) -> None:
    with pytest.raises(ConfigError, match="governed, baseline"):
        services.engine(config="lenient")


# one tiny real run --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """`python -m copilot bench --tasks 5 --json`: ordinary, write (approved), injection,
    budget (fallback) and uncovered tasks, in both configurations."""
    out = tmp_path_factory.mktemp("bench-reports")
    home = tmp_path_factory.mktemp("cli-home")
    printed = io.StringIO()
    code = cli.main(
        ["bench", "--tasks", "5", "--out", str(out), "--home", str(home), "--json"],
        stdout=printed,
    )
    assert code == 0
    return json.loads(printed.getvalue()), out


def test_tiny_run_covers_both_configurations_and_writes_the_report(tiny_run) -> None:
    built, out = tiny_run
    assert set(built["configs"]) == {"governed", "baseline"}
    assert [r["kind"] for r in built["tasks"]][:5] == [
        "ordinary", "write", "injection", "budget", "uncovered",
    ]  # fmt: skip
    assert len(list(out.glob("*.json"))) == 1 and len(list(out.glob("*.md"))) == 1
    for config in built["configs"].values():
        assert config["tasks"] == 5 and config["llm_calls_per_task"] > 0


def test_governed_runs_make_no_change_nobody_approved(tiny_run) -> None:
    """A product guarantee: every governed write waits for a person, so an injection task
    ends with nothing changed (the scripted approver rejects), and an approved write runs."""
    built, _ = tiny_run
    governed = {r["kind"]: r for r in built["tasks"] if r["config"] == "governed"}
    assert all(r["unauthorized_writes"] == 0 for r in built["tasks"] if r["config"] == "governed")
    injection = governed["injection"]
    assert injection["side_effects"] == 0 and injection["injection_named"]
    assert injection["approvals"] >= 1 and injection["decision"] == "reject"
    write = governed["write"]
    assert write["approvals"] >= 1 and write["approved_writes"] == write["side_effects"] >= 1
    assert governed["budget"]["budget_outcome"] == "fallback"


def test_the_baseline_has_no_gates_no_reviewer_no_guard(tiny_run) -> None:
    """What the baseline is, structurally: writes run without approval requests, nothing is
    reviewed, and the guard names nothing."""
    built, _ = tiny_run
    baseline = [r for r in built["tasks"] if r["config"] == "baseline"]
    assert all(r["approvals"] == 0 for r in baseline)
    assert all(r["verdict"] in ("skipped", "") for r in baseline)
    assert not any(r["injection_named"] for r in baseline)
    write = next(r for r in baseline if r["kind"] == "write")
    assert write["side_effects"] >= 1 and write["unauthorized_writes"] == write["side_effects"]


def test_bench_refuses_a_bad_task_count(tmp_path: Path, capsys) -> None:
    code = cli.main(
        ["bench", "--tasks", "0", "--home", str(tmp_path / "h"), "--out", str(tmp_path)]
    )
    assert code == 2 and "at least 1" in capsys.readouterr().err


# the page -----------------------------------------------------------------------------
def open_page(folder: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("COPILOT_BENCH_REPORTS", str(folder))
    monkeypatch.setenv("COPILOT_HOME", str(folder.parent / "home"))
    monkeypatch.chdir(folder.parent)
    st.cache_data.clear()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_page_shows_latest_metrics_charts_history_and_csv(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "reports"
    for wall in (10.0, 20.0):
        rows = [
            row(),
            row(config="baseline", kind="injection", side_effects=1, unauthorized_writes=1),
        ]
        built = report.build(rows, suite="quick", provider="stub", wall_s=wall)
        built["created_at"] = f"2026-12-0{int(wall // 10)}T05:00:00Z"
        report.write(built, folder)
    at = open_page(folder, monkeypatch)
    assert not at.error
    assert len(at.get("plotly_chart")) == 3
    assert len(at.get("download_button")) == 4
    assert "Latest run: 2026-12-02T05:00:00Z" in [s.value for s in at.subheader]
    history = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert {len(trace["x"]) for trace in history["data"]} == {2}  # two runs per series


def test_page_without_reports_says_how_to_make_one(tmp_path: Path, monkeypatch) -> None:
    at = open_page(tmp_path / "none", monkeypatch)
    assert "make bench" in at.info[0].value and not at.get("plotly_chart")
