"""The sidecar: every route through TestClient, Prometheus text, Grafana's requests replayed,
and a real uvicorn process answering while another process writes to the same DuckDB file.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from copilot.config import Settings
from copilot.readcache import CACHE
from copilot.service import open_store
from copilot.sidecar import create_app
from copilot.store import release, utcnow
from tests.conftest import REPO
from tests.e2e.servers import free_port, wait_http
from tests.test_store import hold_lock
from tests.test_telemetry import seed

GRAFANA = REPO / "grafana"
FROM, TO = "2024-05-01T10:00:00.000Z", "2024-05-01T12:00:00.000Z"  # ${__from:date:iso} form
WINDOW = {"from": FROM, "to": TO}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home", db_lock_timeout_s=0.5)
    seed(open_store(settings))
    return settings


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def test_index_and_healthz(client):
    assert client.get("/").status_code == 200  # Grafana's "Save & test" GETs the base URL
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["llm_calls"] == 7


def test_timeseries_buckets_and_filters(client):
    body = client.get("/metrics/llm/timeseries", params={**WINDOW, "interval": "5m"}).json()
    assert body["interval"] == "5m"
    assert [p["bucket"] for p in body["series"]] == [
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:05:00Z",
        "2024-05-01T11:00:00Z",
    ]
    assert [p["calls"] for p in body["series"]] == [3, 2, 2]
    assert body["series"][0]["p95_latency_ms"] == pytest.approx(290.0)
    auto = client.get("/metrics/llm/timeseries", params=WINDOW).json()
    assert auto["interval"] == "1m" and len(auto["series"]) == 7
    azure = client.get("/metrics/llm/timeseries", params={**WINDOW, "provider": "azure"}).json()
    assert [p["prompt_tokens"] for p in azure["series"]] == [1000]


def test_summary_providers_and_tokens(client):
    body = client.get("/metrics/llm/summary", params={"user": "bob"}).json()
    assert body["summary"]["calls"] == 3 and body["summary"]["failures"] == 1
    assert body["filters"]["user"] == "bob"
    assert {(p["provider"], p["calls"]) for p in body["providers"]} == {("openai", 2), ("stub", 1)}
    assert [t["prompt_tokens"] for t in body["tokens_by_model"]] == [700, 20]


def test_recent_calls_and_limit_cap(client):
    body = client.get("/metrics/llm/recent", params={"limit": 2}).json()
    assert [c["call_id"] for c in body["calls"]] == ["c6", "c5"]
    assert body["calls"][0]["created_at"] == "2024-05-01T11:02:00Z"
    assert body["calls"][0]["cost_usd"] is None  # unknown price stays unknown
    assert len(client.get("/metrics/llm/recent", params={"limit": 1000}).json()["calls"]) == 7
    too_many = client.get("/metrics/llm/recent", params={"limit": 1001})
    assert too_many.status_code == 422
    assert too_many.json() == {
        "error": "InputError",
        "message": "limit: Input should be less than or equal to 1000",
    }
    assert client.get("/metrics/llm/recent", params={"limit": 0}).status_code == 422
    assert client.get("/metrics/llm/recent", params={"limit": "ten"}).status_code == 422


def test_governance_summary(client):
    body = client.get("/metrics/governance/summary", params={**WINDOW, "interval": "1h"}).json()
    assert {a["status"]: a["approvals"] for a in body["approvals"]} == {
        "pending": 1,
        "approved": 2,
        "rejected": 1,
        "expired": 1,
    }
    assert body["median_s_to_decision"] == pytest.approx(180)
    assert [(d["verdict"], d["reviews"]) for d in body["reviewer_decisions"]] == [
        ("pass", 2),
        ("warn", 1),
        ("fail", 1),
    ]
    assert body["reviewer_outcomes"] == [
        {"bucket": "2024-05-01T10:00:00Z", "pass": 1, "warn": 1, "fail": 0, "injection_flags": 1},
        {"bucket": "2024-05-01T11:00:00Z", "pass": 1, "warn": 0, "fail": 1, "injection_flags": 2},
    ]


def test_options_list_values(client):
    assert client.get("/metrics/llm/options").json()["providers"] == [
        {"value": "azure"},
        {"value": "openai"},
        {"value": "stub"},
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "yesterday"}, "from='yesterday' is not a time"),
        ({"from": TO, "to": FROM}, "must be before"),
        ({**WINDOW, "interval": "fortnightly"}, "is not a duration"),
        ({**WINDOW, "interval": "1s", "from": "2024-01-01"}, "buckets"),
    ],
)
def test_bad_parameters_are_422_with_a_message(client, params, message):
    for path in ("/metrics/llm/timeseries", "/metrics/governance/summary"):
        response = client.get(path, params=params)
        assert response.status_code == 422
        assert message in response.json()["message"]


def test_locked_store_is_503(client, settings):
    holder = hold_lock(settings.db_path)
    try:
        response = client.get("/metrics/llm/summary")
        assert response.status_code == 503
        assert response.json()["error"] == "StoreBusy"
        assert "stayed locked" in response.json()["message"]
    finally:
        holder.communicate("\n", timeout=30)


def test_prometheus_text_matches_the_seeded_rows(client):
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    openai = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value("copilot_llm_calls_total", **openai) == 4
    assert value("copilot_llm_failures_total", **openai) == 1
    assert value("copilot_llm_fallbacks_total", provider="stub", model="stub-runbook-v1") == 1
    assert value("copilot_llm_cost_usd_total", **openai) == pytest.approx(0.01)
    assert value("copilot_llm_tokens_total", kind="prompt", **openai) == 1000
    assert value("copilot_llm_latency_seconds_bucket", le="0.25", **openai) == 2
    assert value("copilot_llm_latency_seconds_bucket", le="+Inf", **openai) == 4
    assert value("copilot_llm_latency_seconds_count", **openai) == 4
    assert value("copilot_llm_latency_seconds_sum", **openai) == pytest.approx(1.0)
    assert value("copilot_approvals", status="pending") == 1
    assert value("copilot_approvals", status="approved") == 2
    assert value("copilot_reviews_total", verdict="fail") == 1
    assert value("copilot_injection_flags_total", verdict="fail") == 2


# -- Grafana: replay the JSON API datasource's requests ---------------------------------------

GRAFANA_VARS = {
    "${__from:date:iso}": FROM,
    "${__to:date:iso}": TO,
    "${provider}": "*",  # the dashboard variables' All value
    "${model}": "*",
}


def interpolate(text: str) -> str:
    for name, value in GRAFANA_VARS.items():
        text = text.replace(name, value)
    assert "${" not in text, f"unknown Grafana variable in {text!r}"
    return text


def jsonpath(document, path: str) -> list:
    """The `$.a`, `$.a.b` and `$.a[*].b` forms the dashboard uses (as jsonpath-plus reads them)."""
    assert path.startswith("$."), path
    values = [document]
    for part in path[2:].split("."):
        name, star = (part[:-3], True) if part.endswith("[*]") else (part, False)
        values = [v[name] for v in values if isinstance(v, dict) and name in v]
        if star:
            values = [item for v in values for item in v]
    return values


def replay(client: TestClient, target: dict) -> dict:
    """The request marcusolsson-json-datasource sends: GET base + urlPath, params as pairs."""
    assert target["method"] == "GET"
    params = [(interpolate(k), interpolate(v)) for k, v in target.get("params", [])]
    response = client.get(interpolate(target["urlPath"]), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_dashboard_panel_reads_non_empty_fields(client):
    dashboard = json.loads((GRAFANA / "dashboards" / "ops-copilot.json").read_text())
    panels = dashboard["panels"]
    assert len(panels) == 5
    for panel in panels:
        for target in panel["targets"]:
            assert target["datasource"]["type"] == "marcusolsson-json-datasource"
            document = replay(client, target)
            lengths = set()
            for field in target["fields"]:
                values = jsonpath(document, field["jsonPath"])
                assert values, f"{panel['title']}: {field['jsonPath']} is empty"
                assert all(v is not None for v in values), (panel["title"], field)
                lengths.add(len(values))
            assert len(lengths) == 1, f"{panel['title']}: fields differ in length"  # plugin rule


def test_dashboard_variables_and_provisioning_agree(client):
    import yaml  # pinned in requirements-dev.txt: a missing module must fail, not skip

    dashboard = json.loads((GRAFANA / "dashboards" / "ops-copilot.json").read_text())
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        values = jsonpath(replay(client, query), query["fields"][0]["jsonPath"])
        assert values and variable["allValue"] == "*"
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/ops-copilot.yaml").read_text())
    (datasource,) = source["datasources"]
    assert datasource["type"] == "marcusolsson-json-datasource"
    assert datasource["uid"] == dashboard["panels"][0]["datasource"]["uid"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/ops-copilot.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"


# -- A real server and a real writer on one DuckDB file ---------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from copilot.store import Store, utcnow
    path, count = sys.argv[1], int(sys.argv[2])
    store = Store(path, lock_timeout_s=60)
    for i in range(count):
        with store.transaction() as tx:
            tx.insert("llm_usage", {
                "call_id": f"w{i}", "run_id": "writer", "user_name": "writer",
                "purpose": "plan", "provider": "stub", "model": "stub-runbook-v1",
                "prompt_tokens": 3, "completion_tokens": 2, "latency_ms": 7.0,
                "cost_usd": 0.0, "status": "ok", "created_at": utcnow()})
    print(count, flush=True)
""")


def start_sidecar(settings: Settings, port: int) -> subprocess.Popen:
    env = {**os.environ, "COPILOT_HOME": str(settings.home), "PYTHONPATH": str(REPO)}
    env.pop("LLM_PROVIDER", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "copilot", "sidecar", "--host", "127.0.0.1", "--port", str(port)],
        cwd=settings.home.parent,  # no stray .env from the repo
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=60)  # bounded, fails fast
    return proc


def test_real_sidecar_answers_while_another_process_writes(settings):
    port = free_port()
    server = start_sidecar(settings, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/metrics/llm/summary").json()["summary"]["calls"] == 7
            count = 40
            writer = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(settings.db_path), str(count)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            statuses, seen = [], []
            while writer.poll() is None:
                response = http.get("/metrics/llm/summary")
                statuses.append(response.status_code)
                if response.status_code == 200:
                    seen.append(response.json()["summary"]["calls"])
            out, err = writer.communicate(timeout=120)
            assert writer.returncode == 0 and out.strip() == str(count), err
            assert statuses and set(statuses) == {200}
            assert seen == sorted(seen)  # reads never go backwards
            final = http.get("/metrics/llm/summary").json()["summary"]
            assert final["calls"] == 7 + count
            assert final["prompt_tokens"] == 2030 + 3 * count
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- Cached by the store's change stamp, never stale ------------------------------------------


def _one_call(i: int) -> dict:
    return {
        "call_id": f"fresh{i}", "run_id": "fresh", "user_name": "fresh", "purpose": "plan",
        "provider": "stub", "model": "stub-runbook-v1", "prompt_tokens": 1,
        "completion_tokens": 1, "latency_ms": 5.0, "cost_usd": 0.0, "status": "ok",
        "created_at": utcnow(),
    }  # fmt: skip


def test_a_write_is_visible_in_the_very_next_response(client, settings):
    writer = open_store(settings)  # a different Store object, as another process would hold
    for i in range(1, 6):
        with writer.transaction() as tx:
            tx.insert("llm_usage", _one_call(i))
        assert client.get("/healthz").json()["llm_calls"] == 7 + i
        summary = client.get("/metrics/llm/summary").json()["summary"]
        assert summary["calls"] == 7 + i
        assert 'provider="stub"' in client.get("/metrics").text


def test_repeated_requests_are_served_without_reopening_the_db(client, settings):
    # Closing this process's lingering write connection checkpoints the file (its mtime is
    # part of the stamp); done here, so no checkpoint lands between the rounds below.
    release(settings.db_path)
    paths = ["/metrics/llm/summary", "/metrics/governance/summary", "/metrics", "/healthz"]
    for path in paths:
        client.get(path, params=WINDOW if path.endswith("summary") else None)
    misses = CACHE.misses
    for _ in range(3):
        for path in paths:
            response = client.get(path, params=WINDOW if path.endswith("summary") else None)
            assert response.status_code == 200
    assert CACHE.misses == misses  # every query answered from the cache


def test_real_sidecar_sees_a_write_from_another_process_on_the_next_request(settings):
    port = free_port()
    server = start_sidecar(settings, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for round_ in range(1, 4):
                assert http.get("/healthz").json()["llm_calls"] == 7 + (round_ - 1)
                done = subprocess.run(
                    [sys.executable, "-c", WRITER, str(settings.db_path), "1"],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == 0, done.stderr
                # WRITER reuses call ids per run: move the one row it wrote aside.
                with open_store(settings).transaction() as tx:
                    tx.execute(
                        "UPDATE llm_usage SET call_id = ? WHERE call_id = 'w0'", [f"x{round_}"]
                    )
                assert http.get("/healthz").json()["llm_calls"] == 7 + round_
    finally:
        server.terminate()
        server.wait(timeout=30)
