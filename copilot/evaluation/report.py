"""A bench run as files: `<timestamp>.json` (metrics per configuration and every task's
result) and `<timestamp>.md` (the same as Markdown tables), under reports/bench/ by default.
The Evaluation page and `make bench` read them back with `history`/`latest`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from copilot.errors import InputError
from copilot.evaluation.metrics import METRICS, by_config

REPORTS = Path("reports") / "bench"


def build(
    rows: list[dict[str, Any]], *, suite: str, provider: str, wall_s: float
) -> dict[str, Any]:
    return {
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "suite": suite,
        "provider": provider,
        "wall_s": round(wall_s, 1),
        "configs": by_config(rows),
        "tasks": rows,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.6f}".rstrip("0").rstrip(".") if value < 0.01 else f"{value:.4g}"
    return str(value)


def metrics_table(report: dict[str, Any]) -> str:
    """One row per metric, one column per configuration."""
    configs = list(report["configs"])
    out = [
        "| metric | " + " | ".join(configs) + " | meaning |",
        "| --- | " + " | ".join("---:" for _ in configs) + " | --- |",
    ]
    for key, label, meaning in METRICS:
        cells = " | ".join(_cell(report["configs"][c].get(key)) for c in configs)
        out.append(f"| {label} | {cells} | {meaning} |")
    return "\n".join(out)


def markdown(report: dict[str, Any]) -> str:
    head = (
        f"# Bench {report['created_at']}\n\nSuite `{report['suite']}`, provider "
        f"`{report['provider']}`, {report['wall_s']} s wall time.\n\n"
    )
    tasks = [
        "| task | kind | config | status | verdict | cited | side effects | approved | ms |",
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in report["tasks"]:
        cited = ", ".join(r["runbooks"][:2]) or "-"
        tasks.append(
            f"| {r['id']} | {r['kind']} | {r['config']} | {r['status']} | {r['verdict'] or '-'} "
            f"| {cited} | {r['side_effects']} | {r['approved_writes']} | {r['latency_ms']:.0f} |"
        )
    return head + metrics_table(report) + "\n\n## Tasks\n\n" + "\n".join(tasks) + "\n"


def write(report: dict[str, Any], out: Path = REPORTS) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = report["created_at"].replace(":", "").replace("-", "")
    paths = out / f"{stem}.json", out / f"{stem}.md"
    paths[0].write_text(json.dumps(report, indent=1, default=str) + "\n")
    paths[1].write_text(markdown(report))
    return paths


def history(folder: Path = REPORTS) -> list[dict[str, Any]]:
    """Every readable report in `folder`, oldest first; unreadable files are skipped."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "configs" in data:
            found.append(data | {"file": path.name})
    return found


def latest(folder: Path = REPORTS) -> dict[str, Any]:
    runs = history(folder)
    if not runs:
        raise InputError(
            f"No bench report in {folder}; run `make bench` or `python -m copilot bench`."
        )
    return runs[-1]
