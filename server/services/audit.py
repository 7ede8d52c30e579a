"""The audit log as admins read it, and how an actor is named in it."""

from __future__ import annotations

from server.auth import Principal
from server.storage.ports import AuditRepository
from server.storage.types import AuditEntry


def actor_label(actor: Principal) -> str:
    """The actor as audit records and events name it."""
    if actor.label:
        return actor.label
    return "api-key" if actor.is_api_key else (actor.uid or "?")


class AuditLog:
    """Reads the audit log (the route admits admins and the API key only)."""

    def __init__(self, store: AuditRepository) -> None:
        self._store = store

    async def entries(self, since: int, limit: int = 1000) -> list[AuditEntry]:
        """Records from ``since`` (Unix seconds), oldest first."""
        return await self._store.audit_since(since, limit)

    async def of_group(self, guid: str, since: int, *, scan: int = 5000) -> list[AuditEntry]:
        """The records that concern group ``guid`` (its own changes, its members, kicks and
        bans, decisions scoped to it), from ``since``, among the next ``scan`` records."""
        scope = f"group:{guid}"
        return [
            e
            for e in await self._store.audit_since(since, scan)
            if e.target == guid or e.details.get("guid") == guid or e.details.get("scope") == scope
        ]
