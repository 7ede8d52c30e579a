"""The inbox (a user's conversations, newest first) and the user directory (issue 16).

Pure parts first: the cursor format and the merge of the two kinds of heads. The heads come
from storage, where the database keeps them exact in the commit of every write that moves
them (``server/storage/*/inbox_schema.py``), so a page costs four index-backed reads: the
1:1 heads below the cursor, the caller's groups, the page's last messages, its unread counts.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from server.auth import Principal
from server.conversations import Conversation
from server.errors import BadRequest
from server.models import Message, User
from server.storage.inbox import ConversationHead, InboxPosition, ascii_lower
from server.storage.ports import DirectoryRepository, InboxRepository

#: Who plain users find in the directory: ``all`` users, or only those they share a group
#: with (the default). Staff and the API key always search everyone.
DIRECTORY_SCOPES = ("all", "shared_groups")

_KEY_RE = re.compile(r"\A(?:g:[A-Za-z0-9_-]{1,100}|u:[A-Za-z0-9_-]{1,100}:[A-Za-z0-9_-]{1,100})\Z")

#: Renders a message for a viewer (a media attachment's link is signed for them).
Render = Callable[[Message, str | None], Awaitable[dict[str, Any]]]


def encode_cursor(position: InboxPosition) -> str:
    """An opaque ``before`` value: the position of a page's last conversation."""
    at, last_id, key = position
    return base64.urlsafe_b64encode(f"{at}:{last_id}:{key}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> InboxPosition:
    """The position ``encode_cursor`` wrote; 400 (field ``before``) for anything else."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        at, last_id, key = text.split(":", 2)
        position = (int(at), int(last_id), key)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("malformed cursor 'before'", {"field": "before"}) from None
    if not (0 <= position[0] < 2**62 and 0 <= position[1] < 2**62 and _KEY_RE.match(key)):
        raise BadRequest("malformed cursor 'before'", {"field": "before"})
    return position


def merge_page(
    direct: Sequence[ConversationHead],
    groups: Sequence[ConversationHead],
    *,
    before: InboxPosition | None,
    limit: int,
) -> tuple[list[ConversationHead], bool]:
    """The newest ``limit`` heads below ``before`` from both kinds, and whether more remain.

    ``direct`` must already be the newest ``limit + 1`` 1:1 heads below ``before``.
    """
    mine = [h for h in groups if before is None or h.position < before]
    merged = sorted([*direct, *mine], key=lambda h: h.position, reverse=True)
    return merged[:limit], len(merged) > limit


def wire_id(uid: str, head: ConversationHead) -> str:
    """The conversation id clients know (PROTOCOL.md), from the viewer's side."""
    if head.kind == "group":
        return Conversation("group", head.peer).wire_id
    a, b = sorted((uid, head.peer))
    return Conversation("user", a, b).wire_id


class InboxService:
    """``GET /me/conversations``: the caller's conversations as they may see them."""

    def __init__(
        self,
        inbox: InboxRepository,
        *,
        render: Render,
        hidden: Callable[[Message], bool] | None = None,
    ) -> None:
        self._inbox = inbox
        self._render = render
        self._hidden = hidden

    async def conversations(
        self, user: User, *, limit: int, before: InboxPosition | None
    ) -> dict[str, Any]:
        """A page of the inbox, newest first, with ``next`` (the ``before`` of the next page,
        or null at the end)."""
        uid = user.uid
        direct = await self._inbox.direct_heads(uid, below=before, limit=limit + 1)
        groups = await self._inbox.group_heads(uid)
        page, more = merge_page(direct, groups, before=before, limit=limit)
        ids = [h.last_id for h in page if h.last_id]
        found = {m.id: m for m in await self._inbox.messages_by_ids(ids)}
        unread = await self._inbox.unread_counts(uid, [h.key for h in page])
        items = []
        for head in page:
            message = found.get(head.last_id)
            # The heads are exact when committed (shadow bans included); this re-check guards
            # a read that raced a verdict or a new shadow ban: a message is never shown to
            # someone who may not see it.
            if message is not None and message.sender != uid and not self._shown(message):
                message = None
            items.append(
                {
                    "conversationId": wire_id(uid, head),
                    "conversationType": head.kind,
                    "with": head.peer,
                    "lastMessage": None if message is None else await self._render(message, uid),
                    "unreadCount": unread.get(head.key, 0),
                    "updatedAt": head.at,
                }
            )
        return {
            "conversations": items,
            "next": encode_cursor(page[-1].position) if more and page else None,
        }

    def _shown(self, message: Message) -> bool:
        """Whether others than its sender may see ``message``."""
        if not message.status.deliverable:
            return False
        return self._hidden is None or not self._hidden(message)


def public_profile(user: User) -> dict[str, Any]:
    """What any user may learn of another: no tags, metadata or ban state."""
    return {"uid": user.uid, "name": user.name, "role": user.role, "createdAt": user.created_at}


class DirectoryService:
    """``GET /users?search=``: find users to start a chat with."""

    def __init__(self, directory: DirectoryRepository, *, scope: str) -> None:
        if scope not in DIRECTORY_SCOPES:
            raise ValueError(f"directory scope must be one of {DIRECTORY_SCOPES}, not {scope!r}")
        self._directory = directory
        self._scope = scope

    async def search(
        self, actor: Principal, *, search: str, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """Live users whose uid or name starts with ``search`` (ASCII case-insensitive), by
        uid; plain users see the directory scope, staff and the API key everyone. The caller
        is not listed. ``next`` is the ``cursor`` of the next page, or null at the end."""
        staff = actor.is_staff
        found = await self._directory.search_users(
            ascii_lower(search),
            after=cursor,
            limit=limit + 1,
            sharing_with=None if staff or self._scope == "all" else actor.uid,
            exclude=actor.uid,
        )
        page = found[:limit]
        return {
            "users": [u.to_json() if staff else public_profile(u) for u in page],
            "next": page[-1].uid if len(found) > limit else None,
        }
