"""Export files and the telemetry CLI commands (export, metrics, prune, sidecar arguments)."""

import hashlib
import io
import itertools
import json
from pathlib import Path

import pytest

from copilot import export
from copilot.cli import main
from copilot.config import Settings
from copilot.service import open_store
from copilot.store import chain_hash
from copilot.telemetry import Filters
from tests.test_telemetry import seed

SECRET = "sk-test-0123456789abcdefSECRET"


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    seed(open_store(Settings(home=home)))
    monkeypatch.setenv("COPILOT_HOME", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # must never reach an export
    monkeypatch.delenv("LLM_PROVIDER", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
    return home


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdout=out), out.getvalue()


def test_export_writes_csv_json_and_a_manifest(home, tmp_path):
    out = tmp_path / "reports"
    code, text = run("export", "--out", str(out))
    assert code == 0 and "manifest.json" in text
    manifest = json.loads((out / "manifest.json").read_text())
    rows = {name: t["rows"] for name, t in manifest["tables"].items()}
    assert rows == {"llm_usage": 7, "approvals": 5, "audit_events": 4, "reviews": 4}
    events = json.loads((out / "audit_events.json").read_text())
    assert manifest["audit_chain_head"] == {"seq": events[-1]["seq"], "hash": events[-1]["hash"]}
    for prev, event in itertools.pairwise(events):  # the chain survives the export
        event["created_at"] = event["created_at"].replace("T", " ").rstrip("Z")
        assert chain_hash(prev["hash"], event) == event["hash"]
    for table in manifest["tables"].values():
        for entry in table["files"].values():
            data = (out / entry["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert SECRET.encode() not in data
    usage_csv = (out / "llm_usage.csv").read_text().splitlines()
    assert len(usage_csv) == 8 and usage_csv[0].startswith("call_id,")
    assert not list(out.glob(".*.tmp"))


def test_export_range_filters_rows(home, tmp_path):
    manifest = export.export_files(
        open_store(Settings(home=home)),
        tmp_path / "late",
        Filters.parse("2024-05-01T11:00:00Z", "2024-05-02"),
    )
    assert manifest["range"] == {"from": "2024-05-01T11:00:00Z", "to": "2024-05-02T00:00:00Z"}
    assert manifest["tables"]["llm_usage"]["rows"] == 2
    assert manifest["tables"]["reviews"]["rows"] == 2
    assert manifest["tables"]["approvals"]["rows"] == 0


def test_metrics_prints_tables_by_provider_model_and_user(home):
    code, text = run("metrics", "--from", "2024-05-01", "--to", "2024-05-02")
    assert code == 0
    assert "LLM calls from 2024-05-01T00:00:00Z to 2024-05-02T00:00:00Z" in text
    for heading in ("Totals", "By provider/model", "By user", "Approvals", "Reviewer outcomes"):
        assert f"\n{heading}\n" in text
    assert "gpt-4o-mini" in text and "carol" in text
    assert "Median time to decision: 180 s" in text
    code, text = run("metrics", "--provider", "nobody")
    assert code == 0 and "No LLM calls in this range. Run a task" in text


def test_metrics_rejects_bad_dates(home, capsys):
    code, _ = run("metrics", "--from", "last tuesday")
    assert code == 2
    assert "is not a time" in capsys.readouterr().err


def test_prune_needs_a_provider_and_audits(home, capsys):
    code, _ = run("prune")
    assert code == 2 and "needs --provider" in capsys.readouterr().err
    code, text = run("prune", "--provider", "stub", "--before", "2024-05-01T10:30:00Z")
    assert code == 0 and "pruned 1 llm_usage row of provider stub" in text
    code, text = run("prune", "--provider", "stub", "--user", "ops")
    assert code == 0 and "pruned 1 " in text
    events = open_store(Settings(home=home)).query(
        "SELECT actor, reason FROM audit_events WHERE action = 'telemetry.pruned' ORDER BY seq"
    )
    assert [e["actor"] for e in events] == ["analyst", "ops"]
    code, text = run("metrics")
    assert "stub" not in text.split("By provider/model")[1].split("By user")[0]


def test_sidecar_rejects_a_bad_port(home, capsys):
    code, _ = run("sidecar", "--port", "70000")
    assert code == 2 and "not a TCP port" in capsys.readouterr().err


def test_export_to_a_forbidden_place_is_one_line_and_writes_nothing(home, capsys, tmp_path):
    code, _ = run("export", "--out", "/proc/forbidden")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: /proc") and err.count("\n") == 1
    assert "Traceback" not in err and not Path("/proc/forbidden").exists()


def test_export_onto_an_existing_file_is_refused_and_the_file_kept(home, capsys, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, _ = run("export", "--out", str(target))
    err = capsys.readouterr().err
    assert code == 2 and "is a file; give a folder" in err and err.count("\n") == 1
    assert target.read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_again_replaces_the_files_and_leaves_no_staging(home, tmp_path):
    out = tmp_path / "reports"
    assert run("export", "--out", str(out))[0] == 0
    (out / "keep.txt").write_text("not ours")
    code, text = run("export", "--out", str(out), "--from", "2024-05-01T11:00:00Z")
    assert code == 0 and f"-> {out / 'llm_usage'}.csv" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"]["llm_usage"]["rows"] == 2
    assert len((out / "llm_usage.csv").read_text().splitlines()) == 3
    assert (out / "keep.txt").read_text() == "not ours"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
