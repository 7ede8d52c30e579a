"""The layering of the house style (../shared/STYLE.md), checked by walking the imports.

routes and sessions -> services -> storage ports <- storage implementations: routes and the
session never import storage, and only the composition root names a storage backend (the
SQLite or the PostgreSQL package).
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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_only_the_composition_root_names_a_backend(backend: str) -> None:
    package = ROOT / "server" / "storage" / backend
    name = f"server.storage.{backend}"
    bad = [
        f"{rel} imports {n}"
        for path in (ROOT / "server").rglob("*.py")
        if (rel := path.relative_to(ROOT)) not in COMPOSITION_ROOT
        and not path.is_relative_to(package)
        for n in imports(path)
        if n == name or n.startswith(name + ".")
    ]
    assert not bad, bad


def test_only_the_postgres_backend_imports_asyncpg() -> None:
    # An extra (``postgres``): the embedded default must start without it.
    package = ROOT / "server" / "storage" / "postgres"
    bad = [
        f"{path.relative_to(ROOT)} imports {n}"
        for path in (ROOT / "server").rglob("*.py")
        if not path.is_relative_to(package)
        for n in imports(path)
        if n.split(".")[0] == "asyncpg"
    ]
    assert not bad, bad


def test_storage_ports_never_import_an_implementation() -> None:
    paths = [p for p in (ROOT / "server" / "storage").glob("*.py")]
    bad = [
        f"{p.relative_to(ROOT)} imports {n}"
        for p in paths
        for n in imports(p)
        if n.startswith(("server.storage.sqlite", "server.storage.postgres"))
        or n.split(".")[0] in ("aiosqlite", "asyncpg")
    ]
    assert not bad, bad


#: The moderation side in the server: it reaches chat only through the small interfaces in
#: ``server.services.contracts``, never a service itself (no back-reference, no cycle).
MODERATION_SIDE = [
    *Path("server/moderation_service").glob("*.py"),
    Path("server/moderation_settings.py"),
    Path("server/webhook_settings.py"),
    Path("server/settings_fields.py"),
    Path("server/external_detectors.py"),
    Path("server/event_webhooks.py"),
]
CONTRACTS = "server.services.contracts"


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_moderation_side_reaches_chat_only_through_the_contracts() -> None:
    paths = [ROOT / p for p in MODERATION_SIDE]
    assert len(paths) > 4
    bad = [
        f"{p.relative_to(ROOT)} imports {n}"
        for p in paths
        for n in imports(p)
        if (_under(n, "server.services") and not _under(n, CONTRACTS))
        or _under(n, "server.session")
        or _under(n, "server.routes")
        or _under(n, "server.app")
    ]
    assert not bad, bad


def test_services_never_import_the_moderation_side_routes_or_sessions() -> None:
    """Services point down (ports, models, the hub), never up or across to moderation."""
    bad = [
        f"{p.relative_to(ROOT)} imports {n}"
        for p in (ROOT / "server" / "services").glob("*.py")
        for n in imports(p)
        if any(
            _under(n, package)
            for package in (
                "server.moderation_service",
                "server.external_detectors",
                "server.event_webhooks",
                "server.routes",
                "server.session",
                "server.app",
            )
        )
    ]
    assert not bad, bad


def test_contracts_name_no_service() -> None:
    path = ROOT / "server" / "services" / "contracts.py"
    bad = [n for n in imports(path) if _under(n, "server.services")]
    assert not bad, bad


#: Past this many lines a module states in its docstring why it is not split.
MAX_LINES = 400


@pytest.mark.parametrize(
    "folder", ["server/services", "server/moderation_service", "server/routes"]
)
def test_modules_stay_small_or_say_why(folder: str) -> None:
    long = []
    for path in (ROOT / folder).glob("*.py"):
        text = path.read_text()
        doc = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > MAX_LINES and "not split" not in doc:
            long.append(str(path.relative_to(ROOT)))
    assert not long, long
