"""The Telemetry page through Streamlit's AppTest, on a seeded home and on an empty one.

No embedding model is needed: the page reads the store only (ui.services never loads it).
"""

import importlib.util
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from copilot.config import Settings
from copilot.service import open_store
from copilot.store import utcnow
from tests.conftest import REPO
from tests.test_telemetry import seed

PAGE = str(REPO / "pages" / "screens" / "telemetry.py")
BENCH = REPO / "bench" / "bench_telemetry.py"


def open_page(home: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("COPILOT_HOME", str(home))
    monkeypatch.delenv("LLM_PROVIDER", raising=False)
    monkeypatch.chdir(home.parent)  # no stray .env from the repo
    st.cache_resource.clear()  # ui.services() is cached per process
    st.cache_data.clear()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def test_page_draws_five_panels_with_csv_downloads(tmp_path, monkeypatch):
    home = tmp_path / "home"
    seed(open_store(Settings(home=home)), base=utcnow() - timedelta(hours=2))
    at = open_page(home, monkeypatch)
    assert not at.error
    assert len(charts(at)) == 5
    buttons = at.get("download_button")
    assert len(buttons) == 5
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["LLM calls"] == "7" and metrics["Pending"] == "1"
    assert metrics["Median wait"] == "3.0 min"  # 60, 180, 300 s
    cost_figure = json.loads(charts(at)[0].proto.spec)
    assert {t["name"] for t in cost_figure["data"]} == {
        "cost (USD)",
        "avg latency (ms)",
        "p95 latency (ms)",
    }
    assert not [i for i in at.info if "Run a task" in i.value]


def test_filters_narrow_every_panel(tmp_path, monkeypatch):
    home = tmp_path / "home"
    seed(open_store(Settings(home=home)), base=utcnow() - timedelta(hours=3))
    at = open_page(home, monkeypatch)
    at.selectbox(key="tm_provider").select("azure").run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["LLM calls"] == "1"
    tokens = json.loads(charts(at)[1].proto.spec)
    assert tokens["data"][0]["x"] == ["azure/gpt-4o"]
    at.selectbox(key="tm_range").select("Last hour").run()  # seeded calls are older
    assert not at.exception
    assert any("No LLM calls in this range" in i.value for i in at.info)


def test_empty_store_explains_how_to_get_data(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    at = open_page(home, monkeypatch)
    assert not at.error
    assert charts(at) == [] and at.get("download_button") == []
    hints = [i.value for i in at.info if "python -m copilot demo" in i.value]
    assert len(hints) == 5


def test_custom_dates_range(tmp_path, monkeypatch):
    home = tmp_path / "home"
    seed(open_store(Settings(home=home)), base=utcnow() - timedelta(hours=2))
    at = open_page(home, monkeypatch)
    at.selectbox(key="tm_range").select("Custom dates").run()
    assert not at.exception and not at.error
    assert len(charts(at)) == 5  # the default custom range is the last 7 days, today included


# -- Legible charts: axis settings on empty, small and large data ------------------------------


def figures(at: AppTest) -> dict[str, dict]:
    """Each chart's Plotly spec by panel name (the CSV button's key names the panel)."""
    specs = [json.loads(chart.proto.spec) for chart in charts(at)]
    names = [b.proto.id.split("csv-")[-1] for b in at.get("download_button")]
    return dict(zip(names, specs, strict=True))


def assert_count_axis(axis: dict) -> None:
    assert axis["rangemode"] == "nonnegative" and axis["range"][0] == 0
    assert axis["tick0"] == 0 and isinstance(axis["dtick"], int) and axis["dtick"] >= 1
    assert axis["range"][1] / axis["dtick"] <= 6  # a handful of ticks, never crowded
    assert axis["tickformat"] in (",d", "~s")  # whole numbers only


def assert_legible(at: AppTest, bucket_ms: float, few_buckets: bool) -> dict[str, dict]:
    assert not at.exception and not at.error
    panels = figures(at)
    assert set(panels) == {
        "llm_cost_latency", "tokens_by_model", "approvals_by_status", "reviewer_outcomes",
        "provider_snapshot",
    }  # fmt: skip
    cost = panels["llm_cost_latency"]
    (bars,) = [t for t in cost["data"] if t["type"] == "bar"]
    assert bars["width"] == pytest.approx(bucket_ms * 0.8)  # one bucket or thirty: visible
    lines = [t for t in cost["data"] if t["type"] == "scatter"]
    assert {t["mode"] for t in lines} == {"lines+markers" if few_buckets else "lines"}
    assert cost["layout"]["yaxis"]["rangemode"] == "nonnegative"
    assert cost["layout"]["yaxis2"]["rangemode"] == "nonnegative"
    for name in ("llm_cost_latency", "reviewer_outcomes"):
        xaxis = panels[name]["layout"]["xaxis"]
        assert xaxis["type"] == "date" and xaxis["nticks"] == 8 and xaxis["tickangle"] == 0
    assert_count_axis(panels["reviewer_outcomes"]["layout"]["yaxis"])
    assert_count_axis(panels["reviewer_outcomes"]["layout"]["yaxis2"])
    for name in ("tokens_by_model", "approvals_by_status", "provider_snapshot"):
        assert_count_axis(panels[name]["layout"]["yaxis"])
    (table,) = at.dataframe  # eleven columns fit 1280 px when every header is short
    labels = [c["label"] for c in json.loads(table.proto.columns).values() if "label" in c]
    assert len(labels) == 11 and max(map(len, labels)) <= 11
    return panels


def choose(at: AppTest, preset: str, bucket: str) -> None:
    at.selectbox(key="tm_range").select(preset)
    at.selectbox(key="tm_interval").select(bucket).run()


def test_small_data_over_30_days_in_day_buckets_is_legible(tmp_path, monkeypatch):
    home = tmp_path / "home"
    seed(open_store(Settings(home=home)), base=utcnow() - timedelta(hours=2))
    at = open_page(home, monkeypatch)
    choose(at, "Last 30 days", "1d")
    panels = assert_legible(at, bucket_ms=86_400_000, few_buckets=True)
    xaxis = panels["llm_cost_latency"]["layout"]["xaxis"]
    assert xaxis["tickformat"] == "%b %-d"
    start, end = (datetime.fromisoformat(str(t)) for t in xaxis["range"])
    assert end - start >= timedelta(days=30)  # the whole month, its one busy day a bar in it
    approvals = panels["approvals_by_status"]["layout"]["yaxis"]
    assert approvals["dtick"] == 1 and approvals["tickformat"] == ",d"  # 0..2 requests


def test_large_data_is_legible_by_hour_and_by_day(tmp_path, monkeypatch):
    home = tmp_path / "home"
    bench = load_bench()
    bench.build(home, 100_000)  # 30 days of generated usage, runs, reviews, approvals
    at = open_page(home, monkeypatch)
    panels = assert_legible(at, bucket_ms=300_000, few_buckets=False)  # 24 h auto: 5m
    assert panels["llm_cost_latency"]["layout"]["xaxis"]["tickformat"] == "%H:%M"
    assert panels["tokens_by_model"]["layout"]["yaxis"]["tickformat"] == "~s"  # millions
    choose(at, "Last 30 days", "1d")
    assert_legible(at, bucket_ms=86_400_000, few_buckets=True)


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_telemetry", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_text_leaks_onto_the_page(settings, monkeypatch):
    """Streamlit's magic renders a bare string in a page script: constants' notes must be
    comments, or they appear above the title."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO

    monkeypatch.setenv("COPILOT_HOME", str(settings.home))
    at = AppTest.from_file(str(REPO / "pages" / "screens" / "telemetry.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert not [m for m in at.markdown if "buckets a series" in m.value or "Tick label" in m.value]
