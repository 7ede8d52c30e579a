"""Rules (with revisions), word lists and moderation settings as moderators change them.

Each write is validated once (``moderation.rules`` for rules and lists, ``settings.py`` for
settings), stored with its audit record, and rebuilds the engine.
"""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from typing import Any

from moderation.defaults import default_rules
from moderation.errors import RuleError
from moderation.rules import Rule, WordList, list_to_json, parse_list, parse_rule, rule_to_json
from server.clock import Clock
from server.errors import BadRequest, Conflict, NotFound
from server.moderation_service.gate import SEEDED_SETTINGS, ModerationService
from server.moderation_settings import ModerationSettings
from server.storage.ports import ModerationRepository

SLUG_RE = re.compile(r"[^a-z0-9]+")


def slug(name: str) -> str:
    """An id made from a name (random when the name has no letters or digits)."""
    made = SLUG_RE.sub("-", name.lower()).strip("-")[:60]
    return made or uuid.uuid4().hex[:12]


class ModerationAdmin:
    """Reads and writes rules, lists and settings; every write reloads the gate's engine."""

    def __init__(
        self, store: ModerationRepository, gate: ModerationService, *, clock: Clock
    ) -> None:
        self._store = store
        self._gate = gate
        self._clock = clock

    # ----------------------------------------------------------------- rules

    def validate_rule(self, body: object) -> Rule:
        """``body`` as a rule, or BadRequest naming the field."""
        try:
            rule = parse_rule(body, known_lists=self._gate.list_ids())
        except RuleError as exc:
            raise BadRequest(exc.message, {"field": exc.field}) from exc
        if (
            rule.enabled
            and not self._gate.openai_available
            and any(c.kind == "openai" for c in rule.conditions)
        ):
            raise BadRequest(
                "an openai rule can be enabled only once an OpenAI API key is configured"
                " (PARLEY_OPENAI_API_KEY, OPENAI_API_KEY or openai.key in the data dir)",
                {"field": "enabled"},
            )
        return rule

    async def rules(self) -> list[dict[str, Any]]:
        return await self._store.rules()

    async def rule(self, rule_id: str) -> dict[str, Any]:
        found = await self._store.rule(rule_id)
        if found is None:
            raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id})
        return found

    async def revisions(self, rule_id: str) -> list[dict[str, Any]]:
        revs = await self._store.rule_revisions(rule_id)
        if not revs:
            raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id})
        return revs

    async def create_rule(self, body: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """A new rule (its id made from its name when absent); Conflict if the id is taken."""
        body.setdefault("id", slug(str(body.get("name") or "")))
        rule = self.validate_rule(body)
        try:
            stored = await self._store.put_rule(
                rule_to_json(rule), actor=actor, at=self._clock.now(), create=True
            )
        except KeyError as exc:
            raise Conflict(f"rule {rule.id!r} already exists", {"ruleId": rule.id}) from exc
        await self._gate.reload()
        return stored

    async def replace_rule(
        self, rule_id: str, body: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """A new revision of the rule ``rule_id``."""
        if body.get("id", rule_id) != rule_id:
            raise BadRequest("field 'id' does not match the URL", {"field": "id"})
        body["id"] = rule_id
        rule = self.validate_rule(body)
        try:
            stored = await self._store.put_rule(
                rule_to_json(rule), actor=actor, at=self._clock.now(), create=False
            )
        except LookupError as exc:
            raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id}) from exc
        await self._gate.reload()
        return stored

    async def delete_rule(self, rule_id: str, *, actor: str) -> None:
        if not await self._store.delete_rule(rule_id, actor=actor, at=self._clock.now()):
            raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id})
        await self._gate.reload()

    async def rule_for_dry_run(self, rule_id: str, body: dict[str, Any] | None) -> Rule:
        """The rule to try: ``body`` (a draft) or the stored rule, enabled, under ``rule_id``."""
        found = body or await self._store.rule(rule_id)
        if found is None:
            raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id})
        return self.validate_rule({**found, "id": rule_id, "enabled": True})

    # ----------------------------------------------------------------- shipped defaults

    @staticmethod
    def _shipped() -> dict[str, dict[str, Any]]:
        """The rules a fresh server starts with (``moderation.defaults``), by id."""
        return {str(r["id"]): copy.deepcopy(r) for r in default_rules()}

    async def defaults(self) -> dict[str, Any]:
        """The rules and settings a fresh server of this version starts with, each rule with
        how the stored one compares (``same``, ``changed`` or ``missing``): what an upgraded
        deployment, which keeps its own rules, would adopt by resetting them."""
        known = self._gate.list_ids()
        stored_rules = {str(r["id"]): r for r in await self._store.rules()}
        out: list[dict[str, Any]] = []
        for rule_id, body in self._shipped().items():
            parsed = parse_rule(body, known_lists=None)
            shipped = rule_to_json(parsed)
            stored = stored_rules.get(rule_id)
            if stored is None:
                state = "missing"
            else:
                state = "same" if _editable(stored) == _editable(shipped) else "changed"
            missing_lists = sorted({c.list_id for c in parsed.conditions if c.list_id} - known)
            out.append({"rule": _editable(shipped), "stored": state, "missingLists": missing_lists})
        return {"rules": out, "settings": dict(SEEDED_SETTINGS)}

    async def reset_rule(self, rule_id: str, *, actor: str) -> tuple[dict[str, Any], bool]:
        """The shipped default ``rule_id`` stored again: a new revision of the stored rule, or
        the rule created when it was deleted (True). NotFound if no default has that id."""
        body = self._shipped().get(rule_id)
        if body is None:
            raise NotFound(
                f"rule {rule_id!r} is not one of the shipped default rules", {"ruleId": rule_id}
            )
        if await self._store.rule(rule_id) is None:
            return await self.create_rule(body, actor=actor), True
        return await self.replace_rule(rule_id, body, actor=actor), False

    # ----------------------------------------------------------------- lists

    @staticmethod
    def validate_list(body: object) -> WordList:
        try:
            return parse_list(body)
        except RuleError as exc:
            raise BadRequest(exc.message, {"field": exc.field}) from exc

    async def lists(self) -> list[dict[str, Any]]:
        return await self._store.lists()

    async def get_list(self, list_id: str) -> dict[str, Any]:
        found = await self._store.get_list(list_id)
        if found is None:
            raise NotFound(f"list {list_id!r} not found", {"listId": list_id})
        return found

    async def create_list(self, body: dict[str, Any], *, actor: str) -> dict[str, Any]:
        body.setdefault("id", slug(str(body.get("name") or "")))
        # Compiling and shape-checking up to 500 patterns can take a second: off the loop.
        wl = await asyncio.to_thread(self.validate_list, body)
        try:
            stored = await self._store.put_list(
                list_to_json(wl), actor=actor, at=self._clock.now(), create=True
            )
        except KeyError as exc:
            raise Conflict(f"list {wl.id!r} already exists", {"listId": wl.id}) from exc
        await self._gate.reload()
        return stored

    async def replace_list(
        self, list_id: str, body: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        if body.get("id", list_id) != list_id:
            raise BadRequest("field 'id' does not match the URL", {"field": "id"})
        wl = await asyncio.to_thread(self.validate_list, {**body, "id": list_id})
        try:
            stored = await self._store.put_list(
                list_to_json(wl), actor=actor, at=self._clock.now(), create=False
            )
        except LookupError as exc:
            raise NotFound(f"list {list_id!r} not found", {"listId": list_id}) from exc
        await self._gate.reload()
        return stored

    async def delete_list(self, list_id: str, *, actor: str) -> None:
        """Delete a list no rule uses (Conflict naming the rules otherwise)."""
        users = self._gate.rules_using_list(list_id)
        if users:
            raise Conflict(f"list {list_id!r} is used by rules {users}", {"rules": users})
        if not await self._store.delete_list(list_id, actor=actor, at=self._clock.now()):
            raise NotFound(f"list {list_id!r} not found", {"listId": list_id})
        await self._gate.reload()

    # ----------------------------------------------------------------- settings

    async def settings(self) -> dict[str, Any]:
        """The settings as the API shows them (secrets masked)."""
        current = ModerationSettings.from_json(await self._store.settings())
        return current.public_json(openai_key=self._gate.openai_available)

    async def put_settings(self, body: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """Validate ``body`` over the stored settings, store them, reload; as shown."""
        stored = await self._store.settings()
        updated = ModerationSettings.from_json(stored).updated(body)
        await self._store.put_settings(updated.to_json(), actor=actor, at=self._clock.now())
        await self._gate.reload()
        return updated.public_json(openai_key=self._gate.openai_available)


def _editable(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's body without what the store adds (revision and timestamps)."""
    return {k: v for k, v in rule.items() if k not in ("revision", "createdAt", "updatedAt")}
