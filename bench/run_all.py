"""`make bench`: every performance benchmark, then the evaluation suite (governed vs baseline),
then ONE summary table: each part's exit status, wall time and headline figures.

Each part's own output streams through as it runs; the summary picks its headline lines by
the patterns below (a part whose output changed shows "(no headline found)", never fails).

    python bench/run_all.py [--provider stub|openai|azure] [--suite quick|full] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

# (script, patterns of the lines that carry its headline figures)
SCRIPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bench_engine.py", (r"run engine.*p50", r"p50 .*ms")),
    ("bench_core.py", (r"index build", r"query latency", r"streamlit RSS")),
    ("bench_telemetry.py", (r"req/s",)),
    ("bench_governance.py", (r"policy decision|decisions", r"overspend ratio", r"audit verify")),
    ("bench_retrieval.py", (r"heldout \(\d+\) by section", r"coverage", r"latency warm, hybrid")),
    ("bench_guard.py", (r"recall|detected|flagged", r"guard time")),
)
BENCH_KEYS = (
    "attack_success_rate",
    "unauthorized_writes",
    "right_runbook_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "cost_per_task_usd",
    "llm_calls_per_task",
    "store_writes_per_task",
)


@dataclass
class Part:
    name: str
    code: int = 0
    wall_s: float = 0.0
    headlines: list[str] = field(default_factory=list)


def run(name: str, argv: list[str], patterns: tuple[str, ...], env: dict[str, str]) -> Part:
    """Run one part, streaming its output, keeping the first line matching each pattern."""
    print(f"\n=== {name}", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip())
    part = Part(name, proc.wait(), time.perf_counter() - started)
    for pattern in patterns:
        hit = next((ln.strip() for ln in lines if re.search(pattern, ln, re.IGNORECASE)), None)
        if hit and hit not in part.headlines:
            part.headlines.append(" ".join(hit.split()))
    return part


def bench_part(args: argparse.Namespace, env: dict[str, str], out: Path) -> Part:
    argv = [PY, "-m", "copilot", "bench", "--suite", args.suite, "--provider", args.provider]
    argv += ["--out", str(out), "--json"] + (["--tasks", "3"] if args.smoke else [])
    started = time.perf_counter()
    print(f"\n=== evaluation suite ({args.suite}, {args.provider})", flush=True)
    done = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    part = Part("evaluation suite", done.returncode, time.perf_counter() - started)
    if done.returncode == 0:
        configs = json.loads(done.stdout)["configs"]
        for config, figures in configs.items():
            cells = ", ".join(f"{k} {figures.get(k)}" for k in BENCH_KEYS)
            part.headlines.append(f"{config}: {cells}")
    return part


def summary(parts: list[Part], total_s: float) -> str:
    rows = ["| part | exit | wall s | headline |", "| --- | ---: | ---: | --- |"]
    for p in parts:
        heads = "<br>".join(p.headlines) or "(no headline found)"
        rows.append(f"| {p.name} | {p.code} | {p.wall_s:.0f} | {heads} |")
    rows.append(f"| **all** | {max((p.code for p in parts), default=0)} | {total_s:.0f} | |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default=os.environ.get("LLM_PROVIDER") or "stub")
    parser.add_argument("--suite", choices=("quick", "full"), default="quick")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (make bench-smoke)")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"} | ({"BENCH_SMOKE": "1"} if args.smoke else {})
    started = time.perf_counter()
    parts = [run(name, [PY, str(REPO / "bench" / name)], pats, env) for name, pats in SCRIPTS]
    parts.append(bench_part(args, env, args.out))
    print("\n" + summary(parts, time.perf_counter() - started))
    return max(p.code for p in parts)


if __name__ == "__main__":
    sys.exit(main())
