"""Pure HTTP helpers for media downloads: single byte ranges and Content-Disposition."""

from __future__ import annotations

import re
from urllib.parse import quote

#: What a media response may do in a browser: nothing (no scripts, no plugins, no requests;
#: ``sandbox`` also gives a unique origin to a document that slipped through).
MEDIA_CSP = "default-src 'none'; sandbox"

_RANGE_RE = re.compile(r"\Abytes=([0-9]{0,20})-([0-9]{0,20})\Z")


class RangeNotSatisfiable(Exception):
    """The range starts past the end (answered 416 with ``Content-Range: bytes */size``)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` bytes a ``Range`` header asks of ``size`` bytes.

    None means "send it all" (no header, a unit other than bytes, several ranges, or a
    malformed one: RFC 9110 lets a server ignore those). Raises ``RangeNotSatisfiable``
    for a range that lies past the end.
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first_raw, last_raw = match.groups()
    if not first_raw:
        if not last_raw:
            return None
        suffix = int(last_raw)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size - 1
    first = int(first_raw)
    if last_raw and int(last_raw) < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable(header)
    return first, min(int(last_raw) if last_raw else size - 1, size - 1)


def content_disposition(filename: str, *, inline: bool) -> str:
    """``inline`` or ``attachment`` with the name as an ASCII fallback and UTF-8 (RFC 6266)."""
    kind = "inline" if inline else "attachment"
    ascii_name = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
