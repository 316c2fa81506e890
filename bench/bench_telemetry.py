"""Telemetry figures: panel query times at 100k and 1M usage rows, and sidecar throughput.

Run with `make bench` (or `python bench/bench_telemetry.py`); BENCH_SMOKE=1 (`make bench-smoke`)
runs everything at tiny sizes. Prints figures; asserts nothing. BENCH_BACKEND=postgres builds
the rows in DuckDB, moves them with `store copy` (its throughput is printed) and measures the
queries, the sidecar and the page on PostgreSQL (bench/backend.py).
Rows are generated inside DuckDB from `range()`, so building a million takes seconds. Each
query time includes opening and closing the DB file, as every real request pays that.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.backend import BACKEND, database_urls  # noqa: E402
from bench.streamlit_driver import run_pages, start_app  # noqa: E402
from copilot import storecopy, telemetry  # noqa: E402
from copilot.pgstore import PgStore  # noqa: E402
from copilot.readcache import CACHE  # noqa: E402
from copilot.store import Store, utcnow  # noqa: E402
from copilot.telemetry import Filters  # noqa: E402
from tests.e2e.servers import wait_http  # noqa: E402

DAYS = 30
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
"""`make bench-smoke`: tiny sizes, so CI proves the script still runs (figures meaningless)."""
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
REQUESTS = 20 if SMOKE else 300
SIZES = tuple(int(n) for n in os.environ.get("BENCH_ROWS", "").split(",") if n) or (
    (2_000,) if SMOKE else (100_000, 1_000_000)
)
"""BENCH_ROWS=1000000 measures one size only."""
SIDECAR_ONLY = os.environ.get("BENCH_SIDECAR_ONLY") == "1"
REPEAT = 1 if SMOKE else 5

USAGE_SQL = """
INSERT INTO llm_usage
SELECT 'c' || i, 'r' || (i // 5), ['alice', 'bob', 'carol', 'dave'][1 + i % 4],
       ['plan', 'execute', 'review'][1 + i % 3],
       CASE WHEN i % 10 < 6 THEN 'openai' WHEN i % 10 < 9 THEN 'azure' ELSE 'stub' END,
       CASE WHEN i % 10 < 4 THEN 'gpt-4o-mini' WHEN i % 10 < 6 THEN 'gpt-4o'
            WHEN i % 10 < 9 THEN 'prod-deployment' ELSE 'stub-runbook-v1' END,
       50 + (hash(i) % 2000)::INT, 10 + (hash(i + 1) % 500)::INT,
       5 + (hash(i + 2) % 3000)::DOUBLE,
       CASE WHEN i % 10 = 9 THEN 0 WHEN i % 10 < 6 THEN (hash(i) % 1000) / 1e6 ELSE NULL END,
       CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'ok' END,
       CASE WHEN i % 50 = 0 THEN 'RateLimitError' END, 1 + (i % 50 = 0)::INT * 3, i % 97 = 0,
       $now - to_microseconds((i * $step)::BIGINT)
FROM range($n) t(i)
"""
RUNS_SQL = """
INSERT INTO runs (run_id, user_name, task, provider, model, status, created_at)
SELECT 'r' || i, ['alice', 'bob', 'carol', 'dave'][1 + i % 4], 'bench task',
       CASE WHEN i % 10 < 6 THEN 'openai' WHEN i % 10 < 9 THEN 'azure' ELSE 'stub' END,
       'gpt-4o-mini', 'completed', $now - to_microseconds((i * 5 * $step)::BIGINT)
FROM range($n // 5) t(i)
"""
REVIEWS_SQL = """
INSERT INTO reviews
SELECT 'r' || i, ['pass', 'pass', 'pass', 'warn', 'fail'][1 + i % 5], '[]', (i % 23 = 0)::INT,
       $now - to_microseconds((i * 5 * $step)::BIGINT)
FROM range($n // 5) t(i)
"""
APPROVALS_SQL = """
INSERT INTO approvals (approval_id, run_id, step, tool, action, args_json, status, rule, reason,
                       requested_by, decided_by, decision_note, created_at, decided_at)
SELECT 'a' || i, 'r' || (i * 4), 1, 'jira.create_issue', 'open a ticket', '{}',
       ['pending', 'approved', 'approved', 'rejected', 'expired'][1 + i % 5], 'writes',
       'bench', 'alice', NULL, NULL, $now - to_microseconds((i * 20 * $step)::BIGINT),
       CASE WHEN i % 5 = 0 THEN NULL
            ELSE $now - to_microseconds((i * 20 * $step)::BIGINT) + to_seconds(60 + i % 600) END
FROM range($n // 20) t(i)
"""


def build(home: Path, rows: int) -> Store:
    store = Store(home / "governance.duckdb", lock_timeout_s=120)
    params = {"n": rows, "now": utcnow(), "step": DAYS * 86400 * 1_000_000 // rows}
    started = time.perf_counter()
    with store.transaction() as tx:
        for sql in (USAGE_SQL, RUNS_SQL, REVIEWS_SQL, APPROVALS_SQL):
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            # Generated numbers and a timestamp, written into the SQL: nothing to redact.
            for name, value in sorted(used.items(), key=lambda kv: -len(kv[0])):  # $now, then $n
                sql = sql.replace(
                    f"${name}", f"TIMESTAMP '{value}'" if name == "now" else str(value)
                )
            tx.execute(sql)
    seconds = time.perf_counter() - started
    size = (home / "governance.duckdb").stat().st_size / 1e6
    what = f"{rows:>9,} usage rows (+ runs, reviews, approvals)"
    print(f"  build {what}: {seconds:.2f} s, {size:.0f} MB")
    return store


def timed(fn: Callable[[], Any], repeat: int = REPEAT) -> float:
    fn()  # warm the OS page cache, as a second page view would
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_queries(store: Store) -> None:
    now = utcnow()
    windows = {"24h": timedelta(hours=24), f"{DAYS}d": timedelta(days=DAYS)}
    title = f"query (median of {REPEAT}, ms, incl. open)"
    print(f"  {title:<38}" + "".join(f"{w:>10}" for w in windows))
    print(f"  {'open + SELECT 1':<38}{timed(lambda: store.query('SELECT 1')):>10.1f}")
    panels: dict[str, Callable[[Filters], Any]] = {
        "cost_latency_series": lambda f: telemetry.cost_latency_series(store, f),
        "tokens_by_model": lambda f: telemetry.tokens_by_model(store, f),
        "approval_summary + median": lambda f: (
            telemetry.approval_summary(store, f),
            telemetry.median_decision_seconds(store, f),
        ),
        "reviewer_outcomes": lambda f: telemetry.reviewer_outcomes(store, f),
        "provider_snapshot": lambda f: telemetry.provider_snapshot(store, f),
        "recent_calls(50)": lambda f: telemetry.recent_calls(store, f, 50),
        "llm_summary": lambda f: telemetry.llm_summary(store, f),
        "dashboard (page, one connection)": lambda f: telemetry.dashboard(store, f),
        "provider_snapshot, provider=azure": lambda f: telemetry.provider_snapshot(
            store, Filters(f.start, f.end, provider="azure")
        ),
    }
    for name, panel in panels.items():
        cells = [timed(_bind(panel, Filters(now - span, now))) for span in windows.values()]
        print(f"  {name:<38}" + "".join(f"{c:>10.1f}" for c in cells))
    scrape = timed(lambda: (CACHE.clear(), telemetry.metrics_snapshot(store)))
    print(f"  {'metrics_snapshot (Prometheus, all time)':<38}{scrape:>10.1f}")


def _bind(panel: Callable[[Filters], Any], filters: Filters) -> Callable[[], Any]:
    # The change-stamp cache would answer every repeat: these figures are the DB's own cost.
    return lambda: (CACHE.clear(), panel(filters))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sidecar(home: Path, port: int, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLM_PROVIDER": "stub"}
    env["COPILOT_DATABASE_URL"] = url
    command = [sys.executable, "-m", "copilot", "--home", str(home), "sidecar"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "Application startup complete" in line:
            # Keep draining the access log so the server never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc
    raise SystemExit(f"sidecar did not start (exit {proc.wait()})")


def load(base: str, paths: list[str]) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker(offset: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=base, timeout=60) as http:
            for i in range(REQUESTS):
                started = time.perf_counter()
                status = http.get(paths[(i + offset) % len(paths)]).status_code
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    errors += status != 200

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - started


def bench_sidecar(home: Path, url: str) -> None:
    now = utcnow()
    window = (
        f"from={(now - timedelta(hours=24)):%Y-%m-%dT%H:%M:%S}.000Z&to={now:%Y-%m-%dT%H:%M:%S}.000Z"
    )
    # What one Grafana dashboard refresh asks for (five panels, six targets, 24 h).
    paths = [
        f"/metrics/llm/timeseries?{window}",
        f"/metrics/llm/summary?{window}",
        f"/metrics/governance/summary?{window}",
        f"/metrics/llm/summary?{window}&provider=azure",
        f"/metrics/governance/summary?{window}",
        "/metrics",
    ]
    port = free_port()
    proc = start_sidecar(home, port, url)
    try:
        latencies, errors, seconds = load(f"http://127.0.0.1:{port}", paths)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(
        f"  sidecar ({BACKEND}), {THREADS} threads x {REQUESTS} requests (Grafana mix): "
        f"{len(latencies) / seconds:.1f} req/s, p50 {statistics.median(latencies):.0f} ms, "
        f"p95 {p95:.0f} ms, errors {errors}"
    )


def bench_page(home: Path, store: Store, url: str) -> None:
    """The Telemetry page in a real `streamlit run`: first render (imports, DB read) and a
    rerun after a write (cache missed, figures re-read), as a person reloading would see."""
    port = free_port()
    proc = start_app(home, port, PYTHONPATH=str(REPO), COPILOT_DATABASE_URL=url)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_stcore/health", proc)
        first = run_pages(url, ["telemetry"])["telemetry"]
        cached = run_pages(url, ["telemetry"])["telemetry"]
        with store.transaction() as tx:
            tx.audit(actor="bench", action="bench.write", reason="invalidate the caches")
        fresh = run_pages(url, ["telemetry"])["telemetry"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(
        f"  telemetry page (streamlit run, 24 h): first {first:.0f} ms, unchanged data "
        f"{cached:.0f} ms, after a write {fresh:.0f} ms"
    )


def to_postgres(store: Store, url: str) -> Store:
    """The built rows moved with `store copy`, whose throughput is a figure of its own."""
    dest: Any = PgStore(url)
    report = storecopy.copy_store(store, dest)
    rate = report.total / report.seconds
    print(f"  store copy to PostgreSQL: {report.total:,} rows in {report.seconds:.1f} s "
          f"({rate:,.0f} rows/s), chain {'intact' if report.chain.ok else 'BROKEN'}")  # fmt: skip
    return dest  # type: ignore[no-any-return]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as tmp, database_urls() as fresh:
        for rows in SIZES:
            home = Path(tmp) / f"rows-{rows}"
            print(f"\n{rows:,} llm_usage rows over {DAYS} days ({BACKEND})")
            store = build(home, rows)
            url = fresh()
            if url:
                store = to_postgres(store, url)
            if not SIDECAR_ONLY:
                bench_queries(store)
            bench_sidecar(home, url)
            bench_page(home, store, url)


if __name__ == "__main__":
    main()
