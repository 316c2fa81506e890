"""Exactly once: two processes of eight threads each race to approve the same twenty
requests; every request is decided once and its tool runs once."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

from copilot.config import Settings
from copilot.service import Services
from tests.conftest import REPO

OOM = "Pods in checkout are OOMKilled; raise the memory limit and open a ticket"

RACER = textwrap.dedent("""
    import json, os, random, sys, threading, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from copilot.config import Settings
    from copilot.errors import CopilotError
    from copilot.service import Services

    home, corpus, ids, go = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
    url = os.environ.get("COPILOT_DATABASE_URL", "")
    services = Services(
        Settings(home=Path(home), corpus=Path(corpus), auth="none", database_url=url)
    )
    engine = services.engine()
    services.store.query("SELECT 1")
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    won, refused, lock = [], [], threading.Lock()

    def racer(seed):
        order = list(ids)
        random.Random(seed).shuffle(order)
        for approval_id in order:
            try:
                done = engine.decide(approval_id, approve=True, user="lead")
            except CopilotError as exc:
                with lock:
                    refused.append(str(exc)[:80])
                continue
            with lock:
                won.append([approval_id, done.tool_status])

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"won": won, "refused": refused}), flush=True)
""")


def test_two_processes_of_eight_threads_execute_each_approval_once(
    engine_settings: Settings, tmp_path
):
    """On DuckDB (one file, its lock) and on PostgreSQL (two app processes as replicas)."""
    settings = dataclasses.replace(engine_settings, auth="none")
    services = Services(settings)
    runs = [services.run(OOM) for _ in range(10)]
    ids = [s.approval_id for r in runs for s in r.steps if s.approval_id]
    assert len(ids) == 20
    go = tmp_path / "go"
    args = [str(REPO), str(settings.home), str(settings.corpus), json.dumps(ids), str(go)]
    env = os.environ | {"COPILOT_DATABASE_URL": settings.database_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, *args], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    reports = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    won = [w for r in reports for w in r["won"]]
    assert sorted(w[0] for w in won) == sorted(ids)  # each request won exactly once
    assert all(status == "done" for _, status in won)
    refused = [x for r in reports for x in r["refused"]]
    assert len(refused) == 2 * 8 * 20 - 20 and all("already approved" in x for x in refused)
    calls = services.store.query(
        "SELECT idempotency_key, count(*) AS n FROM tool_calls GROUP BY idempotency_key"
    )
    assert sorted(c["idempotency_key"] for c in calls) == sorted(ids)
    assert all(c["n"] == 1 for c in calls)
    assert len(services.tools.sandbox_jira.recent()) == 10  # one ticket per approved request
    assert len(services.tools.repo.branches()) == 10  # one branch per approved pull request
    finished = services.store.query("SELECT DISTINCT status FROM runs")
    assert [r["status"] for r in finished] == ["completed"]
    print(f"\nwon per process: {[len(r['won']) for r in reports]}")
