"""copilot.telemetry against a real DuckDB file seeded with rows whose aggregates are known.

`seed()` is shared with the sidecar, page, export and CLI tests: every expected figure below
is worked out by hand from its rows.
"""

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from copilot import telemetry
from copilot.errors import InputError
from copilot.store import Store
from copilot.telemetry import Filters

T0 = datetime(2024, 5, 1, 10, 0, 0)
# (provider, model, user, run, minutes after base, prompt, completion, latency_ms, cost, ok, fb)
USAGE = [
    ("openai", "gpt-4o-mini", "alice", "r1", 0, 100, 50, 100.0, 0.001, True, False),
    ("openai", "gpt-4o-mini", "alice", "r1", 1, 200, 100, 200.0, 0.002, True, False),
    ("openai", "gpt-4o-mini", "bob", "r2", 2, 300, 150, 300.0, 0.003, False, False),
    ("openai", "gpt-4o-mini", "bob", "r2", 6, 400, 200, 400.0, 0.004, True, False),
    ("stub", "stub-runbook-v1", "alice", "r4", 7, 10, 5, 5.0, 0.0, True, True),
    ("stub", "stub-runbook-v1", "bob", "r4", 61, 20, 10, 15.0, 0.0, True, False),
    ("azure", "gpt-4o", "carol", "r3", 62, 1000, 500, 1000.0, None, True, False),
]
RUNS = [
    ("r1", "alice", "openai", "gpt-4o-mini"),
    ("r2", "bob", "openai", "gpt-4o-mini"),
    ("r3", "carol", "azure", "gpt-4o"),
    ("r4", "alice", "stub", "stub-runbook-v1"),
]
# (approval, run, status, minutes after base, seconds to decision or None)
APPROVALS = [
    ("a1", "r1", "approved", 0, 60),
    ("a2", "r2", "rejected", 1, 180),
    ("a3", "r3", "approved", 2, 300),
    ("a4", "r1", "pending", 3, None),
    ("a5", "r4", "expired", 4, 86400),
]
# (run, verdict, injection flags, minutes after base)
REVIEWS = [("r1", "pass", 0, 5), ("r2", "warn", 1, 6), ("r3", "fail", 2, 65), ("r4", "pass", 0, 66)]


def seed(store: Store, base: datetime = T0) -> None:
    """Runs, usage, approvals, reviews and a few chained audit events at `base` + minutes."""
    at = lambda minutes: base + timedelta(minutes=minutes)  # noqa: E731
    with store.transaction() as tx:
        for run_id, user, provider, model in RUNS:
            tx.insert("runs", _run(run_id, user, provider, model, base))
            tx.audit(actor=user, action="run.started", reason="seed", run_id=run_id)
        tx.insert_many("llm_usage", [_usage(i, row, at(row[4])) for i, row in enumerate(USAGE)])
        tx.insert_many("approvals", [_approval(row, at(row[3])) for row in APPROVALS])
        tx.insert_many(
            "reviews",
            [
                {"run_id": r, "verdict": v, "reasons_json": "[]", "injection_flags": f}
                | {"created_at": at(m)}
                for r, v, f, m in REVIEWS
            ],
        )


def _run(run_id: str, user: str, provider: str, model: str, base: datetime) -> dict:
    return {
        "run_id": run_id,
        "user_name": user,
        "task": f"task {run_id}",
        "provider": provider,
        "model": model,
        "status": "completed",
        "created_at": base,
    }


def _usage(i: int, row: tuple, created_at: datetime) -> dict:
    provider, model, user, run_id, _, prompt, completion, latency, cost, ok, fallback = row
    return {
        "call_id": f"c{i}",
        "run_id": run_id,
        "user_name": user,
        "purpose": "plan",
        "provider": provider,
        "model": model,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "latency_ms": latency,
        "cost_usd": cost,
        "status": "ok" if ok else "failed",
        "error_class": None if ok else "RateLimitError",
        "attempts": 1 if ok else 4,
        "fallback": fallback,
        "created_at": created_at,
    }


def _approval(row: tuple, created_at: datetime) -> dict:
    approval_id, run_id, status, _, seconds = row
    return {
        "approval_id": approval_id,
        "run_id": run_id,
        "step": 1,
        "tool": "jira.create_issue",
        "action": "open a ticket",
        "args_json": "{}",
        "status": status,
        "rule": "writes-need-approval",
        "reason": "seed",
        "requested_by": "alice",
        "created_at": created_at,
        "decided_at": None if seconds is None else created_at + timedelta(seconds=seconds),
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "g.duckdb")
    seed(s)
    return s


WINDOW = Filters(start=T0, end=T0 + timedelta(hours=2))


def test_cost_latency_series_buckets_in_duckdb(store):
    df = telemetry.cost_latency_series(store, WINDOW, "5m")
    assert list(df.columns) == [
        "bucket", "calls", "cost_usd", "avg_latency_ms", "p95_latency_ms", "prompt_tokens",
        "completion_tokens",
    ]  # fmt: skip
    assert df["bucket"].tolist() == [
        pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(minutes=5)), pd.Timestamp("2024-05-01 11:00")
    ]  # fmt: skip
    assert df["calls"].tolist() == [3, 2, 2]
    assert df["cost_usd"].tolist() == pytest.approx([0.006, 0.004, 0.0])  # NULL price adds 0
    assert df["avg_latency_ms"].tolist() == pytest.approx([200.0, 202.5, 507.5])
    assert df["p95_latency_ms"].tolist() == pytest.approx([290.0, 380.25, 950.75])
    assert df["prompt_tokens"].tolist() == [600, 410, 1020]
    assert df["completion_tokens"].tolist() == [300, 205, 510]


def test_automatic_interval_follows_the_range(store):
    assert telemetry.choose_interval(timedelta(hours=2)) == "1m"
    assert telemetry.choose_interval(timedelta(hours=24)) == "5m"
    assert telemetry.choose_interval(timedelta(days=7)) == "1h"
    assert telemetry.choose_interval(timedelta(days=60)) == "6h"
    assert telemetry.choose_interval(timedelta(days=200)) == "1d"
    assert telemetry.choose_interval(timedelta(days=3650)) == "7d"
    assert telemetry.resolve_interval(store, WINDOW) == "1m"
    assert len(telemetry.cost_latency_series(store, WINDOW)) == 7  # one row per distinct minute
    hourly = telemetry.cost_latency_series(store, WINDOW, "1h")
    assert hourly["calls"].tolist() == [5, 2]


def test_tokens_by_model_and_filters(store):
    df = telemetry.tokens_by_model(store, WINDOW)
    assert df[["provider", "model", "prompt_tokens", "completion_tokens"]].values.tolist() == [
        ["azure", "gpt-4o", 1000, 500],
        ["openai", "gpt-4o-mini", 1000, 500],
        ["stub", "stub-runbook-v1", 30, 15],
    ]
    by_user = telemetry.tokens_by_model(store, Filters(user="bob"))
    assert by_user[["model", "prompt_tokens"]].values.tolist() == [
        ["gpt-4o-mini", 700],
        ["stub-runbook-v1", 20],
    ]
    only = telemetry.tokens_by_model(store, Filters(provider="stub", model="stub-runbook-v1"))
    assert only["prompt_tokens"].tolist() == [30]
    first_hour = Filters(start=T0, end=T0 + timedelta(hours=1))  # end is exclusive
    assert telemetry.llm_summary(store, first_hour)["calls"] == 5


def test_provider_snapshot_percentiles_failures_fallbacks(store):
    df = telemetry.provider_snapshot(store, WINDOW).set_index("provider")
    assert df.loc["openai", "calls"] == 4 and df.loc["openai", "failures"] == 1
    assert df.loc["openai", "p50_latency_ms"] == pytest.approx(250.0)
    assert df.loc["openai", "p95_latency_ms"] == pytest.approx(385.0)
    assert df.loc["openai", "cost_usd"] == pytest.approx(0.010)
    assert df.loc["stub", "fallbacks"] == 1 and df.loc["stub", "failures"] == 0
    assert df.loc["azure", "unpriced_calls"] == 1 and df.loc["azure", "cost_usd"] == 0
    users = telemetry.usage_breakdown(store, WINDOW, ("user",)).set_index("user")
    assert users["calls"].to_dict() == {"alice": 3, "bob": 3, "carol": 1}


def test_llm_summary_totals(store):
    s = telemetry.llm_summary(store, Filters())
    assert (s["calls"], s["failures"], s["fallbacks"]) == (7, 1, 1)
    assert (s["prompt_tokens"], s["completion_tokens"]) == (2030, 1015)
    assert s["cost_usd"] == pytest.approx(0.010) and s["unpriced_calls"] == 1
    assert s["p50_latency_ms"] == pytest.approx(200.0)
    assert s["first_call"] == "2024-05-01T10:00:00Z" and s["last_call"] == "2024-05-01T11:02:00Z"
    empty = telemetry.llm_summary(store, Filters(provider="nobody"))
    assert empty["calls"] == 0 and empty["cost_usd"] == 0 and empty["first_call"] is None


def test_approval_summary_counts_zeros_and_median(store):
    df = telemetry.approval_summary(store, WINDOW)
    assert df[["status", "approvals"]].values.tolist() == [
        ["pending", 1], ["approved", 2], ["rejected", 1], ["expired", 1]
    ]  # fmt: skip
    assert df.set_index("status")["median_s_to_decision"]["approved"] == pytest.approx(180)
    assert telemetry.median_decision_seconds(store, WINDOW) == pytest.approx(180)  # 60,180,300
    azure = telemetry.approval_summary(store, Filters(provider="azure"))
    assert azure["approvals"].tolist() == [0, 1, 0, 0]  # zeros kept, provider via the run
    assert telemetry.median_decision_seconds(store, Filters(user="alice")) == pytest.approx(60)
    assert telemetry.median_decision_seconds(store, Filters(provider="stub")) is None


def test_reviewer_outcomes_and_totals(store):
    df = telemetry.reviewer_outcomes(store, WINDOW, "1h")
    assert df[["pass", "warn", "fail", "injection_flags"]].values.tolist() == [
        [1, 1, 0, 1],
        [1, 0, 1, 2],
    ]
    totals = telemetry.review_totals(store, Filters(user="carol"))
    assert totals[["verdict", "reviews", "injection_flags"]].values.tolist() == [
        ["pass", 0, 0], ["warn", 0, 0], ["fail", 1, 2]
    ]  # fmt: skip


def test_recent_calls_newest_first_with_limit(store):
    df = telemetry.recent_calls(store, Filters(), limit=3)
    assert df["call_id"].tolist() == ["c6", "c5", "c4"]
    with pytest.raises(InputError, match="limit must be between 1 and 1000"):
        telemetry.recent_calls(store, Filters(), limit=1001)


def test_dashboard_and_snapshot_match_the_single_reads(store):
    board = telemetry.dashboard(store, WINDOW, "5m")
    assert board.interval == "5m"
    pd.testing.assert_frame_equal(
        board.cost_latency, telemetry.cost_latency_series(store, WINDOW, "5m")
    )
    assert board.median_s_to_decision == pytest.approx(180)
    snap = telemetry.metrics_snapshot(store)
    latency = snap.latency.set_index("provider")
    # bounds in seconds: 0.05, 0.1, 0.25, 0.5, 1.0, ... -> openai 100/200/300/400 ms
    assert [latency.loc["openai", f"le_{i}"] for i in range(5)] == [0, 1, 2, 4, 4]
    assert latency.loc["azure", "le_4"] == 1 and latency.loc["azure", "le_3"] == 0


def test_filter_options_list_values_present(store):
    assert telemetry.filter_options(store) == {
        "providers": ["azure", "openai", "stub"],
        "models": ["gpt-4o", "gpt-4o-mini", "stub-runbook-v1"],
        "users": ["alice", "bob", "carol"],
    }


def test_time_parsing_accepts_grafana_forms():
    expected = datetime(2024, 5, 1, 10, 0)
    assert telemetry.parse_time("2024-05-01T10:00:00.000Z", "from") == expected
    assert telemetry.parse_time("2024-05-01T12:00:00+02:00", "from") == expected
    assert telemetry.parse_time("2024-05-01T12:00:00 02:00", "from") == expected  # '+' as space
    assert telemetry.parse_time("1714557600000", "from") == expected  # ${__from}: epoch ms
    assert telemetry.parse_time("2024-05-01", "from") == datetime(2024, 5, 1)
    assert telemetry.parse_time("", "from") is None
    aware = Filters(start=datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    assert aware.start == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2024-05-02", "end": "2024-05-01"}, "must be before"),
        ({"start": "2024-05-01", "end": "2024-05-01"}, "must be before"),
        ({"start": "yesterday"}, "is not a time"),
        ({"provider": "x" * 201}, "longer than 200"),
    ],
)
def test_filters_reject_bad_input(kwargs, message):
    with pytest.raises(InputError, match=message):
        Filters.parse(**kwargs)


def test_interval_validation(store):
    with pytest.raises(InputError, match="not a duration"):
        telemetry.resolve_interval(store, WINDOW, "5 parsecs")
    with pytest.raises(InputError, match="more than 5,000 buckets"):
        telemetry.resolve_interval(store, Filters(start=T0, end=T0 + timedelta(days=30)), "1s")
    assert telemetry.resolve_interval(store, WINDOW, "30s") == "30s"
    assert Filters(provider="  ").provider is None and Filters(model="*").model is None


def test_prune_deletes_one_provider_and_audits(store):
    with pytest.raises(InputError, match="needs --provider"):
        telemetry.prune_usage(store, "", None, actor="ops")
    cutoff = T0 + timedelta(minutes=30)
    assert telemetry.prune_usage(store, "stub", cutoff, actor="ops") == 1  # only the older one
    assert telemetry.prune_usage(store, "stub", None, actor="ops") == 1
    assert telemetry.llm_summary(store, Filters())["calls"] == 5
    events = store.query(
        "SELECT actor, detail FROM audit_events WHERE action = 'telemetry.pruned' ORDER BY seq"
    )
    assert [e["actor"] for e in events] == ["ops", "ops"]
    assert (
        '"rows": 1' in events[0]["detail"]
        and '"before": "2024-05-01T10:30:00Z"' in (events[0]["detail"])
    )


def test_empty_store_gives_empty_frames(tmp_path):
    store = Store(tmp_path / "empty.duckdb")
    now = datetime.now(UTC)
    window = Filters(start=now - timedelta(hours=1), end=now)
    assert telemetry.cost_latency_series(store, window).empty
    assert telemetry.reviewer_outcomes(store, Filters()).empty
    assert telemetry.approval_summary(store, window)["approvals"].tolist() == [0, 0, 0, 0]
    assert telemetry.filter_options(store) == {"providers": [], "models": [], "users": []}
