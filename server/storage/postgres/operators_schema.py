"""Operator accounts and their dashboard sessions in PostgreSQL (migration 10, SQLite 17,
issue 17); the tables of ``sqlite/operators_schema.py``."""

from __future__ import annotations

OPERATORS_MIGRATION = """
CREATE TABLE operators (
    name TEXT COLLATE "C" PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT NOT NULL DEFAULT '',
    totp_pending TEXT NOT NULL DEFAULT '',
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    recovery TEXT NOT NULL DEFAULT '[]',
    scope_groups TEXT NOT NULL DEFAULT '[]',
    disabled BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    last_failure_at BIGINT NOT NULL DEFAULT 0,
    locked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE operator_sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    operator TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator);
"""
