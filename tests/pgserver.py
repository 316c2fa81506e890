"""A throwaway PostgreSQL cluster for the tests: initdb into a temp dir, listen on 127.0.0.1
on a free port (unix socket in the temp dir too), trust auth (local tests only), stopped at
the end. Debian's `postgresql` package provides the binaries (`.ci/run` and `make test`
install it); without them the PostgreSQL tests skip and say why.

Also a script: `python tests/pgserver.py` starts one and prints its URL until Ctrl-C (the
bench uses it with BENCH_BACKEND=postgres).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

MISSING = (
    "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on PATH;"
    " install Debian's `postgresql` package (`.ci/run` and `make test` do) to run these tests"
)


def find_bin() -> Path | None:
    """The newest installed server's bin directory."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; the Debian package creates the user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="copilot-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")

    def start(self) -> PgServer:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
            "--no-locale", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        options += " -c max_connections=200 -c full_page_writes=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.dir / "log"), "-w", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _run(self, *argv: str) -> None:
        subprocess.run(_as_postgres(list(argv)), check=True, capture_output=True, text=True)


@contextlib.contextmanager
def running() -> Iterator[PgServer]:
    bindir = find_bin()
    if bindir is None:
        raise RuntimeError(MISSING)
    server = PgServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    import time

    with running() as pg:
        print(pg.url(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
