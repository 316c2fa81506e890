"""The governance store on PostgreSQL: the same interface as the DuckDB `Store`, for several
app replicas sharing one server (`COPILOT_DATABASE_URL=postgresql://...`).

PostgreSQL has no single-writer file lock, so the guarantees DuckDB gets from serial writers
are made explicit and live here and in `Transaction`: row locks (`SELECT ... FOR UPDATE`) for
an approval claim, named advisory locks held to commit for budget reservations and audit
appends (so concurrent replicas never fork the chain), and an advisory lock around
migrations so replicas starting together migrate once. Connections are kept in a small pool
per store; each transaction takes one, each read session one in autocommit mode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from copilot.dialect import PG_FUNCTIONS, POSTGRES, lock_key
from copilot.errors import ConfigError, StoreBusy, StoreError
from copilot.guard import Redactor
from copilot.store import HEAD_FILE, Reads, ReadSession, Transaction, apply_migrations, write_head

log = logging.getLogger(__name__)
POOL_SIZE = 8
"""Idle connections kept per store: one per busy thread is plenty (2 x 8 threads in tests)."""


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0] in ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs, errors and the health endpoint."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def url_password(url: str) -> str | None:
    return urlsplit(url).password


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - a requirement, but say what to do
        raise ConfigError(
            "COPILOT_DATABASE_URL is a PostgreSQL URL but psycopg is not installed; "
            "run `pip install -r requirements.txt` (or unset COPILOT_DATABASE_URL for DuckDB)."
        ) from exc
    return psycopg


class PgStore(Reads):
    """Pooled connections to one PostgreSQL database holding the governance tables."""

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        home: Path | None = None,
        redact: Redactor | None = None,
        lock_timeout_s: float = 20.0,
        pool_size: int = POOL_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not is_postgres_url(url):
            raise ConfigError(
                f"{redact_url(url)} is not a PostgreSQL URL; use postgresql://USER@HOST/DB."
            )
        self.url = url
        self.label = redact_url(url)
        self.redact = redact or Redactor([p for p in [url_password(url)] if p])
        self.lock_timeout_s = lock_timeout_s
        self.head_file = home / HEAD_FILE if home else None
        """This replica's copy of the chain head ($COPILOT_HOME/audit_head.json); None for a
        store opened without a home (store copy), which keeps no head file."""
        self._pool: list[Any] = []
        self._guard = threading.Lock()
        self._pool_size = pool_size
        self._migrated = False
        self._clock = clock
        self.lock_waits = 0
        self.transactions = 0
        self.opens = 0

    @property
    def cache_id(self) -> str:
        return self.label

    # connections ------------------------------------------------------------------------
    def _open(self) -> Any:
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(
                f"Cannot connect to the governance DB {self.label}: "
                f"{(self.redact(str(exc)) or '').strip()}. Check COPILOT_DATABASE_URL (host, port, "
                "database, user; the password from the URL or PGPASSWORD) and that the server "
                "is up."
            ) from None
        self.opens += 1
        _float_numerics(conn)
        # Waiting on a row or advisory lock is bounded like DuckDB's file lock.
        conn.execute(f"SET lock_timeout = '{int(self.lock_timeout_s * 1000)}ms'")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        self._ensure_migrated()
        with self._guard:
            conn = self._pool.pop() if self._pool else None
        if conn is None or conn.closed:
            conn = self._open()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            self._give_back(conn, ok)

    def _give_back(self, conn: Any, ok: bool) -> None:
        healthy = ok and not conn.closed and conn.info.transaction_status == 0  # IDLE
        with self._guard:
            if healthy and len(self._pool) < self._pool_size:
                self._pool.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._guard:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    # the Store interface ----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One read-write transaction (READ COMMITTED; the locks above make it safe)."""
        psycopg = _psycopg()
        with self._connection() as conn:
            tx = Transaction(conn, self.redact, POSTGRES)
            try:
                with conn.transaction():
                    yield tx
                    tx.append_audit()
            except psycopg.errors.LockNotAvailable as exc:
                raise StoreBusy(
                    f"The governance DB {self.label} kept a lock for {self.lock_timeout_s:.0f} s;"
                    " another replica holds it. Try again (or raise COPILOT_DB_LOCK_TIMEOUT)."
                ) from exc
            except psycopg.errors.DeadlockDetected as exc:
                # Should not happen (rows are locked approvals first, then runs, then the
                # chain at commit), but if it does the transaction was rolled back whole.
                raise StoreBusy(
                    f"The governance DB {self.label} broke a lock cycle between two replicas and "
                    "rolled this change back; nothing was written. Try again."
                ) from exc
            self.transactions += 1
            if tx.appended_head and self.head_file:
                write_head(self.head_file, *tx.appended_head)

    @contextmanager
    def read_session(self) -> Iterator[ReadSession]:
        """Reads in one read-only snapshot: the panels (or export tables) read together
        describe one moment, as they do on DuckDB's single connection."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield ReadSession(conn, POSTGRES)

    def change_stamp(self) -> str:
        """The server's WAL position: it moves with every committed write from any replica
        (and sometimes without one, which only costs a cache miss). One round trip."""
        try:
            with self._connection() as conn:
                row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        except StoreError:
            return "missing"
        return str(row[0])

    def _ensure_migrated(self) -> None:
        if self._migrated:
            return
        conn = self._open()
        try:
            # Replicas starting together: one migrates, the others wait and find it done.
            conn.execute(f"SELECT pg_advisory_lock({lock_key('migrations')})")
            apply_migrations(conn, POSTGRES)
            for sql in PG_FUNCTIONS:
                conn.execute(sql)
            conn.execute(f"SELECT pg_advisory_unlock({lock_key('migrations')})")
        except _psycopg().Error as exc:
            raise StoreError(
                f"Cannot migrate the governance DB {self.label}: {self.redact(str(exc))}"
            ) from exc
        finally:
            conn.close()
        self._migrated = True


def _float_numerics(conn: Any) -> None:
    """NUMERIC results (sum of integers, avg) as floats, as DuckDB returns DOUBLE/HUGEINT
    sums: the panels and exports then read the same on both engines."""
    from psycopg.types.numeric import FloatLoader

    conn.adapters.register_loader("numeric", FloatLoader)
