"""HMAC-SHA256 request signing shared by the Custom API webhook and outgoing webhooks.

The signed string is ``f"{timestamp}.{raw body}"``; headers:

- ``X-Parley-Timestamp``: Unix seconds when the request was signed (reject old ones).
- ``X-Parley-Signature``: ``v1=<hex HMAC-SHA256(secret, signed string)>``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Parley-Timestamp"
SIGNATURE_HEADER = "X-Parley-Signature"
#: How old a timestamp ``verify`` accepts by default, in seconds.
DEFAULT_TOLERANCE = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1=<hex>`` signature of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str | None, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The timestamp header, plus the signature header when a secret is configured."""
    ts = int(time.time() if now is None else now)
    headers = {TIMESTAMP_HEADER: str(ts)}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, ts, body)
    return headers


def verify(
    secret: str,
    timestamp: str | None,
    sig: str | None,
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``sig`` signs ``body`` at ``timestamp`` and the timestamp is recent enough."""
    if not timestamp or not sig or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), sig)
