"""Conversation ids: the wire form, the storage key, and resolving an id against a caller.

On the wire a conversation is ``<uidA>_user_<uidB>`` (uids sorted) or ``group_<guid>``
(PROTOCOL.md). Since uids may contain ``_user_`` and may be ``group``, one id string can read
as several conversations: users ``a`` and ``b_user_c`` share the string ``a_user_b_user_c``
with users ``a_user_b`` and ``c``. Storage therefore never keys by that string: it keys by
:func:`conversation_key`, which puts a separator outside the id alphabet between the parts,
and a client's id is resolved against the caller (:func:`readings`, then the caller's own
participation) before any history is read. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from server.protocol import is_ident

USER_SEP = "_user_"
GROUP_PREFIX = "group_"


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation: a pair of users (``a <= b``), or a group (``a`` is the guid)."""

    kind: Literal["user", "group"]
    a: str
    b: str = ""

    @property
    def wire_id(self) -> str:
        if self.kind == "group":
            return GROUP_PREFIX + self.a
        return f"{self.a}{USER_SEP}{self.b}"

    @property
    def key(self) -> str:
        """The storage key: unambiguous, since ``:`` is not in the id alphabet."""
        return f"g:{self.a}" if self.kind == "group" else f"u:{self.a}:{self.b}"

    def has_participant(self, uid: str) -> bool:
        return self.kind == "user" and uid in (self.a, self.b)


def of_message(sender: str, receiver: str, receiver_type: str) -> Conversation:
    """The conversation a message from ``sender`` to ``receiver`` belongs to."""
    if receiver_type == "group":
        return Conversation("group", receiver)
    a, b = sorted((sender, receiver))
    return Conversation("user", a, b)


def conversation_id(sender: str, receiver: str, receiver_type: str) -> str:
    """The wire id: ``<uidA>_user_<uidB>`` with the uids sorted, or ``group_<guid>``."""
    return of_message(sender, receiver, receiver_type).wire_id


def conversation_key(sender: str, receiver: str, receiver_type: str) -> str:
    """The storage key of a message's conversation (see the module docstring)."""
    return of_message(sender, receiver, receiver_type).key


def readings(cid: str) -> list[Conversation]:
    """Every conversation whose wire id is ``cid``: the group first, then each pair."""
    found: list[Conversation] = []
    if cid.startswith(GROUP_PREFIX) and is_ident(cid[len(GROUP_PREFIX) :]):
        found.append(Conversation("group", cid[len(GROUP_PREFIX) :]))
    at = cid.find(USER_SEP)
    while at != -1:
        a, b = cid[:at], cid[at + len(USER_SEP) :]
        if is_ident(a) and is_ident(b) and a <= b:
            found.append(Conversation("user", a, b))
        at = cid.find(USER_SEP, at + 1)
    return found


def own_direct(cid: str, uid: str) -> Conversation | None:
    """The 1:1 conversation ``cid`` names for ``uid``, if ``uid`` is one of its two users.

    At most one pair reading of an id includes a given uid (the other reading would need a
    uid both longer than and sorted before ``uid`` with ``uid`` as its prefix).
    """
    for reading in readings(cid):
        if reading.has_participant(uid):
            return reading
    return None
