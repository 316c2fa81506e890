"""Core figures: index build, no-op refresh, query latency, governed run latency, app memory.

Run with `make bench`. Prints figures; asserts nothing (timings belong here, not in tests).
BENCH_SMOKE=1 (`make bench-smoke`) runs every part once or briefly, so CI proves it still runs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
ROUNDS = 1 if SMOKE else 5
RUNS = 2 if SMOKE else 12
CONTENTION_S = 1.0 if SMOKE else 6.0
CORPUS = REPO / "corpus"
SMOKE_RUNBOOKS = 3
"""In smoke mode only a few runbooks are indexed: embedding all of them takes ~7-40 s."""

from bench.streamlit_driver import (  # noqa: E402
    rss_mib,
    run_pages,
    start_app,
    wait_for_rss_plateau,
)
from copilot.config import Settings  # noqa: E402
from copilot.embeddings import get_embedder  # noqa: E402
from copilot.service import Services  # noqa: E402
from tests.e2e.servers import free_port, wait_http  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_index(home: Path) -> Services:
    started = time.perf_counter()
    get_embedder()
    print(f"model load (torch + MiniLM):        {time.perf_counter() - started:8.2f} s")
    services = Services(Settings(home=home, corpus=CORPUS))
    report = services.retriever.refresh()
    print(
        f"index build:                        {report.chunks_total} chunks in "
        f"{report.seconds:.2f} s = {report.chunks_total / report.seconds:.0f} chunks/s"
    )
    times = []
    for _ in range(ROUNDS):
        times.append(services.retriever.refresh().seconds * 1000)
    print(f"refresh, nothing changed:           p50 {statistics.median(times):8.1f} ms")
    return services


def bench_queries(services: Services) -> None:
    lines = (REPO / "tests" / "data" / "labelled_queries.jsonl").read_text().splitlines()
    queries = [json.loads(line)["q"] for line in lines if line.strip()]
    services.retriever.search("warm up", 4)
    rounds: list[list[float]] = []
    for _ in range(ROUNDS):
        rounds.append([])
        for q in queries:
            started = time.perf_counter()
            services.retriever.search(q, 4)
            rounds[-1].append((time.perf_counter() - started) * 1000)
    # The embedder keeps the vectors of texts it has seen: the first round encodes each
    # query, the later ones show a repeated query.
    first, again = rounds[0], [t for r in rounds[1:] for t in r]
    print(
        f"query latency warm, new query ({len(first)}):  p50 {pct(first, 50):6.1f} ms   "
        f"p95 {pct(first, 95):6.1f} ms"
    )
    if again:
        print(
            f"query latency, repeated query ({len(again)}): p50 {pct(again, 50):6.1f} ms   "
            f"p95 {pct(again, 95):6.1f} ms"
        )


def bench_runs(services: Services) -> None:
    engine = services.engine()
    tasks = [
        "Disk full on the postgres volume",
        "p95 latency above 800 ms on payments",
        "Pods in checkout are OOMKilled; raise the limit and open a ticket",
    ]
    times = []
    for i in range(RUNS):
        started = time.perf_counter()
        engine.start(tasks[i % len(tasks)], user="bench")
        times.append((time.perf_counter() - started) * 1000)
    print(
        f"governed run, stub ({len(times)} runs):      p50 {pct(times, 50):6.0f} ms   "
        f"p95 {pct(times, 95):6.0f} ms   (store lock waits: {services.store.lock_waits})"
    )


WRITER = """
import sys, time
from copilot.store import Store
store, deadline = Store(sys.argv[1]), time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < deadline:
    with store.transaction() as tx:
        tx.audit(actor="bench", action="write", reason=str(n))
    n += 1
print(n)
"""


def bench_store_contention(home: Path) -> None:
    """Reads from this process while another process writes back to back."""
    from copilot.store import Store

    path = home / "contention.duckdb"
    store = Store(path)
    store.query("SELECT 1")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(CONTENTION_S)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    times = []
    while writer.poll() is None:
        started = time.perf_counter()
        store.query("SELECT count(*) FROM audit_events")
        times.append((time.perf_counter() - started) * 1000)
    writes = int((writer.stdout.read() if writer.stdout else "0").strip() or 0)
    print(
        f"store under a back-to-back writer:  {writes / CONTENTION_S:.0f} writes/s; "
        f"{len(times)} reads "
        f"p50 {pct(times, 50):.0f} ms  p95 {pct(times, 95):.0f} ms  max {max(times):.0f} ms "
        f"({store.lock_waits} lock waits)"
    )


def bench_streamlit_memory(home: Path) -> None:
    port = free_port()
    proc = start_app(home, port, COPILOT_CORPUS=str(CORPUS))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_stcore/health", proc)
        idle = rss_mib(proc.pid)
        print(f"streamlit RSS idle:                 {idle:8.0f} MiB")
        _serve_five_pages(url, proc.pid, idle)
        if Path("/usr/bin/chromium").exists() and not SMOKE:
            after = _drive_one_task(url)
            print(
                f"streamlit RSS after one chat run:   {rss_mib(proc.pid):8.0f} MiB "
                f"(first answer after {after:.1f} s, model load included)"
            )
        else:
            print("streamlit RSS after a run:          skipped (no /usr/bin/chromium)")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _serve_five_pages(url: str, pid: int, idle: float) -> None:
    """The chat page starts the model load in the background; then every page once."""
    times = run_pages(url, ["", "approvals", "telemetry", "audit", "knowledge"])
    loaded = wait_for_rss_plateau(pid, above_mib=idle + 200, timeout=5 if SMOKE else 180)
    again = run_pages(url, ["telemetry"])
    pages = ", ".join(f"{name} {ms:.0f}" for name, ms in times.items())
    print(f"streamlit RSS, model + five pages:  {loaded:8.0f} MiB (first render ms: {pages};")
    print(f"                                    telemetry again {again['telemetry']:.0f} ms)")


def _drive_one_task(url: str) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.goto(url)
        started = time.perf_counter()
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill("Disk full on the postgres volume")
        box.press("Enter")
        page.get_by_text("Reviewer:").first.wait_for(timeout=120_000)
        elapsed = time.perf_counter() - started
        browser.close()
    return elapsed


def main() -> None:
    global CORPUS
    with tempfile.TemporaryDirectory() as tmp:
        if SMOKE:
            CORPUS = Path(tmp) / "corpus"
            CORPUS.mkdir()
            for runbook in sorted((REPO / "corpus").glob("*.md"))[:SMOKE_RUNBOOKS]:
                shutil.copy(runbook, CORPUS)
        home = Path(tmp) / "home"
        services = bench_index(home)
        bench_queries(services)
        bench_runs(services)
        bench_store_contention(Path(tmp))
        app_home = Path(tmp) / "app"
        shutil.copytree(home / "index", app_home / "index")
        bench_streamlit_memory(app_home)


if __name__ == "__main__":
    main()
