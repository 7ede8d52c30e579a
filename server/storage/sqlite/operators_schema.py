"""Operator accounts and their dashboard sessions in SQLite (migration 17, issue 17).

``operators``: one row per member of staff who signs in to the dashboard (not a chat user):
the argon2 password hash, the TOTP secret (and one being enrolled), the last TOTP step used,
the SHA-256 of each unused recovery code, the groups a group moderator is limited to (JSON;
empty: every conversation), the failed-login count and the lock.
``operator_sessions``: the SHA-256 of each session cookie's token; deleted on sign-out, a
new password, disabling, or (lazily) once expired.
"""

from __future__ import annotations

OPERATORS_MIGRATION = """
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret TEXT NOT NULL DEFAULT '',
    totp_pending TEXT NOT NULL DEFAULT '',
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    recovery TEXT NOT NULL DEFAULT '[]',
    scope_groups TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_failure_at INTEGER NOT NULL DEFAULT 0,
    locked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE operator_sessions (
    id TEXT PRIMARY KEY,
    operator TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator);
"""
