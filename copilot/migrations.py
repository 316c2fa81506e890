"""Append-only schema migrations for the governance DB.

Each `mNNN_...` function runs inside a transaction together with its row in
`schema_migrations`, so a failing migration leaves nothing behind. Never rename or edit one
that has shipped: add a new one. All TIMESTAMP columns hold UTC.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]


def m001_initial(conn: duckdb.DuckDBPyConnection) -> None:
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
            cost_usd DOUBLE DEFAULT 0,
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
            latency_ms DOUBLE NOT NULL,
            cost_usd DOUBLE,                  -- NULL when the model has no known price
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
            latency_ms DOUBLE,
            created_at TIMESTAMP NOT NULL
        )""")
    conn.execute("CREATE INDEX llm_usage_created ON llm_usage (created_at)")
    conn.execute("CREATE INDEX audit_run ON audit_events (run_id)")


def m005_users(conn: duckdb.DuckDBPyConnection) -> None:
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


MIGRATIONS: list[Migration] = [m001_initial, m005_users]
