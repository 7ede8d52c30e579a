"""New-account probation (issue 15 item 4): a new user's first messages or first days are held
for review, or may not carry links and media.

``PUT /moderation/probation {"days", "messages", "mode"}`` (admins; staff read it): a user is on
probation while their account is younger than ``days`` days, or while they have sent fewer than
``messages`` messages (either, where set; both 0: off, the default). ``mode``:

- ``review``: a message the moderation would approve is held for review instead (the
  ``probation`` pseudo-rule; staff approve it as any held message). Messages a rule blocks are
  still blocked. Only messages the moderation covers are held.
- ``no_links_media``: a media message, or a text with a link, is refused with
  ``ERR_FORBIDDEN`` (``details.reason: "probation"``); plain text goes through as usual.

The count of sent messages is read from the store (bounded by ``messages``) until the user
graduates; graduates are remembered in memory (cleared when the settings change).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from moderation.types import Action, Match, Verdict, VerdictStatus
from server.clock import Clock
from server.errors import BadRequest, Forbidden
from server.models import User
from server.protocol import SendMessage
from server.storage.ports import MessageRepository, SanctionRepository
from server.storage.types import Audit

KEY = "probation"
MODES = ("review", "no_links_media")
RULE_ID = "probation"
RELOAD_EVERY = 5.0
#: A link as people write them: a scheme, ``www.``, or a domain with a common top-level part.
LINK_RE = re.compile(
    r"(?i)\b(?:https?://|www\.)\S+"
    r"|\b[a-z0-9][a-z0-9-]*\.(?:com|net|org|io|co|me|info|biz|ru|xyz|app|dev|link|ly|gg|tk|top)\b"
)
OFF: dict[str, Any] = {"days": 0, "messages": 0, "mode": "review"}


def parse(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", {})
    out = dict(OFF)
    for field, hi in (("days", 365), ("messages", 10_000)):
        value = body.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
            raise BadRequest(f"field '{field}' must be an integer 0-{hi}", {"field": field})
        out[field] = value
    mode = body.get("mode", "review")
    if mode not in MODES:
        raise BadRequest("field 'mode' must be review or no_links_media", {"field": "mode"})
    out["mode"] = mode
    return out


class Probation:
    def __init__(
        self,
        sanctions: SanctionRepository,
        messages: MessageRepository,
        user: Callable[[str], Any],
        *,
        clock: Clock,
    ) -> None:
        self._sanctions = sanctions
        self._messages = messages
        self._user = user  # async uid -> User | None (the users service's cache)
        self._clock = clock
        self._settings: dict[str, Any] = dict(OFF)
        self._loaded_at = -RELOAD_EVERY
        self._graduated: set[str] = set()

    def known_off(self) -> bool:
        """Probation is off and the setting was read within ``RELOAD_EVERY``: the per-send
        checks return at once, with no read (the default, on every message)."""
        fresh = time.monotonic() - self._loaded_at <= RELOAD_EVERY
        return fresh and not self._settings["days"] and not self._settings["messages"]

    async def settings(self) -> dict[str, Any]:
        loaded_at = self._loaded_at
        if time.monotonic() - loaded_at > RELOAD_EVERY:
            if loaded_at != -RELOAD_EVERY:
                # Marked first: the sends arriving while it reads use the settings held (the
                # first read of all is awaited by every send: nothing is held yet).
                self._loaded_at = time.monotonic()
            try:
                stored = await self._sanctions.get_setting(KEY)
            except BaseException:
                self._loaded_at = loaded_at  # the next send reads again
                raise
            self._settings = dict(stored) if isinstance(stored, dict) else dict(OFF)
            self._loaded_at = time.monotonic()
        return self._settings

    async def put(self, actor: str, body: object) -> dict[str, Any]:
        value = parse(body)
        await self._sanctions.put_setting(
            KEY, value, self._clock.now(), Audit(actor, "probation.update", KEY, value)
        )
        self._settings, self._loaded_at = value, time.monotonic()
        self._graduated.clear()
        return value

    async def _on_probation(
        self, user: User, settings: dict[str, Any], *, stored: bool = False
    ) -> bool:
        """Whether ``user`` is on probation for their next message (``stored``: for a message
        already stored, which the count then leaves out)."""
        days, messages = int(settings["days"]), int(settings["messages"])
        if (not days and not messages) or user.uid in self._graduated:
            return False
        if days and self._clock.now() - user.created_at < days * 86_400:
            return True
        if messages:
            earlier = await self._messages.sent_count(user.uid, messages + 1) - int(stored)
            if earlier < messages:
                return True
        self._graduated.add(user.uid)
        return False

    async def check_send(self, user: User, cmd: SendMessage) -> None:
        """``no_links_media``: refuse a media message or a link from a user on probation."""
        if self.known_off():
            return
        settings = await self.settings()
        if settings["mode"] != "no_links_media":
            return
        risky = cmd.media_id is not None or bool(cmd.text and LINK_RE.search(cmd.text))
        if risky and await self._on_probation(user, settings):
            raise Forbidden(
                "new accounts cannot send links or media yet",
                {"reason": "probation", "days": settings["days"], "messages": settings["messages"]},
            )

    async def apply(self, verdict: Verdict, sender: str, *, stored: bool = True) -> Verdict:
        """``review``: an approval of a sender on probation becomes a hold for review
        (``stored``: the message is in the store already, the pipeline's case)."""
        if verdict.status is not VerdictStatus.APPROVED or self.known_off():
            return verdict
        settings = await self.settings()
        if settings["mode"] != "review" or (not settings["days"] and not settings["messages"]):
            return verdict
        user = await self._user(sender)
        if user is None or not await self._on_probation(user, settings, stored=stored):
            return verdict
        hold = Match(
            RULE_ID,
            "New account probation",
            0,
            "new account: held for review while on probation",
            1.0,
            (Action.REVIEW,),
        )
        return Verdict(
            VerdictStatus.REVIEW,
            (hold, *verdict.matches),
            (Action.REVIEW, *(a for a in verdict.actions if a is not Action.REVIEW)),
            verdict.detections,
        )
