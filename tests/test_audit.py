from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from copilot import cli, export
from copilot.governance import audit
from copilot.guard import Redactor
from copilot.service import Services
from copilot.store import GENESIS_HASH, Store, chain_hash, utcnow
from copilot.telemetry import Filters
from tests.conftest import REPO


def test_chain_verifies_and_detects_an_edited_row(engine_settings):
    services = Services(engine_settings)
    services.run("Disk full on the postgres volume")
    check = audit.verify_chain(services.store)
    assert check.ok and check.events >= 6 and check.broken_at is None
    first_run_events = audit.events(services.store, limit=1000)
    target = first_run_events[len(first_run_events) // 2]["seq"]
    with services.store.transaction() as tx:  # someone "fixes" history by hand
        tx.execute("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = ?", [target])
    check = audit.verify_chain(services.store)
    assert not check.ok and check.broken_at == target and "edited" in check.reason


def test_events_filter_by_run(services: Services):
    a = services.run("Disk full on the postgres volume")
    services.run("Redis is evicting keys")
    rows = audit.events(services.store, a.run_id)
    assert rows and {r["run_id"] for r in rows} == {a.run_id}


# -- The chain over exactly what is stored, the head file, and the four tamperings -----------
# These use a bare Store in a tmp dir (no model), the way the CLI and the page read it.

SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e"
PASSWORD = "hunter2-correct-horse"


def _home_store(tmp_path: Path) -> Store:
    home = tmp_path / "home"
    return Store(home / "governance.duckdb", redact=Redactor([PASSWORD]))


def _seed(store: Store, n: int = 6) -> list[int]:
    with store.transaction() as tx:
        for i in range(n):
            tx.audit(actor=f"user{i % 2}", action=f"step.{i % 3}", reason=f"event {i}",
                     run_id=f"run{i % 2}", detail={"i": i})  # fmt: skip
    return [r["seq"] for r in store.query("SELECT seq FROM audit_events ORDER BY seq")]


def _verify_cli(store: Store, *extra: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    home = str(store.path.parent)
    code = cli.main(["--home", home, "audit", "verify", "--json", *extra], stdout=out)
    return code, json.loads(out.getvalue())


def test_every_commit_that_appends_writes_the_head_file(tmp_path: Path) -> None:
    store = _home_store(tmp_path)
    assert not store.head_file.exists()
    seqs = _seed(store, 3)
    head = json.loads(store.head_file.read_text())
    last = store.query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")[0]
    assert (head["seq"], head["hash"]) == (seqs[-1], last["hash"])
    with store.transaction() as tx:  # no event appended: the head stays
        tx.execute("UPDATE runs SET status = 'x' WHERE run_id = 'none'")
    assert json.loads(store.head_file.read_text())["seq"] == seqs[-1]
    code, verdict = _verify_cli(store)
    assert code == 0 and verdict["ok"] and verdict["events"] == 3 and verdict["head_checked"]


def _edit(store: Store, seqs: list[int]) -> int:
    with store.transaction() as tx:
        tx.execute("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = ?", [seqs[2]])
    return seqs[2]


def _delete(store: Store, seqs: list[int]) -> int:
    with store.transaction() as tx:
        tx.execute("DELETE FROM audit_events WHERE seq = ?", [seqs[2]])
    return seqs[3]  # the event after the gap no longer chains


def _reorder(store: Store, seqs: list[int]) -> int:
    a, b = seqs[1], seqs[3]
    with store.transaction() as tx:
        tx.execute("UPDATE audit_events SET seq = -1 WHERE seq = ?", [a])
        tx.execute("UPDATE audit_events SET seq = ? WHERE seq = ?", [a, b])
        tx.execute("UPDATE audit_events SET seq = ? WHERE seq = -1", [b])
    return a


def _cut_tail(store: Store, seqs: list[int]) -> int:
    with store.transaction() as tx:
        tx.execute("DELETE FROM audit_events WHERE seq >= ?", [seqs[-2]])
    return seqs[-2]


@pytest.mark.parametrize("tamper", [_edit, _delete, _reorder, _cut_tail])
def test_verify_names_the_first_bad_event_for_each_tampering(
    tmp_path: Path, tamper: Callable[[Store, list[int]], int]
) -> None:
    store = _home_store(tmp_path)
    seqs = _seed(store)
    bad = tamper(store, seqs)
    code, verdict = _verify_cli(store)
    assert code == 1 and not verdict["ok"] and verdict["broken_at"] == bad, verdict
    text = io.StringIO()
    assert cli.main(["--home", str(store.path.parent), "audit", "verify"], stdout=text) == 1
    assert f"BROKEN at event {bad}" in text.getvalue()


def test_without_a_head_a_cut_tail_goes_unnoticed_so_the_head_is_needed(tmp_path: Path) -> None:
    store = _home_store(tmp_path)
    seqs = _seed(store)
    _cut_tail(store, seqs)
    assert audit.verify_chain(store).ok  # the shorter chain is valid on its own
    check = audit.verify_chain(store, audit.read_head(store.head_file))
    assert not check.ok and "cut off" in check.reason


def test_a_rewritten_chain_is_caught_by_the_head_and_by_an_export_manifest(
    tmp_path: Path,
) -> None:
    store = _home_store(tmp_path)
    seqs = _seed(store)
    manifest = export.export_files(store, tmp_path / "out", Filters())
    assert manifest["audit_chain_head"]["seq"] == seqs[-1]
    # Someone edits event 3 and recomputes every hash after it: the chain alone looks fine.
    rows = store.query("SELECT * FROM audit_events ORDER BY seq")
    prev = GENESIS_HASH
    with store.transaction() as tx:
        for row in rows:
            if row["seq"] == seqs[2]:
                row["reason"] = "rewritten"
            row["prev_hash"], row["hash"] = prev, chain_hash(prev, row)
            tx.execute(
                "UPDATE audit_events SET reason = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                [row["reason"], row["prev_hash"], row["hash"], row["seq"]],
            )
            prev = row["hash"]
    assert audit.verify_chain(store).ok
    code, verdict = _verify_cli(store, "--head", str(tmp_path / "out" / "manifest.json"))
    assert code == 1 and verdict["broken_at"] == seqs[-1] and "rewritten" in verdict["reason"]
    assert not audit.verify_chain(store, audit.read_head(store.head_file)).ok


def test_a_secret_in_a_note_or_reason_is_never_stored_and_the_chain_verifies(
    tmp_path: Path,
) -> None:
    store = _home_store(tmp_path)
    with store.transaction() as tx:
        tx.audit(
            actor="bob",
            action="approval.approved",
            reason=f"ok, the key is {SECRET}",
            run_id="r1",
            detail={"note": f"password: {PASSWORD}", "args": {"token": SECRET}},
        )
        tx.audit(actor="bob", action="approval.rejected", reason=f"no, {PASSWORD}")
    stored = store.query("SELECT reason, detail FROM audit_events")
    assert all(SECRET not in str(r) and PASSWORD not in str(r) for r in stored)
    assert "[REDACTED]" in stored[0]["reason"]
    code, verdict = _verify_cli(store)
    assert code == 0 and verdict["ok"] and verdict["events"] == 2
    assert SECRET.encode() not in store.path.read_bytes()
    assert PASSWORD.encode() not in store.path.read_bytes()


def test_audit_lists_with_filters(tmp_path: Path) -> None:
    store = _home_store(tmp_path)
    _seed(store)
    home = ["--home", str(store.path.parent)]
    out = io.StringIO()
    assert cli.main([*home, "audit", "--actor", "user1", "--json"], stdout=out) == 0
    rows = json.loads(out.getvalue())
    assert len(rows) == 3 and {r["actor"] for r in rows} == {"user1"}
    out = io.StringIO()
    assert cli.main([*home, "audit", "--run", "run0", "--action", "step.0"], stdout=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "step.0" in lines[0] and "run0" in lines[0]
    out = io.StringIO()
    assert cli.main([*home, "audit", "--actor", "nobody"], stdout=out) == 0
    assert "No audit events match" in out.getvalue()


def test_audit_page_shows_a_cut_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _home_store(tmp_path)
    seqs = _seed(store)
    monkeypatch.setenv("COPILOT_HOME", str(store.path.parent))
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
    st.cache_resource.clear()
    page = str(REPO / "pages" / "screens" / "audit.py")
    at = AppTest.from_file(page, default_timeout=60)
    at.run()
    assert not at.exception and at.success and "matches" in at.success[0].value
    _cut_tail(store, seqs)
    at = AppTest.from_file(page, default_timeout=60)
    at.run()
    assert not at.exception
    assert at.error and f"Chain broken at event {seqs[-2]}" in at.error[0].value
    assert "cut off" in at.error[0].value


def test_canary_secret_in_a_note_and_a_rejection_reason_reaches_no_file(tmp_path: Path) -> None:
    store = _home_store(tmp_path)
    now = utcnow()
    with store.transaction() as tx:
        tx.insert(
            "approvals",
            {"approval_id": "ap1", "run_id": "r1", "step": 1, "tool": "jira.create_issue",
             "action": "open a ticket", "args_json": json.dumps({"token": SECRET}),
             "status": "rejected", "rule": "write-needs-approval", "reason": "writes",
             "requested_by": "ann", "decided_by": "bob",
             "decision_note": f"rejected: the args leak {SECRET} and {PASSWORD}",
             "created_at": now, "decided_at": now},
        )  # fmt: skip
        tx.audit(actor="bob", action="approval.rejected", reason=f"leaks {SECRET}",
                 run_id="r1", detail={"note": f"pw {PASSWORD}"})  # fmt: skip
    export.export_files(store, tmp_path / "out", Filters())
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert store.head_file in files and len(files) >= 10
    for file in files:
        data = file.read_bytes()
        assert SECRET.encode() not in data and PASSWORD.encode() not in data, file
    assert _verify_cli(store)[0] == 0
