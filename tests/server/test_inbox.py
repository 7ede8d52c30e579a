"""The inbox's pure parts (server/services/inbox.py): the cursor, the merge of 1:1 and group
heads into one page, wire ids from the viewer's side; the directory's prefix bounds."""

from __future__ import annotations

import pytest

from server.errors import BadRequest
from server.services.inbox import decode_cursor, encode_cursor, merge_page, wire_id
from server.storage.inbox import ConversationHead, ascii_lower, prefix_bounds


def head(kind: str, peer: str, last_id: int, at: int) -> ConversationHead:
    key = f"g:{peer}" if kind == "group" else f"u:{min('me', peer)}:{max('me', peer)}"
    return ConversationHead(kind, peer, key, last_id, at)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "position", [(0, 0, "g:x"), (1764000000, 501, "u:a:b_user_c"), (2**61, 2**61, "g:a-b_c")]
)
def test_cursor_round_trip(position: tuple[int, int, str]) -> None:
    assert decode_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize(
    "raw",
    ["", "!!!", "Zm9v", encode_cursor((1, 2, "x:y")), encode_cursor((-1, 2, "g:x")), "é"],
)
def test_bad_cursors_are_400(raw: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_cursor(raw)
    assert info.value.details == {"field": "before"}


def test_merge_orders_newest_first_and_pages_below_the_cursor() -> None:
    direct = [head("user", "b", 9, 100), head("user", "c", 5, 90)]
    groups = [
        head("group", "g1", 7, 100),
        head("group", "g2", 0, 95),  # joined, no message: its join time
        head("group", "g3", 12, 120),
    ]
    page, more = merge_page(direct, groups, before=None, limit=3)
    assert [h.peer for h in page] == ["g3", "b", "g1"] and more
    page, more = merge_page(direct[1:], groups, before=page[-1].position, limit=3)
    assert [h.peer for h in page] == ["g2", "c"] and not more


def test_wire_ids_from_the_viewers_side() -> None:
    assert wire_id("me", head("user", "a", 1, 1)) == "a_user_me"
    assert wire_id("me", head("user", "zz", 1, 1)) == "me_user_zz"
    assert wire_id("me", head("group", "g", 1, 1)) == "group_g"


@pytest.mark.parametrize(
    ("prefix", "lo", "hi"),
    [("a", "a", "b"), ("ab", "ab", "ac"), ("z", "z", "{"), ("\ud7ff", "\ud7ff", "\ue000")],
)
def test_prefix_bounds(prefix: str, lo: str, hi: str) -> None:
    assert prefix_bounds(prefix) == (lo, hi)
    assert lo <= prefix + "anything" < hi


def test_ascii_lower_folds_ascii_only() -> None:
    assert ascii_lower("ÉcOLE Zed") == "École zed"
