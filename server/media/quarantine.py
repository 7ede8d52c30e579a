"""Quarantine of known-bad images (issue 12 item 7): what a match of an ``image_hash`` rule does
to the upload, and the admin's deletion of an upload.

When a verdict disapproves a media message because a rule with a disapproving action
(``block``, ``kick``, ``ban``, ``block_user``) matched an ``image_hash`` condition, its upload
is quarantined: the row is marked (``quarantined_at``), the encrypted blob and thumbnail stay
on disk as evidence, and no link serves them any more, to anyone, the sender included (403,
``details.reason: quarantined``). The change is audited (``media.quarantine`` by
``moderation:<rule id>``) and the ``media.quarantined`` webhook event fires with the media id,
message id, uploader, rule, list and distance in bits.

A person may overturn it: when a moderator approves the message, or upholds the sender's
appeal against its disapproval, the quarantine is lifted (audited ``media.release`` by that
person; webhook event ``media.released``) and the receivers get the message with its link.
An erased account's quarantined uploads stay as evidence (see ``MediaService.erase``).

Only an admin (or the API key) deletes it: ``DELETE /api/v1/media/{mediaId}``, audited as
``media.delete``. The message itself stays disapproved, and its attachment then names media
that is gone.
"""

from __future__ import annotations

import logging
from typing import Any

from moderation.detectors.image_hash import parse_reason
from moderation.types import DISAPPROVING, Verdict, VerdictStatus
from server.clock import Clock
from server.media.service import MEDIA_ID_RE, MediaService
from server.models import Message
from server.services.contracts import EventSink
from server.storage.ports import AuditRepository
from server.storage.types import Audit

log = logging.getLogger(__name__)

EVENT = "media.quarantined"
RELEASED = "media.released"


def known_image_match(verdict: Verdict) -> dict[str, Any] | None:
    """The rule, list and distance of the first disapproving match of an ``image_hash``
    condition in ``verdict``, or None."""
    if verdict.status is not VerdictStatus.DISAPPROVED:
        return None
    for match in verdict.matches:
        if not any(a in DISAPPROVING for a in match.actions):
            continue
        found = parse_reason(match.reason)
        if found is not None:
            list_id, distance = found
            return {"ruleId": match.rule_id, "listId": list_id, "distance": distance}
    return None


class MediaQuarantine:
    """Quarantines the upload of a message disapproved as a known-bad image; deletes uploads."""

    def __init__(
        self, media: MediaService, audit: AuditRepository, events: EventSink, *, clock: Clock
    ) -> None:
        self._media = media
        self._audit = audit
        self._events = events
        self._clock = clock

    async def after_verdict(self, message: Message, verdict: Verdict) -> None:
        """Called by ``Outcomes`` once a disapproval is stored; never raises (logged)."""
        try:
            await self._after_verdict(message, verdict)
        except Exception:
            log.exception("quarantining the media of message %d failed", message.id)

    async def _after_verdict(self, message: Message, verdict: Verdict) -> None:
        media_id = (message.attachment or {}).get("mediaId")
        if not isinstance(media_id, str) or not MEDIA_ID_RE.fullmatch(media_id):
            return
        hit = known_image_match(verdict)
        if hit is None or not await self._media.quarantine(media_id):
            return  # not a known image, or gone, or quarantined already (idempotent)
        details = {"mediaId": media_id, "messageId": message.id, "uploader": message.sender, **hit}
        await self._audit.add_audit(
            Audit(f"moderation:{hit['ruleId']}", "media.quarantine", media_id, details),
            self._clock.now(),
        )
        self._events.emit(EVENT, details)

    async def after_approval(self, message: Message, actor: str) -> None:
        """Called by ``VerdictService`` when a message with media is approved; a person's
        approval (never a rule's: a rule cannot approve what a known-bad list disapproved)
        lifts the quarantine of its upload. Idempotent."""
        media_id = (message.attachment or {}).get("mediaId")
        if not isinstance(media_id, str) or not MEDIA_ID_RE.fullmatch(media_id):
            return
        if not await self._media.release(media_id):
            return  # not quarantined (the usual case), or gone
        details = {"mediaId": media_id, "messageId": message.id, "uploader": message.sender}
        await self._audit.add_audit(
            Audit(actor, "media.release", media_id, details), self._clock.now()
        )
        self._events.emit(RELEASED, {**details, "by": actor})

    async def delete(self, media_id: str, *, actor: str) -> None:
        """Delete an upload (row, encrypted blob and thumbnail) and audit it; 404 if unknown."""
        media = await self._media.delete(media_id)
        await self._audit.add_audit(
            Audit(
                actor,
                "media.delete",
                media.id,
                {
                    "uploader": media.uploader,
                    "attachedTo": media.attached_to,
                    "quarantined": bool(media.quarantined_at),
                },
            ),
            self._clock.now(),
        )
