"""The other processes' presence, held in memory by each process of a deployment
(``redis_hub.RedisHub``): which node holds a connection of which user.

One relation, two views kept together here: by user (is anyone elsewhere? ``online``, the
"nothing to publish" test of a send) and by node (a frame is routed to a node with one set
intersection of its users and the frame's receivers). Pure: the hub feeds it the snapshot it
reads from Redis and the presence changes it hears.
"""

from __future__ import annotations

from collections.abc import Iterable


class PresenceMirror:
    """``uid -> nodes`` and ``node -> uids`` of the other nodes' connections."""

    __slots__ = ("by_node", "by_uid")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self.by_uid: dict[str, set[str]] = {}
        self.by_node: dict[str, set[str]] = {}
        for uid, node in pairs:
            self.add(uid, node)

    def __contains__(self, uid: str) -> bool:
        return uid in self.by_uid

    def names_any(self, uids: Iterable[str]) -> bool:
        """Whether some other node holds any of ``uids``."""
        return not self.by_uid.keys().isdisjoint(uids)

    def add(self, uid: str, node: str) -> None:
        self.by_uid.setdefault(uid, set()).add(node)
        self.by_node.setdefault(node, set()).add(uid)

    def discard(self, uid: str, node: str) -> None:
        nodes = self.by_uid.get(uid)
        if nodes is not None:
            nodes.discard(node)
            if not nodes:
                del self.by_uid[uid]
        uids = self.by_node.get(node)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self.by_node[node]

    def drop_node(self, node: str) -> None:
        """Forget every user of ``node`` (it announced its whole list again)."""
        for uid in list(self.by_node.get(node, ())):
            self.discard(uid, node)
