"""Drive a real `streamlit run` server without a browser: open a session over its websocket and
run pages by name, timing each script run. For benchmarks (memory, page render time) on a
machine without Chromium; the browser journey stays in tests/e2e.

The protocol is Streamlit's own: BackMsg.rerun_script with the page name in, ForwardMsgs out
until `script_finished`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import ClientConnection, connect


def start_app(home: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    """`streamlit run` on loopback for a benchmark, signed in as the local operator
    (COPILOT_AUTH=none): the figures are about the pages, not the sign-in form."""
    from tests.e2e.servers import streamlit_command

    full = {**os.environ, "COPILOT_HOME": str(home), "COPILOT_AUTH": "none", **env}
    return subprocess.Popen(
        streamlit_command(port),
        cwd=home,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _run_pages(url: str, pages: list[str], timeout: float) -> dict[str, float]:
    ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
    timings: dict[str, float] = {}
    async with connect(ws_url, subprotocols=["streamlit"], max_size=None) as conn:  # type: ignore[list-item]
        for page in pages:
            message = BackMsg()
            message.rerun_script.page_name = page
            message.rerun_script.query_string = ""
            started = time.perf_counter()
            await conn.send(message.SerializeToString())
            await asyncio.wait_for(_until_finished(conn), timeout)
            timings[page or "chat"] = (time.perf_counter() - started) * 1000
    return timings


async def _until_finished(conn: ClientConnection) -> None:
    while True:
        raw = await conn.recv()
        if isinstance(raw, bytes):
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            if msg.WhichOneof("type") == "script_finished":
                return


def run_pages(url: str, pages: list[str], timeout: float = 120) -> dict[str, float]:
    """Milliseconds from asking for each page until its script finished, in order."""
    return asyncio.run(_run_pages(url, pages, timeout))


def wait_for_rss_plateau(pid: int, above_mib: float, timeout: float = 180) -> float:
    """Resident memory once it has passed `above_mib` and held still for 3 s (a background
    model load has finished), or whatever it is when the time runs out."""
    deadline = time.monotonic() + timeout
    last, steady_since = rss_mib(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)  # a benchmark polling an observable state, bounded by the deadline
        now = rss_mib(pid)
        if abs(now - last) > 2:
            last, steady_since = now, time.monotonic()
        elif now > above_mib and time.monotonic() - steady_since >= 3:
            return now
    return rss_mib(pid)
