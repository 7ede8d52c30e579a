"""moderation/ never imports server/ or client/, checked by walking the imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("server", "client")


def test_moderation_never_imports_server_or_client() -> None:
    bad: list[str] = []
    paths = sorted((ROOT / "moderation").rglob("*.py"))
    assert paths
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
                names = [str(a.value) for a in node.args[:1] if isinstance(a, ast.Constant)]
            bad += [
                f"{path.relative_to(ROOT)} imports {n}"
                for n in names
                if str(n).split(".")[0] in FORBIDDEN
            ]
    assert not bad, bad
