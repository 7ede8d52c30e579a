"""The audit log's rows read straight from the SQLite file, read-only (``parley audit``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from server.storage.sanctions import AUDIT_COLUMNS


def read_audit(path: Path) -> list[Any]:
    """Every audit record in id order; SystemExit when there is no database."""
    if not path.exists():
        raise SystemExit(f"parley: no database at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id"))
    finally:
        conn.close()
