"""Signing and verifying webhook bodies."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from moderation.providers.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signed_headers,
    verify,
)

BODY = b'{"a":1}'


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", b"1764000000." + BODY, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1764000000, BODY) == "v1=" + expected


def test_headers_without_secret_carry_only_the_timestamp() -> None:
    assert signed_headers(None, BODY, now=5) == {TIMESTAMP_HEADER: "5"}
    headers = signed_headers("k", BODY, now=5)
    assert headers[SIGNATURE_HEADER] == signature("k", 5, BODY)


@pytest.mark.parametrize(
    ("secret", "ts", "sig", "body", "now", "ok"),
    [
        ("k", "1000", signature("k", 1000, BODY), BODY, 1000, True),
        ("k", "1000", signature("k", 1000, BODY), BODY, 1299, True),
        ("k", "1000", signature("k", 1000, BODY), BODY, 1301, False),  # too old: replay
        ("other", "1000", signature("k", 1000, BODY), BODY, 1000, False),
        ("k", "1000", signature("k", 1000, BODY), BODY + b" ", 1000, False),
        ("k", "1001", signature("k", 1000, BODY), BODY, 1000, False),
        ("k", None, signature("k", 1000, BODY), BODY, 1000, False),
        ("k", "1000", None, BODY, 1000, False),
        ("k", "abc", "v1=00", BODY, 1000, False),
    ],
)
def test_verify(
    secret: str, ts: str | None, sig: str | None, body: bytes, now: float, ok: bool
) -> None:
    assert verify(secret, ts, sig, body, now=now) is ok
