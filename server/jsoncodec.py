"""Compact JSON encoding for frames, stored bodies and sizes: orjson (a compiled encoder,
several times faster than the standard library), falling back to ``json`` for what orjson
refuses (integers beyond 64 bits, lone surrogates, nesting deeper than 254), so the output is
the same JSON value either way. Parsing stays with ``json.loads``: orjson reads integers
beyond 64 bits as floats, which would silently change a client's data."""

from __future__ import annotations

import json
from typing import Any

import orjson

_std_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return _std_dumps(value).encode("utf-8", "surrogatepass")


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return _std_dumps(value)
