"""The FastAPI sidecar: the Telemetry page's figures as JSON for Grafana, and for Prometheus.

Every route calls `copilot.telemetry`, the same functions the page and the CLI use. JSON
shapes are objects holding arrays of flat records, so Grafana's JSON API datasource
(marcusolsson-json-datasource) reads a panel with paths like `$.series[*].cost_usd`.
`/metrics` is Prometheus text from a collector that reads DuckDB at scrape time. The sidecar
never holds the DB file between requests; results are reused until the store's change stamp
moves (`copilot.readcache`), so a write is visible to the very next request.

Errors: a CopilotError becomes 4xx JSON `{"error", "message"}` (StoreBusy: 503), and so do
bad query parameters (422), in one place: `_install_error_handlers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from copilot import telemetry
from copilot.config import Settings
from copilot.errors import CopilotError, InputError, NotFound, StoreBusy
from copilot.run.engine import sweep
from copilot.service import open_store
from copilot.store import Store
from copilot.telemetry import Filters

_STATUS = ((InputError, 422), (NotFound, 404), (StoreBusy, 503))
ROUTES = {
    "/healthz": "liveness and DB reachability",
    "/metrics": "Prometheus text exposition",
    "/metrics/llm/timeseries": "cost, latency and tokens per time bucket",
    "/metrics/llm/summary": "totals, per provider/model snapshot, tokens by model",
    "/metrics/llm/recent": "most recent LLM calls (limit <= 1000)",
    "/metrics/llm/options": "providers, models and users present (Grafana variables)",
    "/metrics/governance/summary": "approvals by status, reviewer decisions and outcomes",
}


def create_app(settings: Settings) -> FastAPI:
    store = open_store(settings)
    with store.transaction() as tx:  # a start of an entry point: runs whose process died
        sweep(tx)
    app = FastAPI(title="Ops Copilot sidecar", version="1", docs_url="/docs", redoc_url=None)
    _install_error_handlers(app)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(store))
    _add_routes(app, store, registry)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CopilotError)
    async def copilot_error(_request: Request, exc: Exception) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "InputError", "message": "; ".join(problems)}, 422)


def query_filters(
    from_: Annotated[str | None, Query(alias="from", description="ISO 8601 or epoch ms")] = None,
    to: Annotated[str | None, Query(description="ISO 8601 or epoch ms, exclusive")] = None,
    provider: Annotated[str | None, Query()] = None,
    model: Annotated[str | None, Query()] = None,
    user: Annotated[str | None, Query()] = None,
) -> Filters:
    """The shared query parameters; InputError here becomes a 422 with the reason."""
    return Filters.parse(from_, to, provider, model, user)


FiltersDep = Annotated[Filters, Depends(query_filters)]
IntervalParam = Annotated[str | None, Query(description="bucket width: 1m, 5m, 1h, 1d...")]


def _add_routes(app: FastAPI, store: Store, registry: CollectorRegistry) -> None:
    # Plain `def` routes: FastAPI runs them in its thread pool, DuckDB calls block.
    @app.get("/")
    def index() -> dict[str, Any]:
        """Grafana's "Save & test" on the JSON API datasource GETs the base URL."""
        return {"service": "ops-copilot-sidecar", "routes": ROUTES}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        calls = telemetry.llm_summary(store, Filters())["calls"]
        return {"status": "ok", "db": store.cache_id, "llm_calls": calls}

    @app.get("/metrics/llm/timeseries")
    def timeseries(filters: FiltersDep, interval: IntervalParam = None) -> dict[str, Any]:
        step, frames = telemetry.read_bucketed(
            store, filters, interval, lambda s: {"series": telemetry.cost_latency_query(filters, s)}
        )
        return {
            **_echo(filters),
            "interval": step,
            "series": telemetry.to_records(frames["series"]),
        }

    @app.get("/metrics/llm/summary")
    def summary(filters: FiltersDep) -> dict[str, Any]:
        frames = telemetry.llm_overview(store, filters)
        records = {name: telemetry.to_records(frame) for name, frame in frames.items()}
        return {**_echo(filters), **records, "summary": records["summary"][0]}

    @app.get("/metrics/llm/recent")
    def recent(
        filters: FiltersDep,
        limit: Annotated[int, Query(ge=1, le=telemetry.MAX_LIMIT)] = 50,
    ) -> dict[str, Any]:
        calls = telemetry.recent_calls(store, filters, limit)
        return {**_echo(filters), "limit": limit, "calls": telemetry.to_records(calls)}

    @app.get("/metrics/llm/options")
    def options() -> dict[str, Any]:
        found = telemetry.filter_options(store)
        return {name: [{"value": v} for v in values] for name, values in found.items()}

    @app.get("/metrics/governance/summary")
    def governance(filters: FiltersDep, interval: IntervalParam = None) -> dict[str, Any]:
        return _governance(store, filters, interval)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _echo(filters: Filters) -> dict[str, Any]:
    return {"filters": filters.as_dict()}


def _governance(store: Store, filters: Filters, interval: str | None) -> dict[str, Any]:
    step, frames = telemetry.governance_overview(store, filters, interval)
    median = telemetry.to_records(frames.pop("median"))[0]["median_s_to_decision"]
    records = {name: telemetry.to_records(frame) for name, frame in frames.items()}
    return {**_echo(filters), "interval": step, "median_s_to_decision": median, **records}


class TelemetryCollector(Collector):
    """Reads all-time totals from DuckDB on each scrape (one read-only connection).

    Counters come from rows, so `python -m copilot prune` makes them drop; Prometheus treats
    a drop as a counter reset, which is what pruning is.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        return []  # registering must not read the DB; families are known only at scrape

    def collect(self) -> Iterator[Metric]:
        snap = telemetry.metrics_snapshot(self.store)
        yield from _usage_families(snap.usage)
        yield _latency_family(snap.latency)
        yield from _governance_families(snap.approvals, snap.reviews)


_USAGE_COUNTERS = (
    ("copilot_llm_calls", "LLM calls recorded", "calls"),
    ("copilot_llm_failures", "LLM calls that failed after retries", "failures"),
    ("copilot_llm_fallbacks", "LLM calls answered by the fallback provider", "fallbacks"),
    ("copilot_llm_cost_usd", "LLM spend in USD (calls with a known price)", "cost_usd"),
    ("copilot_llm_unpriced_calls", "LLM calls whose model has no known price", "unpriced_calls"),
)


def _usage_families(usage: Any) -> Iterator[Metric]:
    labels = ["provider", "model"]
    rows = telemetry.to_records(usage)
    for name, doc, column in _USAGE_COUNTERS:
        family = CounterMetricFamily(name, doc, labels=labels)
        for r in rows:
            family.add_metric([r["provider"], r["model"]], float(r[column]))
        yield family
    tokens = CounterMetricFamily("copilot_llm_tokens", "LLM tokens", labels=[*labels, "kind"])
    for r in rows:
        for kind in ("prompt", "completion"):
            tokens.add_metric([r["provider"], r["model"], kind], float(r[f"{kind}_tokens"]))
    yield tokens


def _latency_family(latency: Any) -> Metric:
    family = HistogramMetricFamily(
        "copilot_llm_latency_seconds", "LLM call latency", labels=["provider", "model"]
    )
    for r in telemetry.to_records(latency):
        buckets = [
            (str(bound), float(r[f"le_{i}"])) for i, bound in enumerate(telemetry.LATENCY_BUCKETS_S)
        ]
        buckets.append(("+Inf", float(r["calls"])))
        family.add_metric([r["provider"], r["model"]], buckets, sum_value=float(r["sum_s"]))
    return family


def _governance_families(approvals: Any, reviews: Any) -> Iterator[Metric]:
    pending = GaugeMetricFamily(
        "copilot_approvals", "Approval requests by status", labels=["status"]
    )
    for r in telemetry.to_records(approvals):
        pending.add_metric([r["status"]], float(r["approvals"]))
    yield pending
    verdicts = CounterMetricFamily("copilot_reviews", "Reviewer verdicts", labels=["verdict"])
    flags = CounterMetricFamily(
        "copilot_injection_flags", "Prompt-injection signals the reviewer saw", labels=["verdict"]
    )
    for r in telemetry.to_records(reviews):
        verdicts.add_metric([r["verdict"]], float(r["reviews"]))
        flags.add_metric([r["verdict"]], float(r["injection_flags"]))
    yield verdicts
    yield flags
