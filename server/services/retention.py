"""Retention (issue 15 item 7): how long messages are kept, per app and per group; the
conversations held from deletion; and the job that deletes what is past its period.

- The app's period applies to every conversation; a group may have its own (shorter or
  longer), or follow the app's. 0 keeps messages forever (the default).
- A hold (``legal_hold`` or ``pinned``) on a 1:1 or group conversation keeps all of it.
- The job runs every ``interval`` seconds (and on ``POST /retention/run``). It deletes uploads
  that no message carries ``upload_ttl`` seconds after they were uploaded (never sent: they
  would otherwise fill the disk), whatever the periods. In batches, oldest
  first, it deletes each expired message with its receipts, review entries, reports and its
  uploads (rows, then the encrypted files; a quarantined upload stays as evidence), and the
  outgoing webhooks' log past the app's period; then it empties the in-memory copies (the
  store's recent index, the moderation views) and compacts the database, so that nothing
  deleted stays in its files (SQLite). One audit record per run that deleted anything
  (``retention.run``), and one per change of the policy or a hold.

The audit log, decisions and appeals are not messages: they are kept (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from server.auth import Principal
from server.clock import Clock
from server.conversations import conversation_key
from server.errors import BadRequest, NotFound
from server.protocol import is_ident
from server.services.audit import actor_label
from server.services.contracts import GroupLookup
from server.storage.ports import AuditRepository, RetentionRepository
from server.storage.retention import APP, HoldRecord
from server.storage.types import Audit

log = logging.getLogger(__name__)

#: The longest period accepted: 100 years.
MAX_SECONDS = 100 * 366 * 86_400
HOLD_KINDS = ("legal_hold", "pinned")
BATCH = 500


def _seconds(value: object, *, nullable: bool) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SECONDS:
        allowed = "an integer 0-3162240000, or null" if nullable else "an integer 0-3162240000"
        raise BadRequest(
            f"field 'retentionSeconds' must be {allowed}", {"field": "retentionSeconds"}
        )
    return value


def _hold_json(hold: HoldRecord) -> dict[str, Any]:
    conversation: dict[str, Any]
    if hold.conv_key.startswith("g:"):
        conversation = {"type": "group", "groupId": hold.conv_key[2:]}
    else:
        conversation = {"type": "user", "uids": hold.conv_key[2:].split(":")}
    return {
        "holdId": hold.hold_id,
        "kind": hold.kind,
        "conversation": conversation,
        "reason": hold.reason,
        "by": hold.by,
        "at": hold.at,
    }


class RetentionService:
    def __init__(
        self,
        repo: RetentionRepository,
        audit: AuditRepository,
        groups: GroupLookup,
        remove_files: Callable[[Sequence[str]], Awaitable[None]],
        *,
        clock: Clock,
        forget: Sequence[Callable[[], None]] = (),
        interval: float = 3600.0,
        upload_ttl: int = 86_400,
    ) -> None:
        self._repo = repo
        self._audit = audit
        self._groups = groups
        self._remove_files = remove_files
        self._clock = clock
        #: In-memory copies of messages to drop after a run that deleted any.
        self._forget = forget
        self._interval = interval
        self._upload_ttl = upload_ttl
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.last_run: dict[str, Any] | None = None

    # ------------------------------------------------------------------ policy

    async def policy(self) -> dict[str, Any]:
        """``GET /retention``: the periods, the holds and the last run of this process."""
        periods = await self._repo.periods()
        return {
            "retentionSeconds": periods.get(APP, 0),
            "groups": [
                {"groupId": scope[2:], "retentionSeconds": seconds}
                for scope, seconds in sorted(periods.items())
                if scope.startswith("g:")
            ],
            "holds": [_hold_json(h) for h in await self._repo.holds()],
            "intervalSeconds": self._interval,
            "lastRun": self.last_run,
        }

    async def set_app(self, actor: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        seconds = _seconds(body.get("retentionSeconds"), nullable=False)
        assert seconds is not None
        await self._set(actor, APP, seconds)
        return await self.policy()

    async def set_group(
        self, actor: Principal, guid: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        if "retentionSeconds" not in body:
            raise BadRequest("field 'retentionSeconds' is required", {"field": "retentionSeconds"})
        seconds = _seconds(body.get("retentionSeconds"), nullable=True)
        if await self._groups.group(guid) is None:
            raise NotFound(f"group {guid!r} not found", {"guid": guid})
        await self._set(actor, f"g:{guid}", seconds)
        return {"groupId": guid, "retentionSeconds": seconds}

    async def _set(self, actor: Principal, scope: str, seconds: int | None) -> None:
        at = self._clock.now()
        audit = Audit(actor_label(actor), "retention.update", scope, {"retentionSeconds": seconds})
        await self._repo.set_period(scope, seconds, audit, at)

    # ------------------------------------------------------------------ holds

    async def add_hold(self, actor: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        kind = body.get("kind", "legal_hold")
        if kind not in HOLD_KINDS:
            raise BadRequest("field 'kind' must be legal_hold or pinned", {"field": "kind"})
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 1000:
            raise BadRequest("field 'reason' must be a string of 0-1000 characters",
                             {"field": "reason"})  # fmt: skip
        guid, uids = body.get("groupId"), body.get("uids")
        if (guid is None) == (uids is None):
            raise BadRequest(
                "name the conversation: 'groupId', or 'uids' (the two users of a 1:1)",
                {"field": "groupId"},
            )
        if guid is not None:
            if not isinstance(guid, str) or not is_ident(guid):
                raise BadRequest("field 'groupId' must be a group id", {"field": "groupId"})
            if await self._groups.group(guid) is None:
                raise NotFound(f"group {guid!r} not found", {"guid": guid})
            key = conversation_key("", guid, "group")
        else:
            if (
                not isinstance(uids, list)
                or len(uids) != 2
                or not all(isinstance(u, str) and is_ident(u) for u in uids)
                or uids[0] == uids[1]
            ):
                raise BadRequest("field 'uids' must be two different user ids", {"field": "uids"})
            key = conversation_key(uids[0], uids[1], "user")
        at = self._clock.now()
        hold = HoldRecord("h_" + secrets.token_hex(8), key, kind, reason, actor_label(actor), at)
        audit = Audit(hold.by, "retention.hold", key, {"holdId": hold.hold_id, "kind": kind})
        await self._repo.add_hold(hold, audit)
        return _hold_json(hold)

    async def remove_hold(self, actor: Principal, hold_id: str) -> None:
        at = self._clock.now()
        audit = Audit(actor_label(actor), "retention.release", hold_id, {})
        if not await self._repo.remove_hold(hold_id, audit, at):
            raise NotFound("no such hold", {"holdId": hold_id})

    # ------------------------------------------------------------------ the job

    async def run(self, actor: str = "retention") -> dict[str, Any]:
        """Delete everything past its period now; what was deleted. One run at a time."""
        async with self._lock:
            return await self._run(actor)

    async def _run(self, actor: str) -> dict[str, Any]:
        now = self._clock.now()
        messages = media = 0
        while True:
            ids = await self._repo.expired(now, BATCH)
            if not ids:
                break
            deleted = await self._repo.delete_messages(ids, now)
            messages += deleted.messages
            media += len(deleted.media)
            # The rows went first: a crash now leaves files no row names, never the reverse.
            await self._remove_files(deleted.media)
            if len(ids) < BATCH:
                break
        uploads = 0
        while True:
            orphans = await self._repo.orphan_uploads(now - self._upload_ttl, BATCH)
            if not orphans:
                break
            gone = await self._repo.delete_uploads(orphans, now)
            uploads += len(gone)
            await self._remove_files(gone)
            if len(orphans) < BATCH:
                break
        periods = await self._repo.periods()
        deliveries = 0
        if periods.get(APP, 0) > 0:
            deliveries = await self._repo.delete_deliveries(now - periods[APP], now)
        if messages or deliveries or uploads:
            for forget in self._forget:
                forget()
            self._repo.forget()
            await self._repo.compact()
            await self._audit.add_audit(
                Audit(
                    actor,
                    "retention.run",
                    "messages",
                    {
                        "messages": messages,
                        "media": media,
                        "unsentUploads": uploads,
                        "webhookDeliveries": deliveries,
                    },
                ),
                now,
            )
        self.last_run = {
            "at": now,
            "messages": messages,
            "media": media,
            "unsentUploads": uploads,
            "webhookDeliveries": deliveries,
        }
        return self.last_run

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run()
            except Exception:
                log.exception("the retention job failed; it runs again in %s s", self._interval)
