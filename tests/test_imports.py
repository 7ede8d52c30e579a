"""The layering of the house style (../shared/STYLE.md), checked by walking the imports.

routes and sessions -> services -> storage ports <- storage implementations: routes and the
session never import storage, and only the composition root names the SQLite package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "moderation": ("server", "client"),
    "client": ("server", "moderation"),
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from server.storage import sqlite`` names the package too
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_forbidden_edges(package: str) -> None:
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for name in imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_routes_and_session_never_touch_storage() -> None:
    paths = [*(ROOT / "server" / "routes").glob("*.py"), ROOT / "server" / "session.py"]
    bad = [
        f"{p.relative_to(ROOT)} imports {n}"
        for p in paths
        for n in imports(p)
        if n == "server.storage" or n.startswith("server.storage.")
    ]
    assert not bad, bad


#: The composition root: the only modules that may name a storage implementation.
COMPOSITION_ROOT = {Path("server/app.py"), Path("server/cli.py")}


def test_only_the_composition_root_names_sqlite() -> None:
    sqlite_package = ROOT / "server" / "storage" / "sqlite"
    bad = [
        f"{rel} imports {n}"
        for path in (ROOT / "server").rglob("*.py")
        if (rel := path.relative_to(ROOT)) not in COMPOSITION_ROOT
        and not path.is_relative_to(sqlite_package)
        for n in imports(path)
        if n == "server.storage.sqlite" or n.startswith("server.storage.sqlite.")
    ]
    assert not bad, bad


def test_storage_ports_never_import_an_implementation() -> None:
    paths = [p for p in (ROOT / "server" / "storage").glob("*.py")]
    bad = [
        f"{p.relative_to(ROOT)} imports {n}"
        for p in paths
        for n in imports(p)
        if n.startswith("server.storage.sqlite") or n.split(".")[0] == "aiosqlite"
    ]
    assert not bad, bad
