"""The same seeded data on DuckDB and on PostgreSQL gives the same answers: every telemetry
panel, every sidecar endpoint and the export files. And `store copy` moves a real
governance file into PostgreSQL with its audit chain intact.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from copilot import cli, export, telemetry
from copilot.config import Settings
from copilot.governance import audit
from copilot.service import Services, open_store, store_at
from copilot.sidecar import create_app
from copilot.store import Store
from copilot.telemetry import Filters

T0 = datetime(2026, 3, 2, 9, 0, 0)
STATUSES = ("pending", "approved", "rejected", "expired")


def _seed(store: Store) -> None:
    """Fixed rows (fixed seed): usage over two days, runs, approvals, reviews, audit events."""
    rng = random.Random(15)
    usage, runs, approvals, reviews = [], [], [], []
    for i in range(400):
        at = T0 + timedelta(seconds=rng.randrange(0, 2 * 86400), microseconds=rng.randrange(10**6))
        priced = rng.random() > 0.1
        usage.append(
            {"call_id": f"c{i:04d}", "run_id": f"r{i % 40:02d}", "user_name": rng.choice("abc"),
             "purpose": rng.choice(["plan", "execute", "review"]),
             "provider": rng.choice(["stub", "openai"]), "model": rng.choice(["m1", "m2", "M3"]),
             "prompt_tokens": rng.randrange(1, 3000), "completion_tokens": rng.randrange(0, 800),
             "latency_ms": round(rng.uniform(5, 40_000), 3),
             "cost_usd": round(rng.uniform(0, 0.05), 6) if priced else None,
             "status": "ok" if rng.random() > 0.15 else "failed",
             "error_class": None, "attempts": rng.randrange(1, 4), "fallback": rng.random() < 0.1,
             "created_at": at}
        )  # fmt: skip
    for r in range(40):
        at = T0 + timedelta(hours=r)
        runs.append(
            {"run_id": f"r{r:02d}", "session_id": None, "user_name": "abc"[r % 3], "task": "t",
             "provider": ["stub", "openai"][r % 2], "model": ["m1", "m2"][r % 2],
             "status": "completed", "created_at": at}
        )  # fmt: skip
        status = STATUSES[r % 4]
        approvals.append(
            {"approval_id": f"a{r:02d}", "run_id": f"r{r:02d}", "step": 1, "tool": "jira",
             "action": "write", "args_json": "{}", "status": status, "rule": "x", "reason": "y",
             "requested_by": "a", "created_at": at,
             "decided_at": at + timedelta(seconds=30 * r + 7) if status != "pending" else None}
        )  # fmt: skip
        reviews.append(
            {"run_id": f"r{r:02d}", "verdict": ["pass", "warn", "fail"][r % 3],
             "reasons_json": "[]", "injection_flags": r % 2, "created_at": at}
        )  # fmt: skip
    with store.transaction() as tx:
        for table, rows in (
            ("llm_usage", usage),
            ("runs", runs),
            ("approvals", approvals),
            ("reviews", reviews),
        ):
            tx.insert_many(table, rows)


@pytest.fixture
def both(settings: Settings, pg_url: str, tmp_path: Path) -> dict[str, Settings]:
    pg = dataclasses.replace(settings, home=tmp_path / "pg-home", database_url=pg_url)
    for each in (settings, pg):
        _seed(open_store(each))
    return {"duckdb": settings, "postgres": pg}


def _records(frame: Any) -> Any:
    return telemetry.to_records(frame)


def _panels(store: Store) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, filters in {
        "all": Filters(end=T0 + timedelta(days=3)),
        "range": Filters(start=T0 + timedelta(hours=5), end=T0 + timedelta(hours=30)),
        "dims": Filters(
            start=T0, end=T0 + timedelta(days=2), provider="openai", model="m2", user="b"
        ),
    }.items():
        board = telemetry.dashboard(store, filters, "1h")
        auto = telemetry.dashboard(store, filters)
        for field in dataclasses.fields(board):
            value = getattr(board, field.name)
            out[f"{name}.{field.name}"] = (
                value if not hasattr(value, "columns") else _records(value)
            )
        out[f"{name}.auto_interval"] = auto.interval
        out[f"{name}.summary"] = telemetry.llm_summary(store, filters)
        out[f"{name}.recent"] = _records(telemetry.recent_calls(store, filters, 25))
        out[f"{name}.by_user"] = _records(telemetry.usage_breakdown(store, filters, ("user",)))
        out[f"{name}.reviews"] = _records(telemetry.review_totals(store, filters))
        out[f"{name}.weekly"] = _records(telemetry.cost_latency_series(store, filters, "7d"))
    out["options"] = telemetry.filter_options(store)
    snapshot = telemetry.metrics_snapshot(store)
    out["metrics"] = {
        f.name: _records(getattr(snapshot, f.name)) for f in dataclasses.fields(snapshot)
    }
    return out


def _close(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats to 1e-9 relative (percentiles may differ in the last bits)."""
    if isinstance(a, float) and isinstance(b, float):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-9), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_every_panel_reads_the_same_on_both_engines(both: dict[str, Settings]) -> None:
    duck, pg = (open_store(both[name]) for name in ("duckdb", "postgres"))
    _close(_panels(duck), _panels(pg), "panels")


def _samples(text: str) -> dict[str, float]:
    """Prometheus samples by series: sums may differ in the last bit (summation order)."""
    lines = [line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#")]
    return {series: float(value) for series, value in lines}


def test_sidecar_endpoints_answer_the_same_on_both_engines(both: dict[str, Settings]) -> None:
    paths = [
        "/metrics/llm/timeseries?interval=1h&from=2026-03-02&to=2026-03-05",
        "/metrics/llm/timeseries?from=2026-03-02T12:00:00Z&to=2026-03-03T12:00:00Z",
        "/metrics/llm/summary?provider=openai",
        "/metrics/llm/recent?limit=50&user=a",
        "/metrics/llm/options",
        "/metrics/governance/summary?interval=6h&from=2026-03-01&to=2026-03-05",
    ]
    answers = {}
    for name, settings in both.items():
        client = TestClient(create_app(settings))
        answers[name] = {p: client.get(p).json() for p in paths}
        answers[name]["/metrics"] = _samples(client.get("/metrics").text)
    _close(answers["duckdb"], answers["postgres"], "sidecar")


def test_exports_are_the_same_on_both_engines(both: dict[str, Settings], tmp_path: Path) -> None:
    contents = {}
    for name, settings in both.items():
        out = tmp_path / f"export-{name}"
        export.export_files(open_store(settings), out, Filters(start=T0 + timedelta(hours=3)))
        contents[name] = {
            p.name: p.read_text() for p in sorted(out.iterdir()) if p.name != "manifest.json"
        }
    assert sorted(contents["duckdb"]) == sorted(contents["postgres"])
    for file in contents["duckdb"]:
        assert contents["duckdb"][file] == contents["postgres"][file], file


def test_store_copy_moves_a_real_governance_file_and_the_chain_verifies(
    services: Services, pg_url: str
) -> None:
    for task in ("Disk full on the postgres volume", "Pods in checkout are OOMKilled"):
        services.run(task)
    source = services.store
    counts = {
        t: source.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]
        for t in ("runs", "audit_events", "llm_usage")
    }
    out = io.StringIO()
    home = ["--home", str(services.settings.home)]
    assert cli.main([*home, "store", "copy", "--to", pg_url, "--json"], stdout=out) == 0
    report = json.loads(out.getvalue())
    assert report["ok"] and report["events"] == counts["audit_events"] > 0
    dest = store_at(pg_url)
    for table, n in counts.items():
        assert dest.query(f"SELECT count(*) AS n FROM {table}")[0]["n"] == n
    with dest.transaction() as tx:  # the copied chain goes on from its last event
        tx.audit(actor="ops", action="store.copied", reason="moved to PostgreSQL")
    check = audit.verify_chain(dest)
    assert check.ok and check.events == counts["audit_events"] + 1
    again = cli.main([*home, "store", "copy", "--to", pg_url], stdout=io.StringIO())
    assert again == 2  # refuses a filled destination without --replace
    replaced = cli.main([*home, "store", "copy", "--to", pg_url, "--replace"], stdout=io.StringIO())
    assert replaced == 0
