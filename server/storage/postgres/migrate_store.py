"""``parley migrate-store``: copy an embedded deployment's SQLite database into PostgreSQL.

Both schemas are at the same version (the caller opens each store first, which migrates it);
every table has the same columns on both sides. Rows are copied as they are: sealed bodies
open on either backend (the associated data names ids, not the backend), and the audit log's
hash chain carries over unchanged. One transaction on the PostgreSQL side, with the inbox
triggers switched off while the inbox tables are copied verbatim; then the sequences are set
past the copied ids and the row counts compared. The SQLite file is read in one transaction,
so a server still running cannot tear the copy (stop it anyway: what it writes afterwards is
not copied).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

#: Tables the copy leaves alone: each store keeps its own schema version.
SKIP = {"parley_schema"}

#: Sequences and the ids they hand out (set past the copied rows).
SEQUENCES = {
    "messages_id_seq": "messages",
    "audit_id_seq": "audit",
    "reports_id_seq": "reports",
    "webhook_deliveries_id_seq": "webhook_deliveries",
}


class MigrationRefused(Exception):
    """The copy cannot be made as asked (the message says why); nothing was written."""


async def holds_rows(url: str) -> bool:
    """Whether any Parley table at ``url`` has a row (a schema alone, from a copy that
    failed, is still empty)."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        ]
        for table in tables:
            if table not in SKIP and await conn.fetchval(
                f'SELECT EXISTS (SELECT 1 FROM "{table}")'
            ):
                return True
        return False
    finally:
        await conn.close()


def _convert(kind: str) -> Any:
    if kind in ("bigint", "integer", "smallint"):
        return lambda v: None if v is None else int(v)
    if kind in ("double precision", "real", "numeric"):
        return lambda v: None if v is None else float(v)
    if kind == "bytea":
        return lambda v: None if v is None else bytes(v)
    if kind == "boolean":
        return lambda v: None if v is None else bool(v)
    return lambda v: None if v is None else (v if isinstance(v, str) else str(v))


async def copy_store(sqlite_path: Path, url: str) -> dict[str, int]:
    """Copy every table of ``sqlite_path`` into the freshly migrated database at ``url``;
    the rows copied per table."""
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    target = await asyncpg.connect(url, timeout=10)
    try:
        source.execute("BEGIN")  # one snapshot of the whole file
        tables = [
            r[0]
            for r in source.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        columns: dict[str, dict[str, str]] = {}
        for r in await target.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ):
            columns.setdefault(r["table_name"], {})[r["column_name"]] = r["data_type"]
        for table in tables:
            if table in SKIP:
                continue
            if table not in columns:
                raise MigrationRefused(f"table {table!r} has no counterpart in PostgreSQL")
            mine = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")')]
            missing = [c for c in mine if c not in columns[table]]
            if missing:
                raise MigrationRefused(f"columns {missing} of {table!r} have no counterpart")
        copied: dict[str, int] = {}
        async with target.transaction():
            for table in columns:
                await target.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
            for table in tables:
                if table in SKIP:
                    continue
                names = [r[1] for r in source.execute(f'PRAGMA table_info("{table}")')]
                convert = [_convert(columns[table][c]) for c in names]
                quoted = ", ".join(f'"{c}"' for c in names)
                cursor = source.execute(f'SELECT {quoted} FROM "{table}"')
                count = 0
                while rows := cursor.fetchmany(5000):
                    records = [
                        tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows
                    ]
                    await target.copy_records_to_table(table, records=records, columns=names)
                    count += len(records)
                copied[table] = count
            for table in columns:
                await target.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')
            for sequence, table in SEQUENCES.items():
                if table in columns:
                    await target.execute(
                        f"SELECT setval('{sequence}', COALESCE((SELECT MAX(id) FROM \"{table}\"), 0) + 1, false)"
                    )
            for table, count in copied.items():
                found = await target.fetchval(f'SELECT COUNT(*) FROM "{table}"')
                if found != count:
                    raise MigrationRefused(f"{table}: {found} rows in PostgreSQL, {count} copied")
        source.execute("COMMIT")
        return copied
    finally:
        source.close()
        await target.close()
