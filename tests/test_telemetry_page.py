"""The Telemetry page through Streamlit's AppTest, on a seeded home and on an empty one.

No embedding model is needed: the page reads the store only (ui.services never loads it).
"""

import json
from datetime import timedelta
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from copilot.config import Settings
from copilot.service import open_store
from copilot.store import utcnow
from tests.conftest import REPO
from tests.test_telemetry import seed

PAGE = str(REPO / "pages" / "screens" / "telemetry.py")


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
