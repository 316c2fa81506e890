"""Reading the audit log and proving it whole: listing, the hash chain, the external head.

Each event's hash covers its stored content and its predecessor's hash, so an edited,
deleted or reordered event breaks the chain at that event. Cutting off the newest events
leaves a valid (shorter) chain: that is caught by the head kept outside the database, which
every commit that appends events writes to `$COPILOT_HOME/audit_head.json` (and every export
records in its manifest). `verify_chain(store, head)` checks both.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from copilot.errors import InputError
from copilot.store import GENESIS_HASH, Store, chain_hash


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    events: int
    head: str
    broken_at: int | None  # seq of the first event whose hash does not match
    reason: str
    head_seq: int = 0
    head_checked: bool = False  # compared with an external head (file or manifest)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count(store: Store, run_id: str | None = None) -> int:
    where, params = _where(run_id=run_id)
    rows = store.query(f"SELECT count(*) AS n FROM audit_events {where}", params)
    return int(rows[0]["n"])


def events(
    store: Store,
    run_id: str | None = None,
    limit: int = 500,
    *,
    actor: str | None = None,
    action: str | None = None,
) -> list[dict[str, Any]]:
    """The newest events first, optionally for one run, actor or action."""
    where, params = _where(run_id=run_id, actor=actor, action=action)
    return store.query(
        "SELECT seq, created_at, run_id, actor, action, reason, detail, hash FROM audit_events "
        f"{where} ORDER BY seq DESC LIMIT ?",
        [*params, limit],
    )


def _where(**filters: str | None) -> tuple[str, list[Any]]:
    used = {name: value for name, value in filters.items() if value}
    clause = " AND ".join(f"{name} = ?" for name in used)
    return (f"WHERE {clause}" if clause else ""), list(used.values())


def read_head(path: Path) -> dict[str, Any] | None:
    """The head recorded in a head file or an export manifest; None if the file is absent."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read the audit head {path}: {exc}.") from None
    data = data.get("audit_chain_head", data)  # an export manifest holds it under this key
    try:
        return {"seq": int(data["seq"]), "hash": str(data["hash"])}
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f'{path} holds no audit head ({{"seq": N, "hash": "..."}}); pass '
            "$COPILOT_HOME/audit_head.json or an export's manifest.json."
        ) from None


def verify_chain(store: Store, head: dict[str, Any] | None = None) -> ChainCheck:
    """Recompute every hash from the first event, then compare with `head` when given.

    Without a head, removing the newest events goes unnoticed; with one, it is reported."""
    rows = store.query("SELECT * FROM audit_events ORDER BY seq")
    prev = GENESIS_HASH
    for row in rows:
        if row["prev_hash"] != prev or chain_hash(prev, row) != row["hash"]:
            return ChainCheck(
                False,
                len(rows),
                prev,
                row["seq"],
                f"event {row['seq']} does not match its predecessor's hash: the log was "
                "edited, reordered or events were deleted",
            )
        prev = row["hash"]
    last_seq = int(rows[-1]["seq"]) if rows else 0
    intact = ChainCheck(
        True, len(rows), prev, None, f"all {len(rows)} events chain correctly", last_seq
    )
    return intact if head is None else _against_head(intact, rows, head)


def _against_head(
    intact: ChainCheck, rows: list[dict[str, Any]], head: dict[str, Any]
) -> ChainCheck:
    seq, digest = int(head["seq"]), str(head["hash"])
    checked = replace(intact, head_checked=True)
    if seq > intact.head_seq:
        return replace(
            checked,
            ok=False,
            broken_at=intact.head_seq + 1,
            reason=f"the log ends at event {intact.head_seq} but the recorded head is event "
            f"{seq}: events after {intact.head_seq} were cut off",
        )
    match = [r for r in rows if int(r["seq"]) == seq]
    if seq and (not match or match[0]["hash"] != digest):
        return replace(
            checked,
            ok=False,
            broken_at=seq,
            reason=f"event {seq} does not carry the recorded head hash: the log was rewritten "
            f"at or before event {seq}",
        )
    return replace(checked, reason=f"{intact.reason}, and the recorded head (event {seq}) matches")
