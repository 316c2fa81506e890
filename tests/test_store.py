import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from copilot import migrations
from copilot import store as store_mod
from copilot.errors import StoreBusy
from copilot.store import GENESIS_HASH, Store, apply_migrations, chain_hash


def test_fresh_db_gets_every_migration_once(tmp_path: Path):
    s = Store(tmp_path / "g.duckdb")
    names = [r["name"] for r in s.query("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == [m.__name__ for m in migrations.MIGRATIONS]
    tables = {r["table_name"] for r in s.query("SELECT table_name FROM information_schema.tables")}
    assert {
        "runs",
        "steps",
        "audit_events",
        "llm_usage",
        "reviews",
        "approvals",
        "tool_calls",
    } <= tables
    conn = duckdb.connect(str(tmp_path / "g.duckdb"))
    assert apply_migrations(conn) == []  # re-open applies nothing twice
    conn.close()


def test_failed_migration_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    def m999_broken(conn):
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    conn = duckdb.connect(str(tmp_path / "g.duckdb"))
    apply_migrations(conn)
    monkeypatch.setattr(store_mod, "MIGRATIONS", [*migrations.MIGRATIONS, m999_broken])
    with pytest.raises(RuntimeError):
        store_mod.apply_migrations(conn)
    tables = {
        r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    assert "half_done" not in tables
    assert conn.execute(
        "SELECT count(*) FROM schema_migrations WHERE name = 'm999_broken'"
    ).fetchone() == (0,)
    conn.close()


def test_transaction_rolls_back_on_error(tmp_path: Path):
    s = Store(tmp_path / "g.duckdb")
    with pytest.raises(ValueError), s.transaction() as tx:
        tx.audit(actor="t", action="x", reason="r")
        raise ValueError("nope")
    assert s.query("SELECT count(*) AS n FROM audit_events")[0]["n"] == 0


def test_audit_events_form_a_hash_chain(tmp_path: Path):
    s = Store(tmp_path / "g.duckdb")
    with s.transaction() as tx:
        tx.audit(actor="a", action="one", reason="first", run_id="r1")
    with s.transaction() as tx:
        tx.audit(actor="b", action="two", reason="second", detail={"k": 1})
    rows = s.query("SELECT * FROM audit_events ORDER BY seq")
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    for row in rows:
        assert chain_hash(row["prev_hash"], row) == row["hash"]


# Retries while the test process's own idle write connection still lingers on the file.
HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    for attempt in range(200):
        try:
            conn = duckdb.connect(sys.argv[1])
            break
        except duckdb.IOException:
            time.sleep(0.05)
    else:
        sys.exit("the file stayed locked by another process")
    print("holding", flush=True)
    sys.stdin.readline()  # hold the lock until the test says so
    conn.close()
""")


def hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding the DuckDB file's lock until it is sent a line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_db_held_by_another_process_gives_a_clear_error(tmp_path: Path):
    path = tmp_path / "g.duckdb"
    Store(path).query("SELECT 1")
    holder = hold_lock(path)
    try:
        busy = Store(path, lock_timeout_s=0.3)
        store_mod._MIGRATED.discard(busy.path)
        with pytest.raises(StoreBusy, match="locked by another process.*COPILOT_DB_LOCK_TIMEOUT"):
            busy.query("SELECT 1")
    finally:
        holder.communicate("\n", timeout=10)


def test_waits_for_a_short_holder_then_succeeds(tmp_path: Path):
    path = tmp_path / "g.duckdb"
    Store(path).query("SELECT 1")
    holder = hold_lock(path)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # release the lock while we "sleep"
        waits.append(seconds)
        if len(waits) == 3 and holder.poll() is None:
            holder.communicate("\n", timeout=10)

    s = Store(path, lock_timeout_s=30, sleep=sleep)
    with s.transaction() as tx:
        tx.audit(actor="t", action="after-wait", reason="lock released")
    assert len(waits) >= 3 and s.lock_waits >= 3
    assert s.query("SELECT action FROM audit_events")[0]["action"] == "after-wait"


def test_a_damaged_db_file_says_what_to_do(tmp_path: Path):
    from copilot.errors import StoreError

    path = tmp_path / "g.duckdb"
    path.write_bytes(b"this is not a duckdb file" * 100)
    with pytest.raises(StoreError, match="move it aside"):
        Store(path).query("SELECT 1")
