"""The moderation pipeline in the server: the ModerationGate the chat service sends through.

Pending messages become jobs on ``moderation.pipeline.Pipeline`` (bounded, never dropping).
A worker loads the conversation context and the sender's recent messages, asks the pure
``moderation.engine.Engine`` for a verdict, and hands it to ``ChatService.apply_verdict``
together with the audit record and any review-queue entry, in one transaction. Rule and list
changes rebuild the engine; messages in flight finish with the engine they started with.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from moderation.defaults import default_lists, default_rules
from moderation.detectors.base import Detector
from moderation.engine import Engine, default_detectors
from moderation.errors import RuleError
from moderation.pipeline import Pipeline
from moderation.providers.guard import ProviderCall
from moderation.providers.webhook import view_json
from moderation.rules import (
    MAX_CONTEXT_WINDOW,
    Rule,
    WordList,
    parse_list,
    parse_rule,
    rule_to_json,
)
from moderation.types import Action, MessageView, ReceiverView, UserView, Verdict, VerdictStatus
from server.auth import Principal, Role
from server.errors import BadRequest, Conflict, NotFound
from server.metrics import Metrics
from server.models import Message, Moderation, Status, User
from server.providers import PROVIDER_KINDS, Providers
from server.storage.ports import (
    AuditRepository,
    MessageRepository,
    ModerationRepository,
    Transaction,
    TxOp,
)
from server.storage.types import Audit, Delivery, NewMessage
from server.webhooks import WebhookSender

if TYPE_CHECKING:
    from server.chat import ChatService

log = logging.getLogger(__name__)

SENDER_WINDOW_SECONDS = 600
#: The sender's recent messages given to spam behaviour detectors (repeats, bursts): enough for
#: the default limits (3 conversations, 8 messages in a burst) with room for custom rules.
SENDER_RECENT_LIMIT = 20
#: Views of context and recent messages kept between evaluations (FIFO).
NEIGHBOUR_VIEWS = 20_000
ACTOR = "moderation"


#: The id a message is judged under before the store assigns one: above every stored id, so
#: context reads ("messages before this one") see the whole conversation.
UNSTORED_ID = 2**62


def _now() -> int:
    return int(time.time())


class ModerationService:
    """Implements ``ModerationGate``; owns the engine, the pipeline and the defaults."""

    def __init__(
        self,
        store: MessageRepository,
        mstore: ModerationRepository,
        metrics: Metrics,
        *,
        audit: AuditRepository,
        workers: int,
        queue_size: int,
        context_window: int,
        enabled: bool = True,
        detectors: Mapping[str, Detector] | None = None,
        providers: Providers | None = None,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        # External providers (custom_api, openai) are (re)built from settings in reload();
        # outgoing webhooks get the moderation events.
        self.providers = providers
        self.webhooks = webhooks
        self._inflight: dict[int, Message] = {}
        self._neighbours: OrderedDict[tuple[int, int], MessageView] = OrderedDict()
        self._load_window = context_window
        self._load_recent = True
        # Built once: detectors may hold models and per-user state; engines are rebuilt on
        # every rule change and share these instances.
        self.detectors: dict[str, Detector] = (
            default_detectors() if detectors is None else dict(detectors)
        )
        self.mstore = mstore
        self._metrics = metrics
        self._enabled = enabled
        self._default_window = context_window
        self._context_window = context_window
        self.engine = Engine([], {}, self.detectors, context_window=context_window)
        self.rules: dict[str, Rule] = {}
        self.lists: dict[str, WordList] = {}
        self.pipeline: Pipeline[tuple[Message, Verdict | None]] = Pipeline(
            self._handle, workers=workers, maxsize=queue_size, name="moderation"
        )
        self._chat: ChatService | None = None
        self._started_at: dict[int, float] = {}

    def bind(self, chat: ChatService) -> None:
        """The chat service that applies verdicts (built after this gate)."""
        self._chat = chat

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Seed defaults on first start, build the engine, start workers, re-queue pending."""
        if not await self.mstore.has_any_rule_history():
            at = _now()
            for lst in default_lists():
                if await self.mstore.get_list(str(lst["id"])) is None:
                    await self.mstore.put_list(dict(lst), actor="system", at=at, create=True)
            known = {str(lst["id"]) for lst in await self.mstore.lists()}
            for body in default_rules():
                # Stored in the same normalised shape as rules created through the API.
                rule = rule_to_json(parse_rule(body, known_lists=known))
                await self.mstore.put_rule(rule, actor="system", at=at, create=True)
        await self.reload()
        await self.pipeline.start()
        requeued = 0
        in_review = {item.message_id for item in await self.mstore.queue("review", limit=1_000_000)}
        for message_id in await self._store.pending_ids():
            if message_id in in_review:
                continue
            message = await self._store.get_message(message_id)
            if message is not None:
                await self.pipeline.submit((message, None))
                requeued += 1
        if requeued:
            log.info("re-queued %d pending messages", requeued)

    async def stop(self) -> None:
        await self.pipeline.stop()
        if self.providers is not None:
            await self.providers.aclose()

    async def reload(self) -> None:
        """Rebuild the engine from the stored rules, lists and settings."""
        lists: dict[str, WordList] = {}
        for body in await self.mstore.lists():
            try:
                # Lists are checked in full when written; a check added later (pattern
                # shapes and counts) must not drop a stored list and the rules naming it.
                wl = parse_list(body, stored=True)
            except RuleError:
                log.exception("stored list %s is invalid; skipped", body.get("id"))
                continue
            lists[wl.id] = wl
        rules: dict[str, Rule] = {}
        for body in await self.mstore.rules():
            try:
                rule = parse_rule(body, known_lists=lists.keys())
            except RuleError:
                log.exception("stored rule %s is invalid; skipped", body.get("id"))
                continue
            rules[rule.id] = rule
        settings = await self.mstore.settings()
        window = settings.get("contextWindow", self._default_window)
        self._context_window = window if isinstance(window, int) else self._default_window
        if self.providers is not None:
            for kind in PROVIDER_KINDS:
                self.detectors.pop(kind, None)
            self.detectors.update(self.providers.configure(settings))
            api_window = self.providers.custom_api_window(settings)
            if api_window is not None:
                rules = {k: _with_window(r, "custom_api", api_window) for k, r in rules.items()}
        if self.webhooks is not None:
            self.webhooks.configure(settings.get("webhooks"))
        self.rules, self.lists = rules, lists
        self.engine = Engine(
            list(rules.values()), lists, self.detectors, context_window=self._context_window
        )
        # Load per message only what the enabled rules' detectors read.
        self._load_window = self.engine.context_needed()
        self._load_recent = self.engine.sender_recent_needed()

    # ----------------------------------------------------------------- the gate

    def covers(self, category: str, message_type: str) -> bool:
        return self._enabled and self.engine.covers(category, message_type)

    async def submit(self, message: Message, verdict: Verdict | None = None) -> None:
        self._started_at[message.id] = time.monotonic()
        await self.pipeline.submit((message, verdict))

    async def judge_inline(self, new: NewMessage) -> Verdict | None:
        """Judge ``new`` before it is stored when the rules on its type all run inline.

        A clean verdict (no rule matched) lets the caller store the message approved and
        deliver it after the one commit. Any other verdict comes back with the message through
        ``submit``, where review, flags, side actions and audit records are applied. None when
        a rule on the type needs a model or a provider: the message is judged in the pipeline.
        """
        engine = self.engine
        if not self._enabled or not engine.inline_for(new.category, new.type):
            return None
        started = time.monotonic()
        view, context, recent = await self.views(new.as_message(UNSTORED_ID))
        verdict = await engine.evaluate(view, context=context, sender_recent=recent)
        if verdict.clean:
            self._metrics.verdicts.labels(Status.APPROVED.value).inc()
            self._metrics.moderation_latency.observe(time.monotonic() - started)
        return verdict

    # ----------------------------------------------------------------- views

    async def views(
        self, message: Message, *, everything: bool = False
    ) -> tuple[MessageView, list[MessageView], list[MessageView]]:
        """The engine's view of a message, its conversation context and the sender's recent
        ones: as much of each as the enabled rules read, or all of it (``everything``, for
        dry runs of rules that may not be enabled)."""
        cache: dict[str, Any] = {}
        view = await self._view(message, cache)
        window = MAX_CONTEXT_WINDOW if everything else self._load_window
        context_rows = (
            await self._store.recent(message.conversation_key, before=message.id, limit=window)
            if window > 0
            else []
        )
        recent_rows = (
            await self._store.recent_of_sender(
                message.sender,
                since=message.sent_at - SENDER_WINDOW_SECONDS,
                limit=SENDER_RECENT_LIMIT,
            )
            if everything or self._load_recent
            else []
        )
        context = await self._neighbour_views(context_rows, cache)
        recent = await self._neighbour_views([m for m in recent_rows if m.id != message.id], cache)
        return view, context, recent

    async def _neighbour_views(
        self, messages: Sequence[Message], cache: dict[str, Any]
    ) -> list[MessageView]:
        """Views of context or recent messages, kept while each message does not change.

        The same neighbours are viewed again for every new message of a conversation or
        sender. Their sender and receiver views may lag a later profile change; the engine's
        filters only look at the message being judged, whose view is always fresh.
        """
        views: list[MessageView] = []
        for message in messages:
            key = (message.id, message.updated_at)
            view = self._neighbours.get(key)
            if view is None:
                view = await self._view(message, cache)
                self._neighbours[key] = view
                if len(self._neighbours) > NEIGHBOUR_VIEWS:
                    self._neighbours.popitem(last=False)
            views.append(view)
        return views

    async def _view(self, message: Message, cache: dict[str, Any]) -> MessageView:
        assert self._chat is not None
        key = "u:" + message.sender
        if key not in cache:
            cache[key] = user_view(await self._chat.user(message.sender), message.sender)
        rkey = f"r:{message.receiver_type}:{message.receiver}"
        if rkey not in cache:
            cache[rkey] = await self.receiver_view(message.receiver, message.receiver_type)
        return MessageView(
            id=message.id,
            conversation_id=message.conversation_id,
            category=message.category,
            message_type=message.type,
            text=message.text,
            data=message.data,
            sender=cache[key],
            receiver=cache[rkey],
            sent_at=message.sent_at,
        )

    async def receiver_view(self, receiver: str, receiver_type: str) -> ReceiverView:
        assert self._chat is not None
        if receiver_type == "group":
            try:
                group = await self._chat.require_group(receiver)
            except NotFound:
                return ReceiverView("group", receiver, receiver, (), None, 0)
            return ReceiverView(
                "group", group.guid, group.name, group.tags, group.type, group.created_at
            )
        user = await self._chat.user(receiver)
        if user is None:
            return ReceiverView("user", receiver, receiver, (), None, 0)
        return ReceiverView("user", user.uid, user.name, user.tags, None, user.created_at)

    # ----------------------------------------------------------------- the worker

    async def _handle(self, job: tuple[Message, Verdict | None]) -> None:
        message, verdict = job
        if verdict is None:
            view, context, recent = await self.views(message)
            self._inflight[message.id] = message
            try:
                verdict = await self.engine.evaluate(view, context=context, sender_recent=recent)
            finally:
                self._inflight.pop(message.id, None)
        await self.apply(message, verdict)
        started = self._started_at.pop(message.id, None)
        if started is not None:
            self._metrics.moderation_latency.observe(time.monotonic() - started)

    async def apply(self, message: Message, verdict: Verdict) -> None:
        """Turn an engine verdict into a stored status, queue entries, events and side actions."""
        assert self._chat is not None
        chat = self._chat
        first = verdict.matches[0] if verdict.matches else None
        details: dict[str, Any] = {
            "rules": [{"ruleId": m.rule_id, "revision": m.revision} for m in verdict.matches],
            "actions": [a.value for a in verdict.actions],
        }
        at = _now()
        if verdict.status is VerdictStatus.REVIEW:
            assert first is not None
            # Why it is held (a matched rule, or a detector that ran out of time budget).
            details["reason"] = first.reason

            await self.mstore.enqueue(
                message.id,
                "review",
                first.rule_id,
                at,
                audit=Audit(ACTOR, "message.review", str(message.id), details),
            )
            self._metrics.verdicts.labels("review").inc()
            self.emit(
                "message.review_required",
                {"message": message.to_json(), "ruleId": first.rule_id, **details},
            )
        else:
            status = (
                Status.DISAPPROVED
                if verdict.status is VerdictStatus.DISAPPROVED
                else Status.APPROVED
            )
            moderation = Moderation(first.rule_id, first.rule_name, first.reason) if first else None
            also: TxOp | None = None
            if verdict.flagged and status is Status.APPROVED:
                flag_rule = next(
                    (m.rule_id for m in verdict.matches if Action.FLAG in m.actions), None
                )

                async def also_flag(tx: Transaction) -> None:
                    await tx.enqueue_review(message.id, "flagged", flag_rule, at)

                also = also_flag
            # A clean approval (no rule matched) is recorded by the message's status alone:
            # auditing every ordinary message would bury the decisions worth auditing.
            audit = (
                Audit(ACTOR, f"message.{status.value}", str(message.id), details)
                if verdict.matches
                else None
            )
            updated = await chat.apply_verdict(message, status, moderation, audit=audit, also=also)
            if updated is None:
                return
            self._metrics.verdicts.labels(status.value).inc()
            if status is Status.DISAPPROVED:
                self.emit(
                    "message.disapproved",
                    {
                        "message": updated.to_json(),
                        "moderation": moderation.to_json() if moderation else None,
                        "manual": False,
                        **details,
                    },
                )
            elif verdict.flagged:
                self.emit("message.flagged", {"message": updated.to_json(), **details})
        await self._side_actions(message, verdict)

    async def _side_actions(self, message: Message, verdict: Verdict) -> None:
        assert self._chat is not None
        chat = self._chat
        for match in verdict.matches:
            actor = Principal(
                uid=None,
                role=Role.ADMIN,
                is_api_key=True,
                label=f"{ACTOR}:{match.rule_id}@{match.revision}",
            )
            for action in match.actions:
                try:
                    if action in (Action.KICK, Action.BAN) and message.receiver_type == "group":
                        members = await chat.group_members(message.receiver)
                        if message.sender not in members and action is Action.KICK:
                            continue
                        if action is Action.KICK:
                            await chat.remove_member(actor, message.receiver, message.sender)
                        else:
                            # chat.ban emits ``user.banned`` (by ``moderation:<rule>@<rev>``)
                            await chat.ban(actor, message.receiver, message.sender, match.reason)
                    elif action is Action.BLOCK_USER and message.receiver_type == "user":
                        await chat.block(message.receiver, [message.sender])
                        await self._audit.add_audit(
                            Audit(
                                actor.label or ACTOR,
                                "user.block",
                                message.receiver,
                                {"uid": message.sender},
                            ),
                            _now(),
                        )
                except Exception:
                    log.exception("moderation action %s for message %d failed", action, message.id)

    # ----------------------------------------------------------------- try-out

    async def evaluate_text(
        self,
        text: str,
        message_type: str,
        sender: User | None,
        receiver: str | None,
        receiver_type: str,
    ) -> tuple[Verdict, Sequence[Any]]:
        """Evaluate a text as if sent now, storing nothing."""
        sender_view = user_view(sender, sender.uid if sender else "evaluate")
        if receiver:
            receiver_view = await self.receiver_view(receiver, receiver_type)
        else:
            receiver_view = ReceiverView(receiver_type, "evaluate", "evaluate", (), None, 0)
        view = MessageView(
            id=0,
            conversation_id="evaluate",
            category="message"
            if message_type in ("text", "image", "video", "audio", "file")
            else "custom",
            message_type=message_type,
            text=text,
            data=None,
            sender=sender_view,
            receiver=receiver_view,
            sent_at=_now(),
        )
        verdict = await self.engine.evaluate(view)
        detections = await self.engine.detect_all(view)
        return verdict, detections

    async def dry_run(self, rule: Rule, days: int, *, limit: int = 5000) -> list[dict[str, Any]]:
        """What ``rule`` would have matched among stored messages of the last ``days`` days."""
        since = _now() - days * 86400
        hits: list[dict[str, Any]] = []
        for message in await self._store.messages_since(since, limit=limit):
            if message.text is None and message.data is None:
                continue
            view, context, recent = await self.views(message, everything=True)
            match = await self.engine.evaluate_rule(
                rule, view, context=context, sender_recent=recent
            )
            if match is not None:
                hits.append(
                    {
                        "messageId": message.id,
                        "conversationId": message.conversation_id,
                        "sender": message.sender,
                        "text": message.text,
                        "sentAt": message.sent_at,
                        "currentStatus": message.status.value,
                        "reason": match.reason,
                        "confidence": match.confidence,
                        "actions": [a.value for a in match.actions],
                    }
                )
        return hits

    def validate_rule(self, body: object) -> Rule:
        try:
            rule = parse_rule(body, known_lists=self.lists.keys())
        except RuleError as exc:
            raise BadRequest(exc.message, {"field": exc.field}) from exc
        openai_ready = self.providers is not None and self.providers.openai_available
        if rule.enabled and not openai_ready and any(c.kind == "openai" for c in rule.conditions):
            raise BadRequest(
                "an openai rule can be enabled only once an OpenAI API key is configured"
                " (PARLEY_OPENAI_API_KEY, OPENAI_API_KEY or openai.key in the data dir)",
                {"field": "enabled"},
            )
        return rule

    # ----------------------------------------------------------------- external providers

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """Send a moderation event to the subscribed outgoing webhooks (never blocks)."""
        if self.webhooks is not None:
            self.webhooks.emit(event, data)

    def report_provider_call(self, call: ProviderCall) -> None:
        """Metrics for one provider call; a failure also becomes a webhook event."""
        self._metrics.provider_requests.labels(call.provider, call.error or "ok").inc()
        if call.error != "circuit_open":
            self._metrics.provider_latency.labels(call.provider).observe(call.seconds)
        if call.error is not None:
            self._metrics.provider_errors.labels(call.provider).inc()
            if call.error != "circuit_open":
                self.emit(
                    "moderation.provider_failed",
                    {
                        "provider": call.provider,
                        "error": call.error,
                        "detail": call.detail,
                        "messageId": call.message_id,
                    },
                )

    async def message_json(self, view: MessageView) -> Mapping[str, object]:
        """The Message object (PROTOCOL.md) for a view, for the Custom API payload."""
        message = self._inflight.get(view.id)
        if message is None and view.id:
            message = await self._store.get_message(view.id)
        return view_json(view) if message is None else message.to_json()

    # ----------------------------------------------------------------- moderators

    async def review_queue(
        self, state: str, *, limit: int
    ) -> list[tuple[Message, str | None, int]]:
        """The open items in ``state`` as (message, rule id, since), oldest first; for
        ``disapproved``, the newest disapproved messages (no rule id, since their update)."""
        found: list[tuple[Message, str | None, int]] = []
        if state == "disapproved":
            for message_id in await self.mstore.disapproved(limit=limit):
                message = await self._store.get_message(message_id)
                if message is not None:
                    found.append((message, None, message.updated_at))
        else:
            for item in await self.mstore.queue(state, limit=limit):
                message = await self._store.get_message(item.message_id)
                if message is not None:
                    found.append((message, item.rule_id, item.at))
        return found

    async def decide(self, message: Message, *, approve: bool, actor: str, reason: str) -> Message:
        """A moderator's decision: the verdict and the closing of its queue items, audited,
        in one commit; the message as stored after it. Raises Conflict if it changed meanwhile."""
        assert self._chat is not None
        at = _now()
        decision = "approved" if approve else "disapproved"

        async def close(tx: Transaction) -> None:
            await tx.close_review(message.id, decision, actor, at)

        target = Status.APPROVED if approve else Status.DISAPPROVED
        audit = Audit(
            actor, f"message.{decision}", str(message.id), {"manual": True, "reason": reason}
        )
        if message.status is target or (approve and message.status is Status.UNMODERATED):
            await self.mstore.close_review(message.id, decision, actor, at, audit)
            return message
        moderation = (
            None
            if approve
            else Moderation("manual", "Moderator decision", reason or "disapproved by a moderator")
        )
        updated = await self._chat.apply_verdict(
            message, target, moderation, audit=audit, also=close
        )
        if updated is None:
            raise Conflict(
                "the message changed meanwhile; reload and decide again", {"messageId": message.id}
            )
        if moderation is not None:
            self.emit(
                "message.disapproved",
                {
                    "message": updated.to_json(),
                    "moderation": moderation.to_json(),
                    "manual": True,
                    "by": actor,
                },
            )
        return updated

    async def webhook_deliveries(
        self, *, status: str | None, event: str | None, limit: int
    ) -> list[Delivery]:
        """The outgoing webhooks' delivery log, newest first (empty without webhooks)."""
        if self.webhooks is None:
            return []
        return await self.webhooks.deliveries(status=status, event=event, limit=limit)

    def validate_list(self, body: object) -> WordList:
        try:
            return parse_list(body)
        except RuleError as exc:
            raise BadRequest(exc.message, {"field": exc.field}) from exc


def _with_window(rule: Rule, kind: str, window: int) -> Rule:
    """``rule`` with ``window`` as the context window of its ``kind`` conditions lacking one."""
    if not any(c.kind == kind and c.context_window is None for c in rule.conditions):
        return rule
    conditions = tuple(
        dataclasses.replace(c, context_window=window)
        if c.kind == kind and c.context_window is None
        else c
        for c in rule.conditions
    )
    return dataclasses.replace(rule, conditions=conditions)


def user_view(user: User | None, uid: str) -> UserView:
    if user is None:
        return UserView(uid, uid, "user", (), 0)
    return UserView(user.uid, user.name, user.role, user.tags, user.created_at)
