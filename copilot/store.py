"""The governance store: one DuckDB file shared by the app, the CLI and the sidecar.

DuckDB lets one process hold a file read-write and then refuses every other process, even
read-only. So no process keeps the file open: each unit of work opens it, does one short
transaction and closes it, retrying with backoff while another process holds the lock.
Inside a process a lock per file serialises connections (DuckDB also refuses two connections
to one file with different read-only flags in one process). A run batches its writes per
step, so a step costs one open/commit/close (~30-40 ms) however many rows it writes.

Opening is the expensive part (~20-30 ms; a write on an open connection costs ~2 ms), so a
write connection lingers for a few milliseconds after its transaction: the next step of a
run, arriving right after, reuses it. Another process waits at most `LINGER_S`, and never
more than `MAX_HOLD_S` behind one process's burst of writes.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from copilot.dialect import DUCKDB, Dialect
from copilot.errors import StoreBusy, StoreError
from copilot.guard import Redactor
from copilot.migrations import MIGRATIONS

log = logging.getLogger(__name__)
_PROCESS_LOCKS: dict[Path, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()
_MIGRATED: set[Path] = set()
GENESIS_HASH = "0" * 64
HEAD_FILE = "audit_head.json"
# Transactions here last tens of milliseconds: a waiter that backs off longer keeps missing
# the gaps between another process's back-to-back writes. Measured (make bench) with a writer
# committing nonstop: read p95 ~110 ms at 10 ms, ~250-370 ms at 50-250 ms.
MAX_BACKOFF_S = 0.01
LINGER_S = 0.1
"""How long an idle write connection stays open for the next transaction of this process."""
MAX_HOLD_S = 0.05
"""No connection is reused once it has been open this long: other processes get their turn."""
YIELD_S = 3 * MAX_BACKOFF_S
"""After a burst hit MAX_HOLD_S, this process waits this long before opening again: longer
than another process's longest backoff, so a waiter really gets the file."""
_YIELD_UNTIL: dict[Path, float] = {}
_CONTENDED_UNTIL: dict[Path, float] = {}
"""Until when this process counts another as wanting the file (it met its lock lately)."""
CONTENDED_S = 1.0


def _chunks(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def utcnow() -> datetime:
    """UTC as a naive datetime: DuckDB TIMESTAMP columns here are UTC by convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def _process_lock(path: Path) -> threading.RLock:
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(path, threading.RLock())


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting" in text)


class ReadSession:
    """Reads on one connection (several panels share it): rows as dicts or a DataFrame."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self._conn = conn
        self.dialect = dialect

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        return self._conn.execute(self.dialect.sql(sql), list(params))

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._run(sql, params)
        return _dicts(cursor, cursor.fetchall())

    def batches(
        self, sql: str, params: Sequence[Any] = (), *, size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        """Rows as dicts, `size` at a time (a whole table without holding it in memory)."""
        cursor = self._run(sql, params)
        while rows := cursor.fetchmany(size):
            yield _dicts(cursor, rows)

    def frame(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A pandas DataFrame; DuckDB builds it natively (fast at a million rows)."""
        if self.dialect is DUCKDB:
            return self._conn.execute(sql, list(params)).df()
        return rows_frame(self._run(sql, params))


def _dicts(cursor: Any, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in rows]


class Transaction(ReadSession):
    """Writes inside one open connection, on either engine. Every string written is redacted
    here, in one place, so no caller can forget; audit events are hash-chained here too.

    Callers write one SQL text with `?` placeholders (see copilot/dialect.py); the connection
    is private, so nothing outside the store depends on which engine is underneath."""

    def __init__(self, conn: Any, redact: Redactor, dialect: Dialect = DUCKDB) -> None:
        super().__init__(conn, dialect)
        self._redact = redact
        self._queued: list[dict[str, Any]] = []
        self.appended_head: tuple[int, str] | None = None
        """(seq, hash) of the last event this transaction appended, for the head file."""

    def _clean(self, value: Any) -> Any:
        return self._redact(value) if isinstance(value, str) else value

    def execute(self, sql: str, params: Sequence[Any] = (), *, redact: bool = True) -> None:
        """`redact=False` only for values that must be stored as they are (a password hash
        looks like a secret to the redactor, and is meant to be stored)."""
        self._run(sql, [self._clean(v) for v in params] if redact else params)

    def all(
        self, sql: str, params: Sequence[Any] = (), *, for_update: bool = False
    ) -> list[dict[str, Any]]:
        """Rows as dicts. `for_update` locks them to the end of the transaction (PostgreSQL
        row locks; DuckDB already serialises write transactions)."""
        return super().all(self.dialect.for_update(sql) if for_update else sql, params)

    def one(
        self, sql: str, params: Sequence[Any] = (), *, for_update: bool = False
    ) -> dict[str, Any] | None:
        rows = self.all(sql, params, for_update=for_update)
        return rows[0] if rows else None

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, None when there is no row."""
        row = self._run(sql, params).fetchone()
        return row[0] if row else None

    def lock(self, name: str) -> None:
        """Serialise this transaction with every other one taking the same named lock, in any
        process or replica, until commit (a no-op on DuckDB, whose writers are serial)."""
        sql = self.dialect.lock_sql(name)
        if sql:
            self._conn.execute(sql)

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self.insert_many(table, [row])

    def insert_many(
        self,
        table: str,
        rows: list[dict[str, Any]],
        *,
        upsert: tuple[str, ...] = (),
        redact: bool = True,
    ) -> None:
        """All rows in one multi-row statement: DuckDB pays ~2 ms per statement, so one
        statement per table per step boundary, not one per row. `upsert` names the key
        columns: a row with the same key is replaced. `redact=False` copies stored rows
        as they are (store copy: already redacted, password hashes exact)."""
        clean = self._clean if redact else _same
        if not rows:
            return
        columns = list(rows[0])
        tail = self.dialect.upsert(columns, upsert) if upsert else ""
        for chunk in _chunks(rows, 500):
            marks = ", ".join(f"({', '.join('?' for _ in columns)})" for _ in chunk)
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {marks}{tail}"
            self._run(sql, [clean(row[c]) for row in chunk for c in columns])

    def audit(
        self,
        *,
        actor: str,
        action: str,
        reason: str,
        run_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one audit event chained to the previous one (at commit)."""
        event = {"actor": actor, "action": action, "reason": reason, "run_id": run_id}
        self.audit_many([event | {"detail": detail}])

    def audit_many(self, events: list[dict[str, Any]]) -> None:
        """Queue events, in order, for appending at commit (`append_audit`)."""
        self._queued.extend(events)

    def append_audit(self) -> None:
        """Append the queued events, chained, in one statement, just before commit.

        Last, so the chain lock is the last lock any transaction takes: row locks come
        first everywhere, and two replicas can never wait on each other in a cycle; the
        chain lock is also held only for this statement and the commit. Every field is
        redacted first and the hash covers exactly the stored values, so a secret never
        reaches the store and the chain still verifies. nextval() in a multi-row VALUES list
        numbers the rows in list order."""
        if not self._queued:
            return
        # Replicas on PostgreSQL append concurrently: one at a time, or the chain forks.
        self.lock("audit_chain")
        last = self.value("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        head = last or GENESIS_HASH
        values: list[Any] = []
        now = utcnow()
        for event in self._queued:
            row = {
                "run_id": self._clean(event.get("run_id")),
                "actor": self._clean(event["actor"]),
                "action": self._clean(event["action"]),
                "reason": self._clean(event["reason"]),
                "detail": self._clean(
                    json.dumps(event.get("detail") or {}, sort_keys=True, default=str)
                ),
                "created_at": now,
            }
            digest = chain_hash(head, row)
            values += [*row.values(), head, digest]
            head = digest
        marks = ", ".join("(nextval('audit_seq'), ?, ?, ?, ?, ?, ?, ?, ?)" for _ in self._queued)
        inserted = self._run(
            "INSERT INTO audit_events (seq, run_id, actor, action, reason, detail, created_at,"
            f" prev_hash, hash) VALUES {marks} RETURNING seq",
            values,
        ).fetchall()
        self._queued = []
        self.appended_head = (max(int(r[0]) for r in inserted), head)


def _same(value: Any) -> Any:
    return value


def write_head(path: Path, seq: int, digest: str) -> None:
    """Write the chain head atomically (temp file + rename). A failure is logged, not
    raised: the events are committed, and `audit verify` reports a stale head."""
    payload = {"seq": seq, "hash": digest, "written_at": f"{utcnow():%Y-%m-%dT%H:%M:%S.%f}Z"}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write the audit head to %s: %s", path, exc)


def chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """Hash of an audit event over its content and its predecessor's hash."""
    payload = json.dumps(
        [
            prev_hash,
            row["run_id"],
            row["actor"],
            row["action"],
            row["reason"],
            row["detail"],
            str(row["created_at"]),
        ],
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def rows_frame(cursor: Any) -> Any:
    """A DataFrame from a DB-API cursor, typed as DuckDB's `.df()` types it: timestamps as
    datetime64, numbers as int64/float64 (NULL as NaN), text as object."""
    import pandas as pd

    names = [d[0] for d in cursor.description or []]
    frame = pd.DataFrame.from_records(cursor.fetchall(), columns=names, coerce_float=True)
    for name in names:
        column = frame[name]
        if column.dtype == object and column.map(lambda v: isinstance(v, datetime)).any():
            frame[name] = pd.to_datetime(column)
    return frame


class Reads:
    """Reads one statement at a time, for both engines: each store gives `read_session`."""

    def read_session(self) -> AbstractContextManager[ReadSession]:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.read_session() as session:
            return session.all(sql, params)

    def query_df(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The same as `query`, as a pandas DataFrame (for charts and CSV)."""
        with self.read_session() as session:
            return session.frame(sql, params)


class Store(Reads):
    """Short-lived connections to the governance DB, with retry while it is locked."""

    dialect = DUCKDB

    def __init__(
        self,
        path: Path,
        *,
        lock_timeout_s: float = 20.0,
        redact: Redactor | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        linger_s: float = LINGER_S,
    ) -> None:
        self.path = Path(path).resolve()
        self.linger_s = linger_s
        self.lock_timeout_s = lock_timeout_s
        self.redact = redact or Redactor()
        self._sleep = sleep
        self._clock = clock
        self.head_file = self.path.parent / HEAD_FILE
        """$COPILOT_HOME/audit_head.json: the chain head kept outside the database."""
        self.lock_waits = 0
        """How many times this Store had to wait for another process (for benchmarks)."""
        self.transactions = 0
        """Write transactions committed through this Store (for benchmarks)."""
        self.opens = 0
        """DuckDB files actually opened, lingering connections not counted (for benchmarks)."""

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One read-write transaction; commits on success, rolls back on any error."""
        with self._connect(read_only=False) as conn:
            conn.execute("BEGIN TRANSACTION")
            tx = Transaction(conn, self.redact, DUCKDB)
            try:
                yield tx
                tx.append_audit()
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self.transactions += 1
            if tx.appended_head:
                # Still holding the file lock, so no other process can append in between
                # and heads are written in chain order.
                write_head(self.head_file, *tx.appended_head)
            self._stamp_change()

    @contextmanager
    def read_session(self) -> Iterator[ReadSession]:
        """Reads on one read-only connection; other readers may hold the file meanwhile."""
        with self._connect(read_only=True) as conn:
            yield ReadSession(conn, DUCKDB)

    @property
    def cache_id(self) -> str:
        """Which database this is, for read caches shared by several stores."""
        return str(self.path)

    def change_stamp(self) -> str:
        """A token that differs after every committed write, in any process (read caches key
        on it). The stamp file is rewritten after each commit; the DB file's size and mtime
        also catch writes made outside this class (a duckdb shell). A stat and a tiny read:
        microseconds, against ~30 ms to open the DB."""
        stamp = self.path.with_name(self.path.name + ".stamp")
        try:
            db = self.path.stat()
            text = stamp.read_text() if stamp.exists() else "-"
        except OSError:
            return "missing"
        return f"{text}:{db.st_mtime_ns}:{db.st_size}"

    def _stamp_change(self) -> None:
        # Written after COMMIT: a reader that saw the old stamp may cache rows newer than it,
        # never older rows under the new one. Atomic replace, so a reader never sees half.
        stamp = self.path.with_name(self.path.name + ".stamp")
        tmp = stamp.with_name(f".{stamp.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(uuid.uuid4().hex)
        os.replace(tmp, stamp)

    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        with _process_lock(self.path):
            self._ensure_migrated()
            # A lingering write connection serves reads too: DuckDB refuses a second
            # connection with another read-only flag in the same process.
            held = _LINGER.take(self.path)
            conn = held.conn if held else self._open(read_only=read_only)
            opened_at = held.opened_at if held else self._clock()
            ok = False
            try:
                yield conn
                ok = True
            finally:
                keep = ok and (held is not None or not read_only) and self.linger_s > 0
                if keep and self._clock() - opened_at < MAX_HOLD_S:
                    _LINGER.put(self.path, _Held(conn, opened_at), self.linger_s)
                else:
                    conn.close()
                    if keep and _CONTENDED_UNTIL.get(self.path, 0.0) > self._clock():
                        # A long burst while another process wants the file: step back.
                        _YIELD_UNTIL[self.path] = self._clock() + YIELD_S

    def _ensure_migrated(self) -> None:
        if self.path in _MIGRATED and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open(read_only=False)
        try:
            apply_migrations(conn)
        finally:
            conn.close()
        _MIGRATED.add(self.path)

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        wait = _YIELD_UNTIL.pop(self.path, 0.0) - self._clock()
        if wait > 0:
            self._sleep(wait)
        deadline = self._clock() + self.lock_timeout_s
        delay = 0.002
        while True:
            try:
                conn = duckdb.connect(str(self.path), read_only=read_only)
                self.opens += 1
                return conn
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise StoreError(
                        f"Cannot open the governance DB {self.path}: {exc}. If the file is "
                        "damaged or from a newer DuckDB, move it aside (a new one is created) "
                        "or point COPILOT_HOME elsewhere."
                    ) from exc
                if self._clock() >= deadline:
                    raise StoreBusy(_busy_message(self.path, exc, self.lock_timeout_s)) from exc
            self.lock_waits += 1
            _CONTENDED_UNTIL[self.path] = self._clock() + CONTENDED_S
            self._sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, MAX_BACKOFF_S)


@dataclass
class _Held:
    conn: duckdb.DuckDBPyConnection
    opened_at: float
    close_at: float = 0.0


class _Lingering:
    """Idle write connections per DB file, closed by one daemon thread when their time is up.

    Callers hold the file's process lock while they take or put, and so does the closer:
    a connection is never closed while in use.
    """

    def __init__(self) -> None:
        self._held: dict[Path, _Held] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def take(self, path: Path) -> _Held | None:
        with self._guard:
            return self._held.pop(path, None)

    def put(self, path: Path, held: _Held, linger_s: float) -> None:
        held.close_at = time.monotonic() + linger_s
        with self._guard:
            self._held[path] = held
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="duckdb-linger", daemon=True)
                self._thread.start()
        self._wake.set()

    def close_all(self) -> None:
        for path in list(self._held):
            release(path)
        self._wake.set()  # the closer thread finds nothing held and ends

    def _run(self) -> None:
        while (due := self._next_due()) is not None:
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            for path in list(self._held):  # paths only: no connection lives in this frame
                self._close_if_due(path)

    def _next_due(self) -> float | None:
        with self._guard:
            if not self._held:
                self._thread = None
                return None
            return min(h.close_at for h in self._held.values())

    def _close_if_due(self, path: Path) -> None:
        with _process_lock(path):
            with self._guard:
                held = self._held.get(path)
                if held is None or held.close_at > time.monotonic():
                    return
                del self._held[path]
            held.conn.close()


_LINGER = _Lingering()


def _at_exit() -> None:
    """Close what lingers, then collect: DuckDB objects still reachable (a store in a cache
    cycle) when the interpreter unloads the duckdb module make nanobind print leak reports."""
    _LINGER.close_all()
    gc.collect()


atexit.register(_at_exit)


def release(path: Path) -> None:
    """Close this process's idle connection to `path` now, so another process can open it."""
    path = Path(path).resolve()
    with _process_lock(path):
        held = _LINGER.take(path)
        if held:
            held.conn.close()


def _busy_message(path: Path, exc: Exception, waited: float) -> str:
    holder = re.search(r"held in (.+?)\)", str(exc))
    who = f" ({holder.group(1)})" if holder else ""
    return (
        f"The governance DB {path} stayed locked by another process{who} for {waited:.0f} s. "
        "Close any duckdb shell or notebook that keeps it open, then try again "
        "(or raise COPILOT_DB_LOCK_TIMEOUT)."
    )


def apply_migrations(conn: Any, dialect: Dialect = DUCKDB) -> list[str]:
    """Apply pending migrations, each in its own transaction with its bookkeeping row.
    `conn` is in autocommit mode (DuckDB's default; psycopg's when asked)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR PRIMARY KEY,"
        " applied_at TIMESTAMP NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations").fetchall()}
    applied = []
    for migration in MIGRATIONS:
        name = migration.__name__
        if name in done:
            continue
        conn.execute("BEGIN")
        try:
            migration(conn)
            conn.execute(
                dialect.sql("INSERT INTO schema_migrations VALUES (?, ?)"), [name, utcnow()]
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(name)
    return applied
