"""Signed media links (server/media/links.py) and the download HTTP helpers."""

from __future__ import annotations

import pytest

from server.media.http import RangeNotSatisfiable, content_disposition, parse_range
from server.media.links import LinkSigner, derive_link_key

MID = "m" + "01" * 16
OTHER = "m" + "02" * 16


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(derive_link_key("jwt-secret-for-tests"))


def test_round_trip(signer: LinkSigner) -> None:
    token = signer.sign(MID, "original", "alice", "acc1", 2_000_000_000)
    claims = signer.parse(token)
    assert claims is not None
    assert (claims.viewer, claims.exp) == ("alice", 2_000_000_000)
    assert signer.check(claims, MID, "original", "acc1")


@pytest.mark.parametrize(
    ("media_id", "variant", "account"),
    [(OTHER, "original", "acc1"), (MID, "thumbnail", "acc1"), (MID, "original", "acc2")],
)
def test_bound_to_media_variant_and_account(
    signer: LinkSigner, media_id: str, variant: str, account: str
) -> None:
    claims = signer.parse(signer.sign(MID, "original", "alice", "acc1", 2_000_000_000))
    assert claims is not None
    assert not signer.check(claims, media_id, variant, account)


def test_tampered_fields_fail(signer: LinkSigner) -> None:
    token = signer.sign(MID, "original", "alice", "acc1", 2_000_000_000)
    for forged in (
        token.replace("2000000000", "2000000001"),
        token.replace(".alice.", ".bob."),
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
    ):
        claims = signer.parse(forged)
        assert claims is not None
        account = "acc1"
        assert not signer.check(claims, MID, "original", account)


def test_other_key_fails(signer: LinkSigner) -> None:
    token = signer.sign(MID, "original", "alice", "acc1", 2_000_000_000)
    other = LinkSigner(derive_link_key("another-secret"))
    claims = other.parse(token)
    assert claims is not None and not other.check(claims, MID, "original", "acc1")


@pytest.mark.parametrize(
    "token",
    ["", "x", "1.2.alice", "2.1.alice." + "A" * 43, "1.12.al/ce." + "A" * 43, "1.-1.a." + "A" * 43],
)
def test_malformed(signer: LinkSigner, token: str) -> None:
    assert signer.parse(token) is None


@pytest.mark.parametrize(
    ("header", "size", "want"),
    [
        (None, 10, None),
        ("bytes=0-4", 10, (0, 4)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=2-100", 10, (2, 9)),
        ("bytes=0-1,3-4", 10, None),  # several ranges: the whole body
        ("items=0-1", 10, None),
        ("bytes=4-2", 10, None),
    ],
)
def test_parse_range(header: str | None, size: int, want: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == want


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_content_disposition() -> None:
    assert content_disposition("a.png", inline=True) == (
        "inline; filename=\"a.png\"; filename*=UTF-8''a.png"
    )
    value = content_disposition('r\u00e9"sum\u00e9\\.pdf\n', inline=False)
    assert value == (
        "attachment; filename=\"r__sum__.pdf_\"; filename*=UTF-8''r%C3%A9%22sum%C3%A9%5C.pdf%0A"
    )
