"""Budgets per LLM call: reserve before, settle after, against run, user and team limits.

Real DuckDB files in tmp dirs; the race runs real threads and two real processes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from copilot import cli
from copilot.config import Settings
from copilot.errors import BudgetExceeded, ConfigError
from copilot.governance import audit, budgets
from copilot.governance.budgets import Limits
from copilot.llm.pricing import PriceTable
from copilot.service import store_at
from copilot.store import Store
from tests.conftest import REPO


@pytest.fixture(params=["duckdb", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store lives: a DuckDB file, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "home" / "governance.duckdb")


@pytest.fixture
def store(target: str) -> Store:
    return store_at(target)


def _reserve(store: Store, amount: float, limits: Limits, run_id: str = "r1", user: str = "ann"):
    return budgets.reserve(store, run_id=run_id, user=user, amount_usd=amount, limits=limits)


def test_each_limit_refuses_the_call_that_would_cross_it(store: Store) -> None:
    limits = Limits(run_usd=0.03, user_usd=0.05, total_usd=0.08)
    assert _reserve(store, 0.02, limits) and _reserve(store, 0.01, limits)
    assert _reserve(store, 0.001, limits) is None  # run r1 is at 0.03
    assert _reserve(store, 0.02, limits, run_id="r2")  # ann at 0.05
    assert _reserve(store, 0.001, limits, run_id="r3") is None  # ann's day is used up
    assert _reserve(store, 0.03, limits, run_id="r4", user="bob")  # team at 0.08
    refusal = budgets.try_reserve(store, run_id="r5", user="cy", amount_usd=0.001, limits=limits)
    assert isinstance(refusal, budgets.Refusal) and refusal.limit == "total"
    assert "team's daily budget" in refusal.reason
    refused = audit.events(store, action="budget.refused")
    assert len(refused) == 3 and {r["actor"] for r in refused} == {"ann", "cy"}


def test_zero_means_no_limit(store: Store) -> None:
    for _ in range(3):
        assert _reserve(store, 1000.0, Limits())


def test_settle_counts_the_real_cost_and_release_gives_it_back(store: Store) -> None:
    limits = Limits(user_usd=0.01)
    first = _reserve(store, 0.008, limits)
    assert first and _reserve(store, 0.004, limits) is None
    budgets.settle(store, first, 0.002)  # the answer was shorter than the maximum
    second = _reserve(store, 0.004, limits)
    assert second and budgets.spend_today(store, "ann").user_usd == pytest.approx(0.006)
    budgets.release(store, second)
    spend = budgets.spend_today(store, "ann")
    assert spend.user_usd == pytest.approx(0.002) and spend.total_usd == pytest.approx(0.002)
    budgets.settle(store, first, 0.5)  # settling twice changes nothing
    row = store.query("SELECT actual_usd, status FROM reservations WHERE id = ?", [first.id])[0]
    assert row == {"actual_usd": pytest.approx(0.002), "status": "settled"}


def test_an_unpriced_settlement_keeps_the_reserved_amount(store: Store) -> None:
    r = _reserve(store, 0.003, Limits())
    assert r is not None
    budgets.settle(store, r, None)
    assert budgets.spend_today(store, "ann").user_usd == pytest.approx(0.003)


def test_spend_today_separates_users_and_levels_warn_at_80_percent(store: Store) -> None:
    _reserve(store, 0.004, Limits(), user="ann")
    _reserve(store, 0.005, Limits(), user="bob")
    spend = budgets.spend_today(store, "ann")
    assert (spend.user_usd, spend.total_usd) == (pytest.approx(0.004), pytest.approx(0.009))
    assert [budgets.level(s, 0.01) for s in (0.0079, 0.008, 0.0099, 0.01, 0.02)] == [
        "ok", "warn", "warn", "over", "over",
    ]  # fmt: skip
    assert budgets.level(5.0, 0) == "none"


def test_estimate_is_prompt_plus_maximum_output_at_the_models_price() -> None:
    prices = PriceTable.load()
    cost = budgets.estimate_max_cost(
        prices, provider="openai", model="gpt-4o-mini", prompt_tokens=1000, max_output_tokens=500
    )
    assert cost == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    free = budgets.estimate_max_cost(
        prices, provider="stub", model="stub", prompt_tokens=10**6, max_output_tokens=10**6
    )
    assert free == 0.0
    unknown = budgets.estimate_max_cost(
        prices, provider="openai", model="llama3.1", prompt_tokens=10, max_output_tokens=10
    )
    assert unknown is None
    assert budgets.prompt_tokens([{"role": "user", "content": "disk full on db"}]) == 8


def test_limits_come_from_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, budget_usd=3, budget_user_usd=2, budget_run_usd=1)
    assert Limits.from_settings(settings) == Limits(run_usd=1, user_usd=2, total_usd=3)


# -- The race: many runners reserving at once never record more than a limit ---------------

AMOUNT = 0.001
# Every limit binds somewhere, and no one process can use the whole budget: a process's five
# runs hold at most 30 reservations (6 each), the total is 50, so the other process must get
# at least 20 however the scheduler favours the first (with a total of 20, one process could
# take it all before the other's first try, and did). The users' limits (30 each) are shared
# by both processes, and bob's three runs per process meet his.
RACE_LIMITS = Limits(run_usd=0.006, user_usd=0.03, total_usd=0.05)
RUNNER = textwrap.dedent("""
    import os, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from copilot.governance import budgets
    from copilot.governance.budgets import Limits
    from copilot.service import store_at

    store = store_at(sys.argv[2])
    limits = Limits(*map(float, sys.argv[3:6]))
    tag, go = sys.argv[6], sys.argv[8]
    store.query("SELECT 1")  # imports and the first open before the start signal
    print("ready", flush=True)
    while not os.path.exists(go):  # both processes race from the same moment
        time.sleep(0.001)

    def runner(i):
        user = "ann" if i % 2 else "bob"
        while True:
            r = budgets.reserve(store, run_id=f"{tag}-{i}", user=user, amount_usd=AMOUNT,
                                limits=limits)
            if r is None:
                return
            budgets.settle(store, r, r.reserved_usd)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(int(sys.argv[7]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("done", flush=True)
""").replace("AMOUNT", repr(AMOUNT))


def _run_runners(db: str, tag: str, threads: int, go: Path) -> subprocess.Popen:
    limits = [str(v) for v in (RACE_LIMITS.run_usd, RACE_LIMITS.user_usd, RACE_LIMITS.total_usd)]
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(REPO), str(db), *limits, tag, str(threads), str(go)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _recorded(store: Store) -> dict[str, float]:
    rows = store.query(
        "SELECT run_id, user_name, COALESCE(actual_usd, reserved_usd) AS usd FROM reservations "
        "WHERE status <> 'released'"
    )
    spent: dict[str, float] = {"total": sum(r["usd"] for r in rows)}
    for r in rows:
        for key in (f"user:{r['user_name']}", f"run:{r['run_id']}"):
            spent[key] = spent.get(key, 0.0) + r["usd"]
    return spent


def _assert_within_limits(spent: dict[str, float]) -> None:
    assert spent["total"] <= RACE_LIMITS.total_usd + 1e-9
    assert spent["total"] >= RACE_LIMITS.total_usd - AMOUNT - 1e-9  # the budget was used
    for key, usd in spent.items():
        limit = RACE_LIMITS.user_usd if key.startswith("user:") else RACE_LIMITS.run_usd
        if key != "total":
            assert usd <= limit + 1e-9, key


def test_ten_threads_never_record_more_than_a_limit(store: Store) -> None:
    start = threading.Barrier(10)

    def runner(i: int) -> None:
        start.wait()
        user = "ann" if i % 2 else "bob"
        while (r := _reserve(store, AMOUNT, RACE_LIMITS, run_id=f"t-{i}", user=user)) is not None:
            budgets.settle(store, r, r.reserved_usd)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    _assert_within_limits(_recorded(store))


def test_two_processes_of_five_threads_never_record_more_than_a_limit(
    tmp_path: Path, target: str
) -> None:
    """Two app processes: on PostgreSQL, two replicas sharing the server."""
    db = target
    store_at(db).query("SELECT 1")  # create and migrate once, before the race
    go = tmp_path / "go"
    procs = [_run_runners(db, tag, 5, go) for tag in ("p1", "p2")]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and all("done" in o for o in outputs)
    spent = _recorded(store_at(db))
    _assert_within_limits(spent)
    assert any(k.startswith("run:p1") for k in spent) and any(k.startswith("run:p2") for k in spent)


def test_budget_and_policy_settings_are_read_and_checked(tmp_path: Path) -> None:
    env = {
        "COPILOT_HOME": str(tmp_path),
        "COPILOT_BUDGET_RUN_USD": "0.5",
        "COPILOT_BUDGET_USER_USD": "2",
        "COPILOT_BUDGET_ACTION": "STOP",
        "COPILOT_POLICY": str(tmp_path / "team.cedar"),
        "COPILOT_APPROVAL_TTL_S": "3600",
    }
    settings = Settings.load(environ=env, dotenv=None)
    assert (settings.budget_run_usd, settings.budget_user_usd) == (0.5, 2.0)
    assert settings.budget_action == "stop" and settings.approval_ttl_s == 3600
    assert settings.policy == tmp_path / "team.cedar"
    assert Settings.load(environ={}, dotenv=None).budget_action == "fallback"
    with pytest.raises(ConfigError, match="COPILOT_BUDGET_ACTION='pause'.*fallback, stop"):
        Settings.load(environ={**env, "COPILOT_BUDGET_ACTION": "pause"}, dotenv=None)
    with pytest.raises(ConfigError, match="COPILOT_BUDGET_USER_USD"):
        Settings.load(environ={**env, "COPILOT_BUDGET_USER_USD": "-1"}, dotenv=None)


def test_cli_budget_shows_spend_against_each_limit(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("COPILOT_BUDGET_USER_USD", "0.01")
    monkeypatch.setenv("COPILOT_BUDGET_USD", "1")
    store = Store(home / "governance.duckdb")
    _reserve(store, 0.009, Limits(), user="ann")
    out = io.StringIO()
    assert cli.main(["--home", str(home), "budget", "--user", "ann", "--json"], stdout=out) == 0
    rows = json.loads(out.getvalue())
    assert [r["level"] for r in rows] == ["warn", "ok", "none"]
    assert rows[0]["spent_usd"] == pytest.approx(0.009) and rows[0]["limit_usd"] == 0.01
    out = io.StringIO()
    assert cli.main(["--home", str(home), "budget", "--user", "ann"], stdout=out) == 0
    assert "user ann today" in out.getvalue() and "[warn]" in out.getvalue()


def test_reserved_settles_releases_or_refuses_around_a_call(store: Store) -> None:
    limits = Limits(run_usd=0.01)

    def hold(amount: float):
        return budgets.reserved(store, run_id="r1", user="ann", amount_usd=amount, limits=limits)

    with hold(0.006) as held:
        held.actual_usd = 0.001  # the real usage, known after the call
    with pytest.raises(RuntimeError), hold(0.009):  # the call failed: nothing is spent
        raise RuntimeError("provider down")
    with (
        pytest.raises(BudgetExceeded, match="this run budget.*COPILOT_BUDGET_RUN_USD"),
        hold(0.0095),
    ):
        pytest.fail("the call must not be made")
    rows = store.query("SELECT status, actual_usd FROM reservations ORDER BY created_at")
    assert [(r["status"], r["actual_usd"]) for r in rows] == [("settled", 0.001), ("released", 0)]
