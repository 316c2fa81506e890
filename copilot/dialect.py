"""The few SQL differences between the two governance engines, in one place.

Callers write one SQL text for both engines: `?` placeholders, `DOUBLE PRECISION`,
`percentile_cont(...) WITHIN GROUP`, `FILTER`, `ON CONFLICT`, `RETURNING` (all understood by
DuckDB and PostgreSQL alike), and `time_bucket(?::INTERVAL, col)` / `epoch(interval)`,
which DuckDB has built in and PostgreSQL gets as two small SQL functions (`PG_FUNCTIONS`,
created when the store migrates). What still differs is rendered here: the placeholder
style, row locks, advisory locks and the upsert clause.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import lru_cache

# Quoted text and identifiers pass through untouched; a bare `?` is a placeholder.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")

BUCKET_ORIGIN = "2000-01-03 00:00:00"
"""DuckDB's time_bucket origin for sub-month widths (a Monday): 7d buckets start on Mondays."""

PG_FUNCTIONS = (
    # DuckDB's time_bucket(width, ts) for widths in seconds..days, same origin, same buckets.
    "CREATE OR REPLACE FUNCTION time_bucket(width INTERVAL, ts TIMESTAMP) RETURNS TIMESTAMP"
    f" LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT date_bin(width, ts, TIMESTAMP"
    f" '{BUCKET_ORIGIN}') $$",
    # DuckDB's epoch(interval): seconds as a double (PostgreSQL's extract gives numeric).
    "CREATE OR REPLACE FUNCTION epoch(span INTERVAL) RETURNS DOUBLE PRECISION"
    " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT extract(epoch FROM span)::float8 $$",
)


@dataclass(frozen=True)
class Dialect:
    name: str
    paramstyle: str
    """`qmark` (DuckDB: `?`) or `format` (psycopg: `%s`, with a literal `%` doubled)."""

    def sql(self, text: str) -> str:
        """`text` with its placeholders in this engine's style."""
        return text if self.paramstyle == "qmark" else _to_format(text)

    def for_update(self, text: str) -> str:
        """A SELECT that locks the rows it returns until the transaction ends. DuckDB
        serialises whole write transactions (one writer per file), so it needs no clause."""
        return f"{text} FOR UPDATE" if self.name == "postgres" else text

    def lock_sql(self, name: str) -> str | None:
        """A lock on a name, held to the end of the transaction (None: DuckDB's file lock
        already serialises every write transaction)."""
        if self.name != "postgres":
            return None
        return f"SELECT pg_advisory_xact_lock({lock_key(name)})"

    def upsert(self, columns: list[str], keys: tuple[str, ...]) -> str:
        """The ON CONFLICT clause that replaces a row with the same key (both engines)."""
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
        return f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for an advisory lock name (crc32 is the same everywhere)."""
    return zlib.crc32(f"copilot:{name}".encode())


@lru_cache(maxsize=2048)
def _to_format(text: str) -> str:
    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        return token.replace("%", "%%")  # psycopg reads `%` even inside quoted text

    return _TOKENS.sub(swap, text)


DUCKDB = Dialect("duckdb", "qmark")
POSTGRES = Dialect("postgres", "format")
