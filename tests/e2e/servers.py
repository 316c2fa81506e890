"""Start the real app and the sidecar as subprocesses on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Poll until the URL answers 200, failing fast if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} was up")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # polling an observable state, bounded by the deadline
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def streamlit_command(port: int) -> list[str]:
    """The app as `make run` starts it, on a loopback port (also used by the benchmark)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(REPO / "streamlit_app.py"),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
    ]


@dataclass
class Stack:
    app_url: str
    sidecar_url: str
    home: Path
    passwords: dict[str, str] = field(default_factory=dict)
    """Who can sign in to this stack's app: name -> password."""

    def login(self, name: str) -> tuple[str, str]:
        return name, self.passwords[name]


@contextmanager
def running_stack(home: Path, log_dir: Path) -> Iterator[Stack]:
    env = {
        **os.environ,
        "COPILOT_HOME": str(home),
        "COPILOT_CORPUS": str(REPO / "corpus"),
        "LLM_PROVIDER": "stub",
        "COPILOT_AUTH": "local",  # the journey signs in, as a team's users would
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "COPILOT_BENCH_REPORTS": str(REPO / "docs"),  # the committed example bench report
    }
    app_port, side_port = free_port(), free_port()
    commands = {
        "app": streamlit_command(app_port),
        "sidecar": [
            sys.executable,
            "-m",
            "copilot",
            "sidecar",
            "--host",
            "127.0.0.1",
            "--port",
            str(side_port),
        ],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, argv in commands.items():
            log = (log_dir / f"{name}.log").open("wb")
            procs[name] = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        app_url, sidecar_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{side_port}"
        wait_http(f"{app_url}/_stcore/health", procs["app"])
        wait_http(f"{sidecar_url}/healthz", procs["sidecar"])
        yield Stack(app_url, sidecar_url, home)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
