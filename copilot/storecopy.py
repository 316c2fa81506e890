"""Moving a governance DuckDB file into PostgreSQL (`python -m copilot store copy`).

Rows are copied as stored (they were redacted on the way in; password hashes must stay
exact), table by table in batches, each table in one destination transaction; the audit
sequence then continues after the last copied event, and the chain is verified on the
destination before the command reports success.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from copilot.errors import InputError
from copilot.governance import audit
from copilot.store import Store

TABLES = {
    "runs": "run_id",
    "steps": "run_id, position",
    "approvals": "approval_id",
    "tool_calls": "call_id",
    "reviews": "run_id",
    "llm_usage": "call_id",
    "reservations": "id",
    "sandbox_tickets": "system, number",
    "users": "name",
    "audit_events": "seq",
}
"""Every governance table and its key (schema_migrations is the destination's own)."""
BATCH = 5_000


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]
    seconds: float
    chain: audit.ChainCheck

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def copy_store(source: Store, dest: Store, *, replace: bool = False) -> CopyReport:
    """Copy every table of `source` into `dest` (migrated, empty unless `replace`)."""
    started = time.perf_counter()
    _check_empty(dest, replace)
    rows = {table: _copy_table(source, dest, table, key) for table, key in TABLES.items()}
    with dest.transaction() as tx:
        # The next appended event must follow the copied ones (PostgreSQL sequence).
        tx.value(
            "SELECT setval('audit_seq', (SELECT coalesce(max(seq), 0) + 1 FROM audit_events),"
            " false)"
        )
    return CopyReport(rows, time.perf_counter() - started, audit.verify_chain(dest))


def _check_empty(dest: Store, replace: bool) -> None:
    filled = [t for t in TABLES if dest.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]]
    if filled and not replace:
        raise InputError(
            f"The destination already holds rows in {', '.join(filled)}; copy into an empty "
            "database, or pass --replace to delete them first."
        )
    if filled:
        with dest.transaction() as tx:
            for table in TABLES:
                tx.execute(f"DELETE FROM {table}")


def _copy_table(source: Store, dest: Store, table: str, key: str) -> int:
    copied = 0
    with source.read_session() as session, dest.transaction() as tx:
        for batch in session.batches(f"SELECT * FROM {table} ORDER BY {key}", size=BATCH):
            tx.insert_many(table, batch, redact=False)
            copied += len(batch)
    return copied


def describe(report: CopyReport) -> list[str]:
    rate = report.total / report.seconds if report.seconds else 0.0
    lines = [f"{table:<16}{n:>10,} rows" for table, n in report.rows.items()]
    lines.append(f"copied {report.total:,} rows in {report.seconds:.1f} s ({rate:,.0f} rows/s)")
    verdict = "intact" if report.chain.ok else f"BROKEN at event {report.chain.broken_at}"
    lines.append(f"audit chain on the destination {verdict}: {report.chain.reason}")
    return lines


def as_dict(report: CopyReport) -> dict[str, Any]:
    return {"rows": report.rows, "seconds": round(report.seconds, 3), **report.chain.as_dict()}
