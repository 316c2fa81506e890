"""BENCH_BACKEND=postgres: run a benchmark against PostgreSQL instead of the DuckDB file.

The server is BENCH_DATABASE_URL when set, else a throwaway cluster (tests/pgserver.py, the
one the tests use: fsync off, on this machine) with a fresh database per call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

BACKEND = os.environ.get("BENCH_BACKEND", "duckdb").strip().lower()
if BACKEND not in ("duckdb", "postgres"):
    raise SystemExit(f"BENCH_BACKEND={BACKEND!r}: use duckdb (default) or postgres.")


@contextlib.contextmanager
def database_urls() -> Iterator[Callable[[], str]]:
    """A factory of fresh database URLs ("" for DuckDB: the file under the home)."""
    if BACKEND == "duckdb":
        yield lambda: ""
    elif url := os.environ.get("BENCH_DATABASE_URL"):
        yield lambda: url
    else:
        from tests import pgserver

        with pgserver.running() as server:
            yield server.create_database
