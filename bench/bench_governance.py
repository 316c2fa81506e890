"""Governance figures: Cedar decision latency, the budget race, audit verification speed.

Run with `.venv/bin/python bench/bench_governance.py` (or `make bench`); BENCH_SMOKE=1
(`make bench-smoke`) runs everything at tiny sizes, so CI proves it still runs (figures
meaningless). Prints figures; asserts nothing (timings belong here, not in tests).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from copilot.governance import audit, budgets  # noqa: E402
from copilot.governance.budgets import Limits  # noqa: E402
from copilot.governance.policy import Policy  # noqa: E402
from copilot.store import Store, utcnow  # noqa: E402
from tests.test_budgets import RUNNER  # noqa: E402

SMOKE = os.environ.get("BENCH_SMOKE") == "1"
"""`make bench-smoke`: tiny sizes, so CI proves the script still runs (figures meaningless)."""
DECISIONS = 200 if SMOKE else 10_000
APPROVALS = 50 if SMOKE else 2_000
AUDIT_EVENTS = 200 if SMOKE else 20_000
AMOUNT = 0.001
LIMIT = Limits(total_usd=0.02)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_decisions() -> None:
    started = time.perf_counter()
    policy = Policy.load(None)
    print(f"policy load + schema check:         {(time.perf_counter() - started) * 1000:8.1f} ms")
    cases = [
        ("jira.search", False, False),
        ("jira.create_issue", True, False),
        ("jira.create_issue", True, True),
        ("github.create_pull_request", True, False),
    ]
    times = []
    for i in range(DECISIONS):
        tool, writes, tainted = cases[i % len(cases)]
        began = time.perf_counter()
        policy.decide("ann", "requester", tool, writes=writes, target="jira:OPS", tainted=tainted)
        times.append((time.perf_counter() - began) * 1e6)
    label = f"decide() over {DECISIONS:,}:"
    print(
        f"{label:36}p50 {statistics.median(times):7.0f} us"
        f"   p95 {pct(times, 95):7.0f} us   max {max(times) / 1000:6.1f} ms"
    )
    approvals = []
    for i in range(APPROVALS):
        began = time.perf_counter()
        policy.can_approve(
            "bob", "approver", approval_id=f"a{i}", requested_by="ann", tool="t", target="x"
        )
        approvals.append((time.perf_counter() - began) * 1e6)
    label = f"can_approve() over {APPROVALS:,}:"
    print(
        f"{label:36}p50 {statistics.median(approvals):7.0f} us   p95 {pct(approvals, 95):7.0f} us"
    )


def _spent(store: Store) -> float:
    rows = store.query(
        "SELECT COALESCE(SUM(COALESCE(actual_usd, reserved_usd)), 0) AS s, count(*) AS n "
        "FROM reservations WHERE status <> 'released'"
    )
    return float(rows[0]["s"])


def bench_race_threads(home: Path) -> None:
    store = Store(home / "threads" / "governance.duckdb")
    start = threading.Barrier(10)
    calls = [0] * 10

    def runner(i: int) -> None:
        start.wait()
        while True:
            calls[i] += 1
            r = budgets.reserve(store, run_id=f"t{i}", user="ann", amount_usd=AMOUNT, limits=LIMIT)
            if r is None:
                return
            budgets.settle(store, r, r.reserved_usd)

    began = time.perf_counter()
    threads = [threading.Thread(target=runner, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    ratio = _spent(store) / LIMIT.total_usd
    print(
        f"budget race, 10 threads:            {sum(calls)} reserve calls in {seconds:.1f} s, "
        f"overspend ratio {ratio:.3f}"
    )


def bench_race_naive(home: Path) -> None:
    """The same race with the check and the insert in separate transactions, for contrast."""
    store = Store(home / "naive" / "governance.duckdb")
    start = threading.Barrier(10)

    def runner(i: int) -> None:
        start.wait()
        n = 0
        while _spent(store) + AMOUNT <= LIMIT.total_usd + 1e-9:
            n += 1
            with store.transaction() as tx:
                tx.insert(
                    "reservations",
                    {"id": f"{i}-{n}", "run_id": f"t{i}", "user_name": "ann",
                     "reserved_usd": AMOUNT, "actual_usd": AMOUNT, "status": "settled",
                     "created_at": utcnow()},
                )  # fmt: skip

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ratio = _spent(store) / LIMIT.total_usd
    print(f"  (check, then insert separately:   overspend ratio {ratio:.3f})")


def bench_race_processes(home: Path) -> None:
    db = home / "procs" / "governance.duckdb"
    Store(db).query("SELECT 1")
    limits = ["0", "0", str(LIMIT.total_usd)]
    go = home / "procs" / "go"  # the runners start together once this file exists
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(REPO), str(db), *limits, tag, "5", str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("p1", "p2")
    ]
    for p in procs:  # imports and the first open are not part of the race
        if p.stdout is None or p.stdout.readline().strip() != "ready":
            raise SystemExit(f"budget race runner failed to start (exit {p.wait()})")
    began = time.perf_counter()
    go.touch()
    for p in procs:
        p.communicate(timeout=300)
    seconds = time.perf_counter() - began
    if any(p.returncode for p in procs):
        raise SystemExit(f"budget race runner failed: exit codes {[p.returncode for p in procs]}")
    store = Store(db)
    n = store.query("SELECT count(*) AS n FROM reservations")[0]["n"]
    print(
        f"budget race, 2 processes x 5 thr:   {n} reservations in {seconds:.1f} s, "
        f"overspend ratio {_spent(store) / LIMIT.total_usd:.3f}"
    )


def bench_verify(home: Path) -> None:
    store = Store(home / "audit" / "governance.duckdb")
    with store.transaction() as tx:
        for i in range(AUDIT_EVENTS):
            tx.audit(actor="ann", action="bench", reason=f"event {i}", run_id=f"r{i % 50}")
    began = time.perf_counter()
    check = audit.verify_chain(store, audit.read_head(store.head_file))
    label = f"audit verify, {check.events:,} events:"
    print(f"{label:36}{time.perf_counter() - began:8.2f} s ({'ok' if check.ok else 'BROKEN'})")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        bench_decisions()
        bench_race_threads(home)
        bench_race_naive(home)
        bench_race_processes(home)
        bench_verify(home)
