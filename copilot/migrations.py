"""Append-only schema migrations for the governance DB.

Each `mNNN_...` function runs inside a transaction together with its row in
`schema_migrations`, so a failing migration leaves nothing behind. Never rename or edit one
that has shipped: add a new one. All TIMESTAMP columns hold UTC.

The same DDL runs on DuckDB and PostgreSQL (copilot/pgstore.py), so it sticks to types both
spell alike: `DOUBLE PRECISION` (DuckDB's DOUBLE under its standard name; files created with
the old spelling have the very same column type), VARCHAR, INTEGER, BIGINT, BOOLEAN, TIMESTAMP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Executes(Protocol):
    """A DuckDB or psycopg connection: migrations only run plain DDL on it."""

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any: ...


Migration = Callable[[Executes], None]


def m001_initial(conn: Executes) -> None:
    conn.execute("""
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            session_id VARCHAR,
            user_name VARCHAR NOT NULL,
            task VARCHAR NOT NULL,
            provider VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- running, completed, awaiting_approval, failed
            plan_json VARCHAR,
            answer VARCHAR,
            verdict VARCHAR,
            cost_usd DOUBLE PRECISION DEFAULT 0,
            error VARCHAR,
            created_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP
        )""")
    conn.execute("""
        CREATE TABLE steps (
            run_id VARCHAR NOT NULL,
            position INTEGER NOT NULL,
            agent VARCHAR NOT NULL,           -- planner, retriever, executor, reviewer
            title VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            output_json VARCHAR,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            PRIMARY KEY (run_id, position)
        )""")
    conn.execute("CREATE SEQUENCE audit_seq START 1")
    conn.execute("""
        CREATE TABLE audit_events (
            seq BIGINT PRIMARY KEY,
            run_id VARCHAR,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            detail VARCHAR,
            created_at TIMESTAMP NOT NULL,
            prev_hash VARCHAR NOT NULL,
            hash VARCHAR NOT NULL
        )""")
    conn.execute("""
        CREATE TABLE llm_usage (
            call_id VARCHAR PRIMARY KEY,
            run_id VARCHAR,
            user_name VARCHAR,
            purpose VARCHAR NOT NULL,         -- plan, execute, review
            provider VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            latency_ms DOUBLE PRECISION NOT NULL,
            cost_usd DOUBLE PRECISION,                  -- NULL when the model has no known price
            status VARCHAR NOT NULL,          -- ok, failed
            error_class VARCHAR,
            attempts INTEGER NOT NULL DEFAULT 1,
            fallback BOOLEAN NOT NULL DEFAULT FALSE,
            created_at TIMESTAMP NOT NULL
        )""")
    conn.execute("""
        CREATE TABLE reviews (
            run_id VARCHAR PRIMARY KEY,
            verdict VARCHAR NOT NULL,         -- pass, warn, fail
            reasons_json VARCHAR NOT NULL,
            injection_flags INTEGER NOT NULL DEFAULT 0,
            created_at TIMESTAMP NOT NULL
        )""")
    conn.execute("""
        CREATE TABLE approvals (
            approval_id VARCHAR PRIMARY KEY,
            run_id VARCHAR NOT NULL,
            step INTEGER NOT NULL,
            tool VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            args_json VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- pending, approved, rejected, expired
            rule VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            requested_by VARCHAR NOT NULL,
            decided_by VARCHAR,
            decision_note VARCHAR,
            created_at TIMESTAMP NOT NULL,
            decided_at TIMESTAMP
        )""")
    conn.execute("""
        CREATE TABLE tool_calls (
            call_id VARCHAR PRIMARY KEY,
            run_id VARCHAR NOT NULL,
            step INTEGER NOT NULL,
            tool VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            args_json VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- ok, error, denied, awaiting_approval
            result_json VARCHAR,
            error VARCHAR,
            approval_id VARCHAR,
            latency_ms DOUBLE PRECISION,
            created_at TIMESTAMP NOT NULL
        )""")
    conn.execute("CREATE INDEX llm_usage_created ON llm_usage (created_at)")
    conn.execute("CREATE INDEX audit_run ON audit_events (run_id)")


def m002_run_engine(conn: Executes) -> None:
    """A run is a saved state any process can advance; approvals are bound to what they allow.

    runs.state_json is the engine's RunState (statuses now include interrupted); the owner
    columns are the lease that tells a live run from one whose process died. Plan steps,
    approvals and tool calls share one numbering: the plan position (1..N). A tool call is
    recorded as `started` with its idempotency key before it is made.
    """
    for column in (
        "state_json VARCHAR",
        "owner_pid INTEGER",
        "owner_host VARCHAR",
        "owner_token VARCHAR",
        "heartbeat_at TIMESTAMP",
        "updated_at TIMESTAMP",
    ):
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    for column in (
        "target VARCHAR",
        "args_digest VARCHAR",
        "expires_at TIMESTAMP",
        "citations_json VARCHAR",
        "preview_json VARCHAR",
    ):
        conn.execute(f"ALTER TABLE approvals ADD COLUMN {column}")
    conn.execute("ALTER TABLE tool_calls ADD COLUMN idempotency_key VARCHAR")
    conn.execute("ALTER TABLE tool_calls ADD COLUMN owner_token VARCHAR")
    conn.execute("CREATE INDEX approvals_run ON approvals (run_id)")
    conn.execute("CREATE INDEX tool_calls_key ON tool_calls (idempotency_key)")


def m003_budgets(conn: Executes) -> None:
    """Spend reserved before each LLM call and settled after (copilot/governance/budgets.py)."""
    conn.execute("""
        CREATE TABLE reservations (
            id VARCHAR PRIMARY KEY,
            run_id VARCHAR,
            user_name VARCHAR NOT NULL,
            reserved_usd DOUBLE PRECISION NOT NULL,
            actual_usd DOUBLE PRECISION,                -- NULL until settled
            status VARCHAR NOT NULL,          -- reserved, settled, released
            created_at TIMESTAMP NOT NULL,
            settled_at TIMESTAMP
        )""")
    conn.execute("CREATE INDEX reservations_created ON reservations (created_at)")
    conn.execute("CREATE INDEX reservations_run ON reservations (run_id)")


def m004_sandbox_jira(conn: Executes) -> None:
    """Sandbox stand-ins for Jira tickets (SANDBOX-1, ...) and GitHub issues (#1, ...), used
    when no credentials are set; `idem_key` is the approval's idempotency key."""
    conn.execute("""
        CREATE TABLE sandbox_tickets (
            system VARCHAR NOT NULL,          -- jira, github
            number INTEGER NOT NULL,
            ticket_key VARCHAR NOT NULL,      -- SANDBOX-3, #3
            summary VARCHAR NOT NULL,
            description VARCHAR NOT NULL,
            labels_json VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- To Do, In Progress, Done / open, closed
            comments_json VARCHAR NOT NULL,   -- [{"body", "idem_key", "created_at"}]
            idem_key VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (system, number)
        )""")


def m005_users(conn: Executes) -> None:
    """Users for COPILOT_AUTH=local and the CLI's --user (copilot/governance/identity.py)."""
    conn.execute("""
        CREATE TABLE users (
            name VARCHAR PRIMARY KEY,
            role VARCHAR NOT NULL,            -- requester, approver, admin
            password_hash VARCHAR NOT NULL,   -- argon2id, never the password
            enabled BOOLEAN NOT NULL DEFAULT TRUE,
            failed_attempts INTEGER NOT NULL DEFAULT 0,
            locked_until TIMESTAMP,
            created_at TIMESTAMP NOT NULL
        )""")


MIGRATIONS: list[Migration] = [
    m001_initial,
    m002_run_engine,
    m003_budgets,
    m004_sandbox_jira,
    m005_users,
]
