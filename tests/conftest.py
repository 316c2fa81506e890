"""Shared fixtures: the real MiniLM model and the real corpus index, built once per session.

Each test gets its own COPILOT_HOME in a tmp dir with a copy of that index, so tests never
share a DuckDB file and never re-embed the corpus.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from copilot.config import Settings
from copilot.service import Services

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
RUNBOOKS = len(list(CORPUS.glob("*.md")))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def no_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most tests are about other things than signing in: they run as the development
    operator (COPILOT_AUTH=none, an admin), in process and in the subprocesses they start.
    tests/test_identity.py and tests/test_signin_page.py set COPILOT_AUTH=local themselves."""
    monkeypatch.setenv("COPILOT_AUTH", "none")


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus index, embedded once per test session with the real model."""
    home = tmp_path_factory.mktemp("index-home")
    services = Services(Settings(home=home, corpus=CORPUS))
    services.retriever.refresh()
    return home / "index"


@pytest.fixture
def settings(tmp_path: Path, built_index: Path) -> Settings:
    home = tmp_path / "home"
    shutil.copytree(built_index, home / "index")
    return Settings(home=home, corpus=CORPUS, auth="none")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    yield Services(settings)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """One throwaway PostgreSQL cluster for the session (tests/pgserver.py); skipped with the
    reason where no server binaries are installed, which CI never allows (.ci/run installs)."""
    from tests import pgserver

    if pgserver.find_bin() is None:
        if os.environ.get("CI"):
            pytest.fail(pgserver.MISSING)
        pytest.skip(pgserver.MISSING)
    with pgserver.running() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: object) -> str:
    """A fresh, empty database on the session's cluster."""
    from tests.pgserver import PgServer

    assert isinstance(pg_server, PgServer)
    return pg_server.create_database()


@pytest.fixture(params=["duckdb", "postgres"])
def engine_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """`settings` on each engine: the DuckDB file, then a fresh PostgreSQL database."""
    if request.param == "duckdb":
        return settings
    url = request.getfixturevalue("pg_url")
    return dataclasses.replace(settings, database_url=url)
