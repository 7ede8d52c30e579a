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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _moderation_imports(path: Path, modules: set[str]) -> set[str]:
    """The moderation modules ``path`` imports, anywhere in it (function-level imports
    and ``TYPE_CHECKING`` blocks included); ``from a import b`` names ``a.b`` when that is a
    module, else ``a``."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in modules else node.module)
    return {name for name in out if name in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (or a module
    importing itself), as a path that returns to its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles: list[list[str]] = []
    for component in components:
        start = min(component)
        path, seen = [start], {start}
        while True:
            nxt = min(n for n in graph[path[-1]] if n in component)
            path.append(nxt)
            if nxt in seen:
                cycles.append(path[path.index(nxt) :])
                break
            seen.add(nxt)
    return cycles


def test_no_import_cycle_inside_moderation() -> None:
    paths = sorted((ROOT / "moderation").rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph = {_module_name(p): _moderation_imports(p, modules) for p in paths}
    assert graph["moderation.engine"], "the walk found no imports: is the parsing broken?"
    cycles = _cycles(graph)
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert sorted(map(tuple, _cycles(graph))) == [("a", "b", "c", "a"), ("e", "e")]


def test_the_engine_imports_no_detector() -> None:
    """The engine is given its detectors; it knows only their protocol."""
    path = ROOT / "moderation" / "engine.py"
    modules = {_module_name(p) for p in (ROOT / "moderation").rglob("*.py")}
    detectors = {
        m for m in _moderation_imports(path, modules) if m.startswith("moderation.detectors.")
    }
    assert detectors <= {"moderation.detectors.base"}, detectors


def test_the_engine_finds_no_hook_by_name() -> None:
    """Detector hooks are protocol members, called directly: no ``getattr``/``hasattr``."""
    tree = ast.parse((ROOT / "moderation" / "engine.py").read_text())
    found = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"getattr", "hasattr"}
    ]
    assert not found, f"moderation/engine.py lines {found}"
