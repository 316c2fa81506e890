"""Reading the audit log: recent events, one run's trail, and verifying the hash chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from copilot.store import GENESIS_HASH, Store, chain_hash


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    events: int
    head: str
    broken_at: int | None  # seq of the first event whose hash does not match
    reason: str


def count(store: Store, run_id: str | None = None) -> int:
    where = "WHERE run_id = ?" if run_id else ""
    rows = store.query(
        f"SELECT count(*) AS n FROM audit_events {where}", [run_id] if run_id else []
    )
    return int(rows[0]["n"])


def events(store: Store, run_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    where = "WHERE run_id = ?" if run_id else ""
    params: list[Any] = [run_id] if run_id else []
    return store.query(
        "SELECT seq, created_at, run_id, actor, action, reason, detail, hash FROM audit_events "
        f"{where} ORDER BY seq DESC LIMIT ?",
        [*params, limit],
    )


def verify_chain(store: Store) -> ChainCheck:
    """Recompute every hash from the first event. An edited row, or a row removed from the
    middle, breaks the chain; removing the newest rows does not (compare the head with the
    one recorded in an export manifest for that)."""
    rows = store.query("SELECT * FROM audit_events ORDER BY seq")
    prev = GENESIS_HASH
    for row in rows:
        if row["prev_hash"] != prev or chain_hash(prev, row) != row["hash"]:
            return ChainCheck(
                False,
                len(rows),
                prev,
                row["seq"],
                f"event {row['seq']} does not match its predecessor's hash: "
                "the log was edited or rows were deleted",
            )
        prev = row["hash"]
    return ChainCheck(True, len(rows), prev, None, f"all {len(rows)} events chain correctly")
