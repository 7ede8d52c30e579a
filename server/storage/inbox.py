"""The values the inbox and the user directory read from storage (issue 16)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Where a page of the inbox ends: ``(at, last_id, key)`` of its last conversation; the next
#: page holds the conversations strictly below it in that order.
InboxPosition = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class ConversationHead:
    """One conversation as one viewer sees it.

    ``last_id`` is the newest message the viewer may see (0: none yet, a group joined before
    its first message); ``at`` is that message's ``sentAt``, or the join time without one.
    """

    kind: Literal["user", "group"]
    peer: str  # the other user's uid, or the group's guid
    key: str  # the storage key (server/conversations.py), never the wire id
    last_id: int
    at: int

    @property
    def position(self) -> InboxPosition:
        """The inbox's order, newest first: time, then message id, then the key."""
        return (self.at, self.last_id, self.key)


def ascii_lower(text: str) -> str:
    """``text`` with A-Z folded to a-z and nothing else: the folding both databases' lower()
    applies here (SQLite's, and PostgreSQL's under the "C" collation)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """``[prefix, successor)``: exactly the strings that start with ``prefix`` (non-empty)."""
    last = ord(prefix[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates are not characters: skip to the next one
        last = 0xE000
    return prefix, prefix[:-1] + chr(min(last, 0x10FFFF))
