"""Who is advancing a run: an owner token (host, pid, process start) and its liveness.

A run whose owner died (kill -9, a server restart) must not stay `running` forever. On the
same host a dead pid is certain at once; the process start time in the token tells a
reused pid from the original. Another host's owner counts as dead when its heartbeat (the
last step boundary it saved) is older than `REMOTE_LEASE`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

REMOTE_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str

    @property
    def token(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"

    @classmethod
    def parse(cls, token: str) -> Owner | None:
        parts = token.split(":")
        if len(parts) < 3:
            return None
        try:
            return cls(":".join(parts[:-2]), int(parts[-2]), parts[-1])
        except ValueError:
            return None


def _process_start(pid: int) -> str:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat); empty
    when the process is gone or a zombie (killed, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return "" if fields[0] == "Z" else fields[19]


def me() -> Owner:
    return Owner(socket.gethostname(), os.getpid(), _process_start(os.getpid()))


def is_alive(token: str | None, heartbeat: datetime | None, now: datetime) -> bool:
    owner = Owner.parse(token or "")
    if owner is None:
        return False
    if owner.host != socket.gethostname():
        return heartbeat is not None and now - heartbeat < REMOTE_LEASE
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return _process_start(owner.pid) == owner.started != ""
