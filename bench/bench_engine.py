"""Run engine figures: a governed offline run (warm) and a run against an OpenAI-compatible
server that takes a fixed time per call.

Run with `make bench` (or `python bench/bench_engine.py`); BENCH_SMOKE=1 runs it briefly;
BENCH_BACKEND=postgres puts the governance store on PostgreSQL (bench/backend.py).
Prints figures; asserts nothing. Per run it reports the store's write transactions and file
opens, rows written, LLM calls and embedding calls.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMOKE = os.environ.get("BENCH_SMOKE") == "1"
RUNS = 3 if SMOKE else 30
CALL_S = 0.2 if SMOKE else 1.0
TABLES = ("runs", "steps", "audit_events", "llm_usage", "reviews", "approvals", "tool_calls")
TASKS = (
    "Disk full on the postgres volume",
    "p95 latency above 800 ms on payments, what do I check first?",
    "Pods in checkout are OOMKilled; raise the memory limit and open a ticket",
)

from bench.backend import BACKEND, database_urls  # noqa: E402
from copilot.config import Settings  # noqa: E402
from copilot.embeddings import Encoder, get_embedder  # noqa: E402
from copilot.service import Services, make_retriever  # noqa: E402
from tests.fake_openai import Behaviour, FakeOpenAI, Recorded, ok  # noqa: E402


class CountingEncoder:
    """The real MiniLM encoder, counting calls (one per wave is the design)."""

    calls = 0

    def __call__(self) -> Encoder:
        return self

    def encode(self, texts: Any, batch_size: int = 64) -> Any:
        CountingEncoder.calls += 1
        return get_embedder().encode(texts, batch_size)

    def remember(self, texts: Any, vectors: Any) -> None:
        get_embedder().remember(texts, vectors)


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[p - 1] if len(values) > 1 else values[0]


def rows(services: Services) -> int:
    return sum(services.store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in TABLES)


OPENS = "DuckDB files" if BACKEND == "duckdb" else "PostgreSQL connections"
DATABASE_URL = ""
"""Set by main() from BENCH_BACKEND: "" is the DuckDB file under the home."""


def build(home: Path, **overrides: Any) -> Services:
    settings = Settings(
        home=home, corpus=REPO / "corpus", auth="none", database_url=DATABASE_URL, **overrides
    )
    services = Services(settings)
    services.retriever = make_retriever(settings, CountingEncoder())
    services.retriever.refresh()
    services.retriever.search("warm up", 4)
    return services


def bench_offline(home: Path) -> None:
    services = build(home)
    engine = services.engine()
    engine.start("warm up the engine: disk full", user="bench")
    times, tx, opens, written, calls, embeds = [], [], [], [], [], []
    for i in range(RUNS):
        store, before = services.store, rows(services)
        t0, o0, e0 = store.transactions, store.opens, CountingEncoder.calls
        started = time.perf_counter()
        state = engine.start(TASKS[i % len(TASKS)], user="bench")
        times.append((time.perf_counter() - started) * 1000)
        tx.append(store.transactions - t0)
        opens.append(store.opens - o0)
        embeds.append(CountingEncoder.calls - e0)
        written.append(rows(services) - before)
        calls.append(
            store.query("SELECT count(*) AS n FROM llm_usage WHERE run_id = ?", [state.run_id])[0][
                "n"
            ]
        )
    print(
        f"governed run, offline, warm, {BACKEND} ({RUNS} runs): p50 {pct(times, 50):.0f} ms, "
        f"p95 {pct(times, 95):.0f} ms"
    )
    print(
        f"  per run (median): {statistics.median(tx):.0f} store transactions, "
        f"{statistics.median(opens):.0f} {OPENS} opened, {statistics.median(written):.0f} rows "
        f"written, {statistics.median(calls):.0f} LLM calls, "
        f"{statistics.median(embeds):.0f} embedding calls"
    )


_PASSAGE = re.compile(r'<passage id="([^"]+)"')


def slow_model(request: Recorded) -> Behaviour:
    """Plans five steps (four answers, one read-only tool); every call takes CALL_S."""
    system = request.message("system")
    if system.startswith("You are the planner"):
        steps: list[dict[str, Any]] = [
            {"title": f"Step {i}", "action": "answer", "citations": []} for i in range(1, 5)
        ]
        steps.append(
            {
                "title": "Look for an open ticket",
                "action": "tool",
                "tool": "jira.search",
                "args": {"query": "disk full"},
                "citations": [],
            }
        )
        reply = ok(json.dumps({"steps": steps}))
    elif system.startswith("You are the executor"):
        cited = _PASSAGE.findall(request.message("user"))[:1]
        reply = ok(f"- Check the volume [{cited[0] if cited else 'none#none'}]")
    else:
        reply = ok(json.dumps({"verdict": "pass", "reasons": ["fine"]}))
    reply.delay_s = CALL_S
    return reply


def bench_slow_provider(home: Path) -> None:
    with FakeOpenAI(responder=slow_model) as server:
        services = build(
            home,
            llm_provider="openai",
            openai_api_key="sk-bench-0000000000000000",
            openai_base_url=server.openai_url,
            llm_rate_limit_per_min=10_000,
        )
        engine = services.engine()
        engine.start("Disk full on the postgres volume", user="bench")  # warm: model, guard
        calls_before = len(server.requests)
        started = time.perf_counter()
        state = engine.start("Disk full on the postgres volume", user="bench")
        wall = time.perf_counter() - started
        calls = len(server.requests) - calls_before
    print(
        f"five-step plan at {CALL_S:.1f} s per LLM call: {wall:.2f} s wall "
        f"({wall / CALL_S:.1f}x one call; {calls} calls, "
        f"{len(state.steps)} steps, verdict {state.verdict})"
    )


FIRST_TASKS = (
    "Pods in search are OOMKilled and restarting",
    "Redis is evicting keys at maxmemory",
    "The TLS certificate for www expires in 3 days",
    "Kafka consumer lag on the orders topic keeps growing",
    "DNS lookups fail with NXDOMAIN inside the cluster",
)


def bench_first_runs(home: Path) -> None:
    """The first runs of a process that has never seen these tasks: a fresh interpreter on
    an index built beforehand (the model load is not counted; bench_core measures it). The
    runbook lines the reviewer checks come from the index, not from encoding them."""
    build(home)  # builds the index in the home, as `make run` does before the app starts
    script = (
        "import json, sys, time\n"
        "from bench.bench_engine import build\n"
        "from pathlib import Path\n"
        "services = build(Path(sys.argv[1]))\n"
        "out = []\n"
        "for task in json.loads(sys.argv[2]):\n"
        "    started = time.perf_counter()\n"
        "    services.engine().start(task, user='bench')\n"
        "    out.append(round((time.perf_counter() - started) * 1000))\n"
        "print(json.dumps(out))\n"
    )
    tasks = FIRST_TASKS[:2] if SMOKE else FIRST_TASKS
    done = subprocess.run(
        [sys.executable, "-c", script, str(home), json.dumps(tasks)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    times = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"first runs of new tasks in a fresh process ({len(times)}): "
        + ", ".join(f"{t} ms" for t in times)
    )


def main() -> None:
    global DATABASE_URL
    with tempfile.TemporaryDirectory() as tmp, database_urls() as fresh:
        DATABASE_URL = fresh()
        bench_offline(Path(tmp) / "offline")
        DATABASE_URL = ""  # the store is beside the point here: the DuckDB file
        bench_first_runs(Path(tmp) / "first")
        DATABASE_URL = fresh()
        bench_slow_provider(Path(tmp) / "slow")


if __name__ == "__main__":
    main()
