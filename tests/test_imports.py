"""The layering of STYLE.md, checked by walking the imports with ast."""

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
        if n.startswith("server.storage")
        and not (p.name == "moderation.py" and n == "server.storage.base")
    ]
    assert not bad, bad
