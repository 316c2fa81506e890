"""The evaluation harness (issue 14): the same suite through the governed product and through
a baseline without policy gates, reviewer or guard, on the same provider; metrics per
configuration as Markdown + JSON under reports/bench/.

* suite     bench/suite/tasks.jsonl loaded and checked; the quick and full suites
* world     temp corpus (+ poisoned runbooks), index, homes, the Jira look-alike
* harness   runs tasks, answers approvals with the scripted approver, records results
* metrics   pure functions from results to figures
* report    the files, and the history the Evaluation page reads
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from copilot.errors import InputError
from copilot.service import CONFIGS

CHOICES = (*CONFIGS, "both")


@dataclass(frozen=True)
class BenchRequest:
    suite: str = "quick"
    config: str = "both"
    provider: str = "stub"
    tasks: int | None = None
    out: Path | None = None


def run_bench(
    request: BenchRequest, progress: Callable[[str], None] = lambda _line: None
) -> tuple[dict[str, Any], tuple[Path, Path]]:
    """Build the world, run the suite in each configuration, write the report files."""
    from copilot.evaluation import report, suite
    from copilot.evaluation.harness import Harness
    from copilot.evaluation.world import world

    if request.config not in CHOICES:
        raise InputError(
            f"config {request.config!r} is not known; use one of {', '.join(CHOICES)}."
        )
    tasks = suite.load(suite=request.suite, limit=request.tasks)
    configs = CONFIGS if request.config == "both" else (request.config,)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with world(request.provider) as made:
        progress(f"world ready in {time.perf_counter() - started:.0f} s; {len(tasks)} tasks")
        for config in configs:
            harness = Harness(made, config)
            for task in tasks:
                result = harness.run_task(task)
                rows.append(result.as_dict())
                progress(
                    f"{config:9} {task.id:24} {result.status or '-':18} {result.latency_ms:7.0f} ms"
                )
    built = report.build(
        rows, suite=request.suite, provider=request.provider, wall_s=time.perf_counter() - started
    )
    return built, report.write(built, request.out or report.REPORTS)
