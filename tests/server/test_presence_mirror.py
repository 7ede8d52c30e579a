"""The in-memory presence mirror: its two views (by user, by node) always tell the same."""

from __future__ import annotations

from server.presence_mirror import PresenceMirror


def consistent(m: PresenceMirror) -> bool:
    pairs_by_uid = {(u, n) for u, nodes in m.by_uid.items() for n in nodes}
    pairs_by_node = {(u, n) for n, uids in m.by_node.items() for u in uids}
    empty = any(not v for v in m.by_uid.values()) or any(not v for v in m.by_node.values())
    return pairs_by_uid == pairs_by_node and not empty


def test_changes_keep_both_views_in_step() -> None:
    m = PresenceMirror([("a", "n1"), ("b", "n1"), ("b", "n2")])
    assert consistent(m) and "b" in m and m.by_node["n1"] == {"a", "b"}
    assert m.names_any(["x", "b"]) and not m.names_any(["x", "y"])
    m.discard("b", "n1")
    assert m.by_uid["b"] == {"n2"} and m.by_node["n1"] == {"a"} and consistent(m)
    m.discard("a", "n1")  # the node's last user: the node goes too
    assert "n1" not in m.by_node and "a" not in m and consistent(m)
    m.discard("nobody", "n9")  # unknown: nothing happens
    m.add("c", "n2")
    m.drop_node("n2")  # it announced its whole list again
    assert m.by_uid == {} and m.by_node == {}
