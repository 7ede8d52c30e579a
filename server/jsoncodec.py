"""JSON in and out: the one parser for client JSON (WebSocket frames and REST bodies) and
the compact encoder for frames, stored bodies and sizes.

Parsing (``loads``) accepts only what the server can store and give back unchanged: no
``NaN``/``Infinity`` (nor a float literal that overflows to infinity), no integer outside
the signed 64-bit range ``INT_MIN..INT_MAX`` (what SQLite stores and orjson writes), no
string or key holding a lone surrogate (``"\\ud800"``: not Unicode, so not UTF-8
encodable), no nesting deeper than ``MAX_DEPTH`` (so whatever embeds client data, a frame or
a response, stays within orjson's 254 levels and far from ``json``'s recursion limit). The
fast path is orjson, which refuses all of these by itself except integers of 19 or more
digits (it reads them as ints up to 2**64 - 1 and as floats beyond, silently changing them)
and depth; only a text with a run of 19 digits, or as many brackets as ``MAX_DEPTH``, is
looked at again. Text refused on any count is parsed again with ``json`` and checked value
by value, which names the offending field.

Encoding (``dumps``) is orjson (a compiled encoder, several times faster than the standard
library), falling back to ``json`` for what orjson refuses (integers beyond 64 bits, lone
surrogates, nesting deeper than 254), so the output is the same JSON value either way. The
output is always valid JSON in valid UTF-8: the fallback refuses non-finite floats
(``ValueError``) and writes lone surrogates as ``\\uXXXX`` escapes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

#: The integers a client may send: signed 64-bit, as SQLite stores them. Every integer from
#: a client that reaches storage (JSON values, path ids, query parameters) is in this range.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
#: Containers nested in one client document, at most.
MAX_DEPTH = 128

_UTF8_BOM = b"\xef\xbb\xbf"
# Every int outside INT_MIN..INT_MAX is written with at least 19 digits (2**63 has 19).
_LONG_DIGITS = b"0" * 19
# bytes.translate table: digits -> b"0", anything else -> b" ", so a run of 19 digits
# is found with one substring search in C.
_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_SURROGATE = re.compile(r"[\ud800-\udfff]")

_std_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_ascii_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


class JSONError(ValueError):
    """Client JSON the server does not accept.

    ``field`` is ``None`` for text that is not JSON at all; otherwise the path of the first
    refused value (``"metadata.x"``, ``"data.items[2]"``, ``""`` for the top level), with
    ``reason`` saying what is wrong with it, and ``document`` the text as parsed, refused
    numbers at its top level replaced by ``None`` (so a caller can still read, say, a
    frame's ``id``).
    """

    def __init__(self, reason: str, *, field: str | None = None, document: Any = None) -> None:
        super().__init__(reason if field is None else f"{field or 'value'}: {reason}")
        self.reason = reason
        self.field = field
        self.document = document


class _Refused:
    """Stands in for a refused number while a document is checked value by value."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_NOT_FINITE = "is not a finite number"
_OUT_OF_RANGE = f"is an integer outside {INT_MIN}..{INT_MAX}"
_NOT_UNICODE = "is not valid Unicode (a lone surrogate)"
_TOO_DEEP = f"is nested deeper than {MAX_DEPTH} levels"


def _int(literal: str) -> int | _Refused:
    value = int(literal)
    return value if INT_MIN <= value <= INT_MAX else _Refused(_OUT_OF_RANGE)


def _float(literal: str) -> float | _Refused:
    value = float(literal)
    return value if math.isfinite(value) else _Refused(_NOT_FINITE)


def _constant(literal: str) -> _Refused:
    return _Refused(_NOT_FINITE)


_checking_decoder = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


class _OutOfRange(Exception):
    pass


def _int_in_range(literal: str) -> int:
    value = int(literal)
    if not INT_MIN <= value <= INT_MAX:
        raise _OutOfRange
    return value


_range_decoder = json.JSONDecoder(parse_int=_int_in_range)


def loads(data: str | bytes) -> Any:
    """Parse client JSON (``bytes`` must be UTF-8); raises ``JSONError``.

    Refuses malformed text, non-finite numbers, integers outside ``INT_MIN..INT_MAX``,
    strings or keys with lone surrogates and nesting deeper than ``MAX_DEPTH``, so whatever
    it returns can be stored and encoded back exactly.
    """
    if isinstance(data, bytes) and data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _checked_loads(data)
    raw = data if isinstance(data, bytes) else data.encode()  # valid UTF-8: orjson read it
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(value):
        return _checked_loads(data)  # raises, naming the field
    if len(raw) >= len(_LONG_DIGITS) and _LONG_DIGITS in raw.translate(_DIGIT_MAP):
        # Maybe a long integer, maybe only a long string of digits ("order 1234..."): orjson
        # has vouched for everything else, so only the integers' range is left to check.
        try:
            _range_decoder.decode(raw.decode())
        except (_OutOfRange, RecursionError):
            return _checked_loads(data)  # raises, naming the field
    return value


def _too_deep(document: Any) -> bool:
    """Whether containers nest deeper than ``MAX_DEPTH`` in ``document`` (iterative)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > MAX_DEPTH:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _checked_loads(data: str | bytes) -> Any:
    """The slow, exact path: parse with ``json`` and check every value."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        document = _checking_decoder.decode(text)
    except (ValueError, RecursionError) as exc:
        raise JSONError("malformed JSON") from exc
    refused = _first_refused(document)
    if refused is not None:
        field, reason = refused
        raise JSONError(reason, field=field, document=_without_refused(document))
    return document


def _first_refused(document: Any) -> tuple[str, str] | None:
    """``(path, reason)`` of the first refused value or key, depth first; iterative, so a
    deeply nested document cannot exhaust the stack."""
    stack: list[tuple[str, Any, int]] = [("", document, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path, _NOT_UNICODE
        elif isinstance(value, _Refused):
            return path, value.reason
        elif isinstance(value, dict | list) and depth > MAX_DEPTH:
            return path, _TOO_DEEP
        elif isinstance(value, dict):
            children: list[tuple[str, Any, int]] = []
            for key, item in value.items():
                child = f"{path}.{_printable(key)}" if path else _printable(key)
                if _SURROGATE.search(key):
                    return child, _NOT_UNICODE
                children.append((child, item, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(
                (f"{path}[{i}]", item, depth + 1) for i, item in reversed(list(enumerate(value)))
            )
    return None


def _without_refused(document: Any) -> Any:
    """The top level of ``document`` with refused numbers as ``None`` (enough to read a
    frame's ``id``; nested values are left as they are, never encoded)."""
    if isinstance(document, dict):
        return {k: None if isinstance(v, _Refused) else v for k, v in document.items()}
    return None if isinstance(document, _Refused) else document


def _printable(key: str) -> str:
    """A key safe to echo in an error: lone surrogates written as ``\\udXXX``."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def is_unicode(value: str) -> bool:
    """Whether ``value`` is valid Unicode text (no lone surrogate), so it can be written
    as UTF-8."""
    return value.isascii() or _SURROGATE.search(value) is None


def dumps_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; ``ValueError`` for a non-finite float."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return _fallback(value).encode("utf-8")


def dumps(value: Any) -> str:
    """``value`` as compact JSON text; ``ValueError`` for a non-finite float."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return _fallback(value)


def _fallback(value: Any) -> str:
    text = _std_dumps(value)
    if not is_unicode(text):
        # A lone surrogate (stored before parsing refused them): escape it, so the text
        # stays valid UTF-8 and decodes to the same string.
        return _ascii_dumps(value)
    return text
