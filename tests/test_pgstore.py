"""The PostgreSQL store's edges: the dialect's rendering, the settings, and the database
password, which never reaches the store, an error message or the sidecar."""

from __future__ import annotations

import dataclasses
import io
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot import cli
from copilot.config import Settings
from copilot.dialect import DUCKDB, POSTGRES
from copilot.errors import ConfigError, StoreError
from copilot.pgstore import PgStore, redact_url
from copilot.service import Services
from copilot.sidecar import create_app

SECRET = "pg-Pa55word-never-stored"


def test_placeholders_render_per_engine_and_quoted_text_is_kept() -> None:
    sql = "SELECT '?' AS q, 'a%b' AS p, x FROM t WHERE y = ? AND z LIKE ?"
    assert DUCKDB.sql(sql) == sql
    assert POSTGRES.sql(sql) == "SELECT '?' AS q, 'a%%b' AS p, x FROM t WHERE y = %s AND z LIKE %s"
    assert POSTGRES.for_update("SELECT 1") == "SELECT 1 FOR UPDATE"
    assert DUCKDB.for_update("SELECT 1") == "SELECT 1" and DUCKDB.lock_sql("x") is None
    assert POSTGRES.upsert(["k", "v"], ("k",)) == " ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"


def test_database_url_is_checked_and_its_password_is_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgresql://USER@HOST"):
        Settings.load({"COPILOT_DATABASE_URL": "mysql://u@h/db"}, dotenv=None)
    settings = Settings.load(
        {"COPILOT_DATABASE_URL": f"postgresql://ops:{SECRET}@db:5432/copilot",
         "PGPASSWORD": "another-secret-1"},
        dotenv=None,
    )  # fmt: skip
    assert SECRET in settings.secret_values() and "another-secret-1" in settings.secret_values()
    assert redact_url(settings.database_url) == "postgresql://ops:***@db:5432/copilot"


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it is closed
    store = PgStore(f"postgresql://ops:{SECRET}@127.0.0.1:{port}/copilot")
    with pytest.raises(StoreError) as caught:
        store.query("SELECT 1")
    message = str(caught.value)
    assert "COPILOT_DATABASE_URL" in message and SECRET not in message and "***" in message


def test_the_password_reaches_neither_the_store_nor_the_sidecar(
    settings: Settings, pg_url: str
) -> None:
    # Trust auth on the test cluster accepts any password: this one only has to be hidden.
    url = pg_url.replace("postgres@", f"postgres:{SECRET}@")
    settings = dataclasses.replace(settings, database_url=url)
    services = Services(settings)
    services.run(f"Disk full on the postgres volume; the DB is {url}")
    for table in ("runs", "audit_events", "llm_usage", "steps"):
        rows = services.store.query(f"SELECT * FROM {table}")
        assert rows and SECRET not in repr(rows), table
    health = TestClient(create_app(settings)).get("/healthz").json()
    assert SECRET not in str(health) and "***" in health["db"]


def test_store_copy_without_a_destination_says_what_to_set(settings: Settings) -> None:
    Services(settings).store.query("SELECT 1")
    code = cli.main(["--home", str(settings.home), "store", "copy"], stdout=io.StringIO())
    assert code == 2
