"""Getting the governance record out: CSV + JSON files with a manifest, and terminal tables.

The store redacts secrets on the way in, so rows are exported as stored; settings are never
written. Every file is written into a hidden staging folder and moved in, the manifest last,
so whoever finds a manifest finds the complete files it lists. The manifest carries the head of
the audit hash chain, so a later export (or the audit page) can show nothing was rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from copilot import telemetry
from copilot.errors import InputError
from copilot.store import GENESIS_HASH, Store, utcnow
from copilot.telemetry import Filters

TABLES = {
    "llm_usage": "created_at, call_id",
    "approvals": "created_at, approval_id",
    "audit_events": "seq",
    "reviews": "created_at, run_id",
}
"""Exported tables and their row order."""
EMPTY_HINT = "Run a task on the Chat page or `python -m copilot demo`."


def export_files(store: Store, out_dir: Path, filters: Filters) -> dict[str, Any]:
    """Write <table>.csv and <table>.json for each table, then manifest.json; returns it.

    Everything is written into a hidden folder beside `out_dir` and moved in at the end, so a
    failure (disk full, no permission) leaves `out_dir` as it was.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"--out {out_dir} is a file; give a folder (created if missing), "
            "e.g. --out reports/telemetry."
        )
    frames, head = _read(store, filters)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        tables = {name: _write_table(staging, name, frame) for name, frame in frames.items()}
        manifest = {
            "generated_at": f"{utcnow():%Y-%m-%dT%H:%M:%S}Z",
            "range": {"from": filters.as_dict()["from"], "to": filters.as_dict()["to"]},
            "tables": tables,
            "audit_chain_head": head,
        }
        _write_atomic(staging / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished files in, the manifest last: whoever finds a manifest finds the
    complete files it lists. A new folder is one rename."""
    staging.chmod(0o755)  # mkdtemp's 0700 would make the export private to its writer
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    (out_dir / "manifest.json").unlink(missing_ok=True)
    for path in sorted(staging.iterdir(), key=lambda p: p.name == "manifest.json"):
        os.replace(path, out_dir / path.name)


def _read(store: Store, filters: Filters) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """All tables and the chain head on one connection, so they describe one moment."""
    where, params = telemetry.time_where(Filters(start=filters.start, end=filters.end))
    queries = {
        name: telemetry.Query(f"SELECT * FROM {name} {where} ORDER BY {order}", params)
        for name, order in TABLES.items()
    }
    queries["head"] = telemetry.Query(
        "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
    )
    frames = telemetry.run_many(store, queries, cached=False)
    head = telemetry.to_records(frames.pop("head"))
    # The head of the whole chain, not of the exported range: it pins everything before it.
    return frames, head[0] if head else {"seq": 0, "hash": GENESIS_HASH}


def _write_table(out_dir: Path, name: str, frame: pd.DataFrame) -> dict[str, Any]:
    files = {
        "csv": _write_atomic(out_dir / f"{name}.csv", frame.to_csv(index=False)),
        "json": _write_atomic(
            out_dir / f"{name}.json", json.dumps(telemetry.to_records(frame), indent=1) + "\n"
        ),
    }
    return {"rows": len(frame), "files": files}


def _write_atomic(path: Path, text: str) -> dict[str, str]:
    data = text.encode()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {"name": path.name, "sha256": hashlib.sha256(data).hexdigest()}


# -- Terminal tables (python -m copilot metrics) -----------------------------------------------

_USAGE_COLUMNS = [
    "calls", "failures", "fallbacks", "p50_latency_ms", "p95_latency_ms", "cost_usd",
    "unpriced_calls",
]  # fmt: skip


def metrics_text(store: Store, filters: Filters) -> str:
    """Cost, latency, approvals and reviewer outcomes by provider/model and user, as text."""
    summary = telemetry.llm_summary(store, filters)
    sections = [f"LLM calls {_range(filters)}"]
    if summary["calls"]:
        sections += [
            _totals(summary),
            _by(store, filters, ("provider", "model")),
            _by(store, filters, ("user",)),
        ]
    else:
        sections.append(f"No LLM calls in this range. {EMPTY_HINT}")
    sections.append(_table("Approvals", telemetry.approval_summary(store, filters)))
    median = telemetry.median_decision_seconds(store, filters)
    sections.append(
        "Median time to decision: " + (f"{median:.0f} s" if median is not None else "no decisions")
    )
    sections.append(_table("Reviewer outcomes", telemetry.review_totals(store, filters)))
    return "\n\n".join(sections)


def _totals(summary: dict[str, Any]) -> str:
    lines = [
        f"  {k:<18} {v:,.4g}" if isinstance(v, float) else f"  {k:<18} {v}"
        for k, v in summary.items()
    ]
    return "Totals\n" + "\n".join(lines)


def _by(store: Store, filters: Filters, by: tuple[str, ...]) -> str:
    frame = telemetry.usage_breakdown(store, filters, by)
    return _table(f"By {'/'.join(by)}", frame[[*by, *_USAGE_COLUMNS]])


def _table(title: str, frame: pd.DataFrame) -> str:
    body = frame.to_string(index=False, float_format=lambda v: f"{v:,.4f}".rstrip("0").rstrip("."))
    return f"{title}\n{body}"


def _range(filters: Filters) -> str:
    span = filters.as_dict()
    return f"from {span['from'] or 'the start'} to {span['to'] or 'now'} (UTC)"
