"""The moderation pipeline in the server: the ``ModerationGate`` the messaging service sends
through.

Pending messages become jobs on ``moderation.pipeline.Pipeline`` (bounded, never dropping).
A worker loads the conversation context and the sender's recent messages (``views.py``), asks
the pure ``moderation.engine.Engine`` for a verdict, and hands it to ``outcomes.py``, which
applies it through the chat side's ``VerdictApplier``. Rule and list changes rebuild the
engine; messages in flight finish with the engine they started with.

With ``--redis-url`` a ``JobQueue`` (``server/redis_jobs.py``) carries the jobs between the
processes of a deployment: ``submit`` puts a job on it (falling back to this process's own
pipeline when it cannot), and whichever process takes the job calls ``take``, which reloads
the message and runs it here, acknowledging the job once its verdict is applied. A job run
twice (a worker that died after applying, a re-queue) changes nothing the second time: the
verdict's write is conditional on the message being pending at the same revision.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Protocol

from moderation.defaults import default_lists, default_rules
from moderation.detectors.base import Detector
from moderation.engine import Engine
from moderation.errors import RuleError
from moderation.pipeline import Pipeline
from moderation.rules import Rule, WordList, parse_list, parse_rule, rule_to_json
from moderation.types import MEDIA_TYPES, Action, Match, Verdict, VerdictStatus
from server.clock import Clock
from server.event_webhooks import EventWebhooks
from server.external_detectors import EXTERNAL_KINDS, ExternalDetectors
from server.metrics import Metrics
from server.models import Message, Status
from server.moderation_service.outcomes import Outcomes
from server.moderation_service.views import InflightMessages, MessageViews
from server.moderation_settings import ModerationSettings
from server.services.contracts import ProbationHold
from server.shared_state import NO_SHARING, Invalidator
from server.storage.ports import MessageRepository, ModerationRepository
from server.storage.types import NewMessage

#: The moderation settings a fresh data dir starts with (where unset): the cascade that the
#: default AI rules need to stay cheap (``moderation.defaults``).
SEEDED_SETTINGS: dict[str, object] = {"aiCascade": True}

log = logging.getLogger(__name__)

#: The id a message is judged under before the store assigns one: above every stored id, so
#: context reads ("messages before this one") see the whole conversation.
UNSTORED_ID = 2**62


#: The pseudo-rule of a message held because no job could judge it (``give_up``).
FAILED_RULE_ID = "moderation_failed"


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """A pending message to judge (or to apply ``verdict`` to); ``done(ok)`` ends a job from a
    ``JobQueue``: acknowledged once its verdict is applied, else left to be taken again."""

    message: Message
    verdict: Verdict | None = None
    done: Callable[[bool], Awaitable[None]] | None = None
    started: float | None = None  # on the clock's monotonic scale, for the latency metric


class JobQueue(Protocol):
    """Moderation jobs shared by the processes of a deployment (``server/redis_jobs.py``)."""

    async def put(self, message: Message, verdict: Verdict | None) -> bool:
        """Queue a job for any process; False when it could not (the caller runs it)."""
        ...


class ModerationService:
    """Implements ``ModerationGate``; owns the engine, the pipeline and the defaults."""

    def __init__(
        self,
        store: MessageRepository,
        mstore: ModerationRepository,
        metrics: Metrics,
        *,
        views: MessageViews,
        inflight: InflightMessages,
        outcomes: Outcomes,
        detectors: Mapping[str, Detector],
        clock: Clock,
        workers: int,
        queue_size: int,
        context_window: int,
        enabled: bool = True,
        external: ExternalDetectors | None = None,
        webhooks: EventWebhooks | None = None,
        shared: Invalidator = NO_SHARING,
        probation: ProbationHold | None = None,
        jobs: JobQueue | None = None,
    ) -> None:
        self._store = store
        self._jobs = jobs
        #: New-account probation: holds an approval for review (``services/probation.py``).
        self._probation = probation
        self._shared = shared
        self._mstore = mstore
        self._metrics = metrics
        self._views = views
        self._inflight = inflight
        self._outcomes = outcomes
        self._clock = clock
        # The external detectors (custom_api, openai) are (re)built from settings in
        # reload(); the outgoing event webhooks take their configuration from the same settings.
        self._external = external
        self._webhooks = webhooks
        # Built once: detectors may hold models and per-user state; engines are rebuilt on
        # every rule change and share these instances.
        self._detectors: dict[str, Detector] = dict(detectors)
        self._enabled = enabled
        self._default_window = context_window
        self._load_window = context_window
        self._load_recent = True
        self.engine = Engine([], {}, self._detectors, context_window=context_window)
        self._rules: dict[str, Rule] = {}
        self._lists: dict[str, WordList] = {}
        self._pipeline: Pipeline[Job] = Pipeline(
            self._handle, workers=workers, maxsize=queue_size, name="moderation"
        )

    def list_ids(self) -> frozenset[str]:
        """The ids of the lists the engine was built with (rules may name only these)."""
        return frozenset(self._lists)

    def rules_using_list(self, list_id: str) -> list[str]:
        """The ids of the rules whose conditions read the list ``list_id``."""
        return [
            r.id for r in self._rules.values() if any(c.list_id == list_id for c in r.conditions)
        ]

    @property
    def openai_available(self) -> bool:
        """Whether an OpenAI API key is configured (openai rules may be enabled)."""
        return self._external is not None and self._external.openai_available

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Seed defaults on first start, build the engine, start workers, re-queue pending."""
        mstore = self._mstore
        if not await mstore.has_any_rule_history():
            at = self._clock.now()
            for lst in default_lists():
                list_id = str(lst["id"])
                if await mstore.get_list(list_id) is None:
                    await _unless_seeded(
                        mstore.put_list(dict(lst), actor="system", at=at, create=True),
                        functools.partial(mstore.get_list, list_id),
                    )
            known = {str(lst["id"]) for lst in await mstore.lists()}
            for body in default_rules():
                # Stored in the same normalised shape as rules created through the API.
                rule = rule_to_json(parse_rule(body, known_lists=known))
                await _unless_seeded(
                    mstore.put_rule(rule, actor="system", at=at, create=True),
                    functools.partial(mstore.rule, str(rule["id"])),
                )
            # The AI rules enabled by default go with their cascade (moderation.defaults);
            # a data dir seeded before keeps its settings (unset: off).
            settings = await mstore.settings()
            unset = {k: v for k, v in SEEDED_SETTINGS.items() if k not in settings}
            if unset:
                await mstore.put_settings({**settings, **unset}, actor="system", at=at)
        await self._rebuild()
        await self._pipeline.start()
        if self._jobs is None:  # with a JobQueue, it re-queues (once for the deployment)
            await self.requeue()

    async def requeue(self, skip: Collection[int] = (), min_age: int = 0) -> int:
        """Queue again every pending message not waiting for a human (nor in ``skip``: jobs
        queued already; nor changed in the last ``min_age`` seconds): a crash between the
        insert and the verdict loses nothing."""
        requeued = 0
        in_review = {
            item.message_id for item in await self._mstore.queue("review", limit=1_000_000)
        }
        for message_id in await self._store.pending_ids():
            if message_id in in_review or message_id in skip:
                continue
            message = await self._store.get_message(message_id)
            if message is None or message.status is not Status.PENDING:
                continue
            if min_age and self._clock.now() - message.updated_at < min_age:
                continue
            if self._jobs is not None:
                await self.submit(message)
            else:
                await self._pipeline.submit(Job(message))
            requeued += 1
        if requeued:
            log.info("re-queued %d pending messages", requeued)
        return requeued

    async def stop(self) -> None:
        await self._pipeline.stop()
        if self._external is not None:
            await self._external.aclose()

    async def reload(self) -> None:
        """Rebuild the engine after a write to the rules, lists or settings, and tell the
        other processes of the deployment (``server/shared_state.py``)."""
        await self._rebuild()
        self._shared.publish("moderation", "")

    async def invalidate(self, kind: str, key: str) -> None:
        """Another process changed the rules, lists or settings."""
        await self._rebuild()

    async def _rebuild(self) -> None:
        """Rebuild the engine from the stored rules, lists and settings."""
        lists: dict[str, WordList] = {}
        for body in await self._mstore.lists():
            try:
                # Lists are checked in full when written; a check added later (pattern
                # shapes and counts) must not drop a stored list and the rules naming it.
                wl = parse_list(body, stored=True)
            except RuleError:
                log.exception("stored list %s is invalid; skipped", body.get("id"))
                continue
            lists[wl.id] = wl
        rules: dict[str, Rule] = {}
        for body in await self._mstore.rules():
            try:
                rule = parse_rule(body, known_lists=lists.keys())
            except RuleError:
                log.exception("stored rule %s is invalid; skipped", body.get("id"))
                continue
            rules[rule.id] = rule
        settings = ModerationSettings.from_json(await self._mstore.settings())
        context_window = (
            self._default_window if settings.context_window is None else settings.context_window
        )
        if self._external is not None:
            for kind in EXTERNAL_KINDS:
                self._detectors.pop(kind, None)
            self._detectors.update(self._external.configure(settings))
            api_window = self._external.custom_api_window(settings)
            if api_window is not None:
                rules = {k: _with_window(r, "custom_api", api_window) for k, r in rules.items()}
        if self._webhooks is not None:
            self._webhooks.configure(settings.webhooks or ())
        self._rules, self._lists = rules, lists
        self.engine = Engine(
            list(rules.values()),
            lists,
            self._detectors,
            context_window=context_window,
            cascade=settings.cascade,
        )
        # Load per message only what the enabled rules' detectors read.
        self._load_window = self.engine.context_needed()
        self._load_recent = self.engine.sender_recent_needed()

    # ----------------------------------------------------------------- the gate

    def covers(self, category: str, message_type: str, *, caption: bool = False) -> bool:
        return self._enabled and self.engine.covers(category, message_type, caption=caption)

    async def submit(self, message: Message, verdict: Verdict | None = None) -> None:
        if self._jobs is not None and await self._jobs.put(message, verdict):
            return
        await self._pipeline.submit(Job(message, verdict, started=self._clock.monotonic()))

    async def take(
        self,
        message_id: int,
        rev: int,
        verdict: Verdict | None,
        done: Callable[[bool], Awaitable[None]],
        *,
        age: float = 0.0,
    ) -> None:
        """Run a job from the ``JobQueue`` (queued ``age`` seconds ago by any process); one
        whose message was decided, edited or deleted since is only acknowledged."""
        message = await self._store.get_message(message_id)
        if message is None or message.status is not Status.PENDING or message.rev != rev:
            await done(True)
            return
        started = self._clock.monotonic() - max(age, 0.0)
        await self._pipeline.submit(Job(message, verdict, done, started))

    async def give_up(self, message_id: int, rev: int, attempts: int) -> None:
        """A job for this message failed ``attempts`` times (``redis_jobs.ATTEMPTS``): hold it
        for a moderator, who decides it as any held message, instead of trying forever."""
        message = await self._store.get_message(message_id)
        if message is None or message.status is not Status.PENDING or message.rev != rev:
            return
        hold = Match(
            FAILED_RULE_ID,
            "Moderation failed",
            0,
            f"judging failed {attempts} times: held for a moderator",
            0.0,
            (Action.REVIEW,),
        )
        verdict = Verdict(VerdictStatus.REVIEW, (hold,), (Action.REVIEW,), ())
        await self._outcomes.apply(message, verdict)

    async def judge_inline(self, new: NewMessage) -> Verdict | None:
        """Judge ``new`` before it is stored when the rules on its type all run inline.

        A clean verdict (no rule matched) lets the caller store the message approved and
        deliver it after the one commit. Any other verdict comes back with the message through
        ``submit``, where review, flags, side actions and audit records are applied. None when
        a rule on the type needs a model or a provider that no cheap stage settles for this
        text (``Engine.inline_for``; the local models' cascade settles clear texts): the
        message is judged in the pipeline.
        """
        engine = self.engine
        caption = new.type in MEDIA_TYPES and bool(new.text and new.text.strip())
        if not self._enabled or not engine.inline_for(
            new.category, new.type, new.text, caption=caption
        ):
            return None
        started = self._clock.monotonic()
        view, context, recent = await self._views.views(
            new.as_message(UNSTORED_ID), window=self._load_window, recent=self._load_recent
        )
        verdict = await engine.evaluate(view, context=context, sender_recent=recent)
        if verdict.clean and self._probation is not None:
            verdict = await self._probation.apply(verdict, new.sender, stored=False)
        if verdict.clean:
            self._metrics.verdicts.labels(Status.APPROVED.value).inc()
            self._metrics.moderation_latency.observe(self._clock.monotonic() - started)
        return verdict

    # ----------------------------------------------------------------- the worker

    async def _handle(self, job: Job) -> None:
        if job.done is None:
            await self._judge(job)
            return
        ok = False
        try:
            await self._judge(job)
            ok = True
        finally:
            await job.done(ok)

    async def _judge(self, job: Job) -> None:
        message, verdict = job.message, job.verdict
        if verdict is None:
            view, context, recent = await self._views.views(
                message, window=self._load_window, recent=self._load_recent
            )
            self._inflight.add(message)
            try:
                verdict = await self.engine.evaluate(view, context=context, sender_recent=recent)
            finally:
                self._inflight.remove(message)
        await self._outcomes.apply(message, verdict)
        if job.started is not None:
            self._metrics.moderation_latency.observe(self._clock.monotonic() - job.started)


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


async def _unless_seeded(
    create: Awaitable[object], stored: Callable[[], Awaitable[object | None]]
) -> None:
    """Store a default list or rule. Processes of one deployment that start together on an
    empty database all seed it: the one that finds the item stored by another when its own
    create fails (an existing id, or a unique violation in the race) carries on."""
    try:
        await create
    except Exception:
        if await stored() is None:
            raise
