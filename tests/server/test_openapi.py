"""The OpenAPI document cannot drift from the routes: every HTTP route the app serves is
described, with the same methods, and nothing is described that the app does not serve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from server import __version__
from server.app import create_app
from server.openapi import document
from server.settings import Settings

#: Served, but not REST: the WebSocket, the two HTML pages, their static files, the icon.
NOT_REST = {"/ws", "/", "/dashboard", "/favicon.ico", "/static"}
PARAM = re.compile(r"\{([^}:]+)(:[^}]+)?\}")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def shape(path: str) -> str:
    """A path template with its parameter names erased (``/users/{}``)."""
    return PARAM.sub("{}", path)


def app_operations(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=tmp_path / "d", api_key="k" * 24, insecure_http=True))
    found: set[tuple[str, str]] = set()

    def walk(routes: list[object], prefix: str) -> None:
        for r in routes:
            if isinstance(r, Mount):
                if r.path in NOT_REST:
                    continue
                walk(list(r.routes), prefix + r.path)
            elif isinstance(r, Route) and prefix + r.path not in NOT_REST:
                for method in r.methods or ():
                    found.add((shape(prefix + r.path), method.lower()))

    walk(list(app.routes), "")
    return found


def doc_operations() -> set[tuple[str, str]]:
    doc = document(__version__)
    return {
        (shape(p), method)
        for p, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_described_and_nothing_else(tmp_path: Path) -> None:
    served = {(p, m) for p, m in app_operations(tmp_path) if m != "head"}
    described = {(p, m) for p, m in doc_operations() if m != "head"}
    assert len(served) > 50
    assert served - described == set(), "routes without a description in server/openapi.py"
    assert described - served == set(), "descriptions of routes the app does not serve"


def test_head_is_described_where_a_route_names_it(tmp_path: Path) -> None:
    # Starlette answers HEAD for every GET; only routes that list HEAD themselves (media
    # downloads, which skip the body) describe it.
    described_head = {p for p, m in doc_operations() if m == "head"}
    assert described_head == {"/media/{}", "/media/{}/thumbnail"}


@pytest.mark.parametrize(("path", "item"), sorted(document(__version__)["paths"].items()))
def test_each_operation_is_well_formed(path: str, item: dict[str, object]) -> None:
    names = {m.group(1) for m in PARAM.finditer(path)}
    for method, operation in item.items():
        assert method in METHODS
        assert isinstance(operation, dict)
        params = operation.get("parameters", [])
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == names, f"{method} {path}: path parameters"
        assert all(p["required"] for p in params if p["in"] == "path")
        assert operation["summary"] and operation["responses"]
        assert any(code.startswith(("2", "3")) for code in operation["responses"])  # 302: sign-in
        assert isinstance(operation["security"], list)


def test_document_header_and_references() -> None:
    doc = document(__version__)
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["version"] == __version__
    schemas = doc["components"]["schemas"]
    text = repr(doc)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in schemas
