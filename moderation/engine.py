"""The rule engine: which rules apply to a message, which match, and the resulting verdict.

Over 400 lines on purpose: one algorithm (candidates, cost order, early stops, verdict) and
the caches that keep it cheap on the send path, read best in one place.

Evaluation of one message:

1. Rules that are enabled and whose sender and receiver filters pass are candidates; a rule's
   conditions that do not cover the message's type are ignored, and a rule with none left
   does not apply.
2. Candidates run cheapest first (a rule costs as much as its dearest detector). Within a
   rule, conditions run cheapest first and stop early (``any``: at the first hit; ``all``:
   at the first miss). A detector's detections are computed once per message and condition.
3. A condition matches when one of its detector's detections (restricted to the condition's
   ``categories``, if any) reaches its ``threshold`` (default 0.5; keyword, pattern, phone and
   e-mail hits have confidence 1.0). A condition whose kind has no detector never matches;
   ``unavailable_kinds`` names such kinds.
4. Once a rule with ``block`` matched, rules that need an expensive detector (cost >= 100)
   are skipped; cheap ones still run so their side actions (flag, kick, ...) are kept.
   A condition whose detector ran out of its time budget (``BudgetExhausted``: regex
   patterns, see ``moderation.detectors.patterns``) is undecided, never a miss: a rule that
   no decided condition settles (``any``: none hit; ``all``: none missed) matches with the
   action ``review`` alone and the budget's reason, so the message is held, not approved.
5. Status: a match with ``block``, ``kick``, ``ban`` or ``block_user`` disapproves the
   message (the last three punish the sender for this very message, so it is not delivered);
   otherwise one with ``review`` holds it for a moderator; otherwise it is approved (``flag``
   delivers it and queues it for review).

The engine does no I/O and imports no detector: it is given its detectors (kind -> detector,
usually ``moderation.local_detectors.build_detectors()`` plus the configured providers) and
calls only the members of the ``Detector`` protocol (``moderation.detectors.base``); each
detector is given everything through ``DetectContext``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from moderation.budget import PatternBudget
from moderation.detectors.base import EXPENSIVE, READS_EVERYTHING, DetectContext, Detector
from moderation.errors import Undecided
from moderation.rules import (
    MAX_CONTEXT_WINDOW,
    Condition,
    MatchMode,
    ReceiverFilter,
    Rule,
    SenderFilter,
    WordList,
)
from moderation.types import (
    DISAPPROVING,
    Action,
    Detection,
    Match,
    MessageView,
    Verdict,
    VerdictStatus,
)

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
#: Entries of each of the engine's per-rule caches (cleared when full).
_KEPT = 4096
_ANYONE = SenderFilter()
_ANYWHERE = ReceiverFilter()


def severity(actions: Sequence[Action]) -> int:
    """0 block, 1 other disapproving actions, 2 review, 3 flag, 4 nothing that decides."""
    if Action.BLOCK in actions:
        return 0
    if any(a in DISAPPROVING for a in actions):
        return 1
    if Action.REVIEW in actions:
        return 2
    if Action.FLAG in actions:
        return 3
    return 4


def verdict_of(matches: Sequence[Match], detections: Sequence[Detection]) -> Verdict:
    """The verdict for these matches: ordered most severe first, status from the first."""
    ordered = tuple(sorted(matches, key=lambda m: severity(m.actions)))
    actions = tuple(dict.fromkeys(a for m in ordered for a in m.actions))
    rank = severity(actions)
    status = (
        VerdictStatus.DISAPPROVED
        if rank <= 1
        else VerdictStatus.REVIEW
        if rank == 2
        else VerdictStatus.APPROVED
    )
    # equal detections count once; the same object often comes twice (conditions sharing a
    # detector's result), and dropping those first saves hashing them
    unique = {id(d): d for d in detections}.values() if len(detections) > 8 else detections
    # equal detections have the same detector and category: when no two share them (the
    # usual case), none is equal to another and hashing each one is not needed
    if len({(d.detector, d.category) for d in unique}) == len(unique):
        return Verdict(status, ordered, actions, tuple(unique))
    return Verdict(status, ordered, actions, tuple(dict.fromkeys(unique)))


#: Runs a condition's detector for a rule (by id), once per condition and message.
Runner = Callable[[Condition, str], Awaitable[list[Detection]]]


@dataclass(frozen=True, slots=True)
class _Step:
    """One rule as ``evaluate`` runs it on one message category and type: its conditions
    that apply there, cheapest first; for each, the lowest threshold any of its categories
    has (None: no detector serves its kind, so it never matches); the kinds it reads (for
    the detectors' shared pre-checks); its cost (its dearest condition's); and whether its
    sender or receiver filter must be checked per message."""

    rule: Rule
    conditions: tuple[Condition, ...]
    lowest: tuple[float | None, ...]
    kinds: tuple[str, ...]
    cost: int
    filtered: bool


class Engine:
    """Evaluates messages against a fixed set of rules and lists; build a new one on change.

    ``detectors`` maps each condition kind to the detector serving it (a kind without one
    never matches; see ``unavailable_kinds``); share the instances across engines, they hold
    compiled lists and loaded models. ``context_window`` is how many previous messages of
    the conversation a condition without its own ``contextWindow`` may look at (0..10).
    ``cascade``: the local models' cheap first stage may settle clear texts (faster, and it
    costs some ranking quality: docs/moderation.md); off, every text gets the full model.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        lists: Mapping[str, WordList],
        detectors: Mapping[str, Detector],
        *,
        context_window: int = 5,
        cascade: bool = False,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.cascade = cascade
        self.lists: dict[str, WordList] = dict(lists)
        self.detectors: dict[str, Detector] = dict(detectors)
        self.context_window = max(0, min(context_window, MAX_CONTEXT_WINDOW))
        self._enabled = tuple(r for r in self.rules if r.enabled)
        for detector in self.detectors.values():
            detector.prepare(self.lists)  # compile lists now, not on the first message
        # Local models load lazily; start loading those that an enabled rule needs now, in
        # the background, so the first message does not wait.
        for kind in {c.kind for r in self._enabled for c in r.conditions}:
            needed = self.detectors.get(kind)
            if needed is not None:
                needed.warm_up()
        self._inline: dict[tuple[str, str, bool], bool] = {}
        self._expensive: dict[tuple[str, str, bool], tuple[Condition, ...]] = {}
        # Per-message work that depends only on the rules, kept (the send path runs
        # ``evaluate`` for every message): per message category and type, the rules that
        # apply there in cost order with their conditions (``_Step``); and each condition's
        # threshold per category. Keyed by id, with the object kept alongside so that an id
        # is never reused while cached.
        self._unfiltered = frozenset(
            id(r) for r in self._enabled if r.sender == _ANYONE and r.receiver == _ANYWHERE
        )
        self._plans: dict[tuple[str, str, bool], tuple[_Step, ...]] = {}
        self._thresholds: dict[int, tuple[Condition, dict[str, float]]] = {}

    # ------------------------------------------------------------------ questions

    def inline_for(
        self, category: str, message_type: str, text: str | None = None, *, caption: bool = False
    ) -> bool:
        """Whether every enabled condition on this category and type is cheap and local
        (keyword lists, patterns, contacts, spam state: no model, no provider), so that
        ``evaluate`` completes without waiting on anything and may run on the send path.
        With ``text``, an expensive condition also counts as inline when its detector's
        cheap stage settles that text (``settles(text, condition)``: the local models' cascade,
        only with ``cascade``).
        ``caption``: a media message with a text, which the text rules judge too."""
        key = (category, message_type, caption)
        inline = self._inline.get(key)
        if inline is None:
            inline = self._inline[key] = all(
                self._cost(c) < EXPENSIVE
                for r in self._enabled
                for c in r.conditions
                if c.applies_to(category, message_type, caption)
            )
        if inline or text is None:
            return inline
        expensive = self._expensive.get(key)
        if expensive is None:
            expensive = self._expensive[key] = tuple(
                c
                for r in self._enabled
                for c in r.conditions
                if c.applies_to(category, message_type, caption) and self._cost(c) >= EXPENSIVE
            )
        return all(self._settles(c, text) for c in expensive)

    def _settles(self, condition: Condition, text: str) -> bool:
        if not self.cascade:
            return False
        detector = self.detectors.get(condition.kind)
        return detector is not None and detector.settles(text, condition)

    def covers(self, category: str, message_type: str, *, caption: bool = False) -> bool:
        """Whether an enabled rule has a condition for this message category and type
        (``caption``: a media message with a text, which the text rules judge too)."""
        return any(
            c.applies_to(category, message_type, caption)
            for r in self._enabled
            for c in r.conditions
        )

    def _reads(self, condition: Condition) -> frozenset[str]:
        """What the condition's detector reads; a kind without a detector: everything."""
        detector = self.detectors.get(condition.kind)
        return READS_EVERYTHING if detector is None else detector.reads

    def context_needed(self) -> int:
        """How many previous messages of the conversation enabled rules' detectors read (0:
        none of them looks at the context, so the caller need not load it)."""
        return max(
            (
                self.context_window if c.context_window is None else c.context_window
                for r in self._enabled
                for c in r.conditions
                if "context" in self._reads(c)
            ),
            default=0,
        )

    def sender_recent_needed(self) -> bool:
        """Whether an enabled rule's detector reads the sender's recent messages."""
        return any("sender_recent" in self._reads(c) for r in self._enabled for c in r.conditions)

    def unavailable_kinds(self) -> frozenset[str]:
        """Condition kinds used by enabled rules that no registered detector serves."""
        return frozenset(
            c.kind for r in self._enabled for c in r.conditions if c.kind not in self.detectors
        )

    # ------------------------------------------------------------------ evaluation

    async def evaluate(
        self,
        message: MessageView,
        *,
        context: Sequence[MessageView] = (),
        sender_recent: Sequence[MessageView] = (),
    ) -> Verdict:
        """The verdict of every enabled rule on ``message``.

        ``context``: the conversation's previous messages, oldest first; ``sender_recent``:
        the sender's recent messages across conversations, newest last.
        """
        runner, produced, undecided = self._runner(message, context, sender_recent)
        plan = self._plan(message.category, message.message_type, message.has_caption)
        matches: list[Match] = []
        blocked = False
        excluded: dict[str, bool] = {}

        def ruled_out(kind: str) -> bool:
            known = excluded.get(kind)
            if known is None:
                known = excluded[kind] = self._rules_out(kind, message)
            return known

        for step in plan:
            if step.filtered and not step.rule.applies(message.sender, message.receiver):
                continue
            if blocked and step.cost >= EXPENSIVE:
                continue
            match = await self._run_step(step, runner, undecided, ruled_out)
            if match is not None:
                matches.append(match)
                blocked = blocked or Action.BLOCK in match.actions
        return verdict_of(matches, [d for ds in produced.values() for d in ds])

    async def evaluate_rule(
        self,
        rule: Rule,
        message: MessageView,
        *,
        context: Sequence[MessageView] = (),
        sender_recent: Sequence[MessageView] = (),
    ) -> Match | None:
        """Whether ``rule`` (enabled or not, stored or not) matches ``message``: for dry-runs."""
        if not rule.applies(message.sender, message.receiver):
            return None
        step = self._step(rule, message.category, message.message_type, message.has_caption)
        if not step.conditions:
            return None
        runner, _, undecided = self._runner(message, context, sender_recent)
        return await self._run_step(step, runner, undecided)

    async def detect_all(
        self,
        message: MessageView,
        *,
        context: Sequence[MessageView] = (),
        sender_recent: Sequence[MessageView] = (),
    ) -> list[Detection]:
        """Every detector's detections for ``message``, for the try-out endpoint.

        List-based detectors run once per list of a kind they read (category = list id);
        every category a detector scores appears, with confidence 0 when nothing was found.
        """
        runner, _, _ = self._runner(message, context, sender_recent)
        out: list[Detection] = []
        for detector in sorted(self.detectors.values(), key=lambda d: (d.cost, d.name)):
            runs: list[tuple[Condition, tuple[str, ...]]] = []
            if detector.list_kinds:
                for wl in self.lists.values():
                    if wl.kind in detector.list_kinds:
                        condition = Condition(detector.name, (message.message_type,), list_id=wl.id)
                        runs.append((condition, (wl.id,)))
            else:
                condition = Condition(detector.name, (message.message_type,))
                runs.append((condition, detector.categories))
            for condition, categories in runs:
                found = await runner(condition, "")
                out.extend(found)
                seen = {d.category for d in found}
                out.extend(Detection(detector.name, c, 0.0) for c in categories if c not in seen)
        return out

    # ------------------------------------------------------------------ internals

    def _runner(
        self,
        message: MessageView,
        context: Sequence[MessageView],
        sender_recent: Sequence[MessageView],
    ) -> tuple[Runner, dict[int, list[Detection]], dict[int, str]]:
        """A function running a condition's detector once per condition, its results, and
        the reasons of the conditions left undecided (``Undecided``: out of budget, media that
        cannot be decoded), by condition id.

        The conditions of a detector with a time budget (``Detector.budget``: regex
        patterns) share one budget per message."""
        produced: dict[int, list[Detection]] = {}
        undecided: dict[int, str] = {}
        keep: list[Condition] = []  # keeps ids stable while ``produced`` is alive
        contexts: dict[int, DetectContext] = {}  # by context window: most conditions share one
        budgets: dict[str, PatternBudget | None] = {}  # by kind

        async def run(condition: Condition, rule_id: str) -> list[Detection]:
            key = id(condition)
            if key in produced:
                return produced[key]
            detector = self.detectors.get(condition.kind)
            found: list[Detection] = []
            if detector is not None:
                window = (
                    self.context_window
                    if condition.context_window is None
                    else condition.context_window
                )
                ctx = contexts.get(window)
                if ctx is None:
                    ctx = contexts[window] = DetectContext(
                        lists=self.lists,
                        context=tuple(context[-window:]) if window else (),
                        sender_recent=sender_recent,
                        cascade=self.cascade,
                    )
                try:
                    if condition.kind in budgets:
                        budget = budgets[condition.kind]
                    else:
                        budget = budgets[condition.kind] = detector.budget()
                    if budget is not None:
                        ctx = DetectContext(
                            lists=ctx.lists,
                            context=ctx.context,
                            sender_recent=ctx.sender_recent,
                            budget=budget,
                            rule_id=rule_id,
                            cascade=ctx.cascade,
                        )
                    found = list(await detector.detect(message, condition, ctx))
                except Undecided as exc:
                    undecided[key] = exc.message
                except Exception:
                    log.exception(
                        "detector %s failed on message %d; condition not matched",
                        detector.name,
                        message.id,
                    )
            keep.append(condition)
            produced[key] = found
            return found

        return run, produced, undecided

    def _plan(self, category: str, message_type: str, caption: bool) -> tuple[_Step, ...]:
        """The enabled rules that have a condition on this message category and type, as
        ``_Step``s in cost order (a stable sort: rules of one cost keep their order)."""
        key = (category, message_type, caption)
        plan = self._plans.get(key)
        if plan is None:
            steps = (self._step(r, category, message_type, caption) for r in self._enabled)
            plan = tuple(sorted((s for s in steps if s.conditions), key=lambda s: s.cost))
            if len(self._plans) >= _KEPT:  # custom message types are the caller's strings
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _step(self, rule: Rule, category: str, message_type: str, caption: bool) -> _Step:
        conditions = tuple(
            sorted(
                (c for c in rule.conditions if c.applies_to(category, message_type, caption)),
                key=self._cost,
            )
        )
        return _Step(
            rule=rule,
            conditions=conditions,
            lowest=tuple(
                c.lowest_threshold(DEFAULT_THRESHOLD) if c.kind in self.detectors else None
                for c in conditions
            ),
            kinds=tuple(dict.fromkeys(c.kind for c in conditions)),
            cost=max((self._cost(c) for c in conditions), default=0),
            filtered=id(rule) not in self._unfiltered,
        )

    def _threshold_of(self, condition: Condition, category: str) -> float:
        """``condition.threshold_for(category, DEFAULT_THRESHOLD)``, kept per condition."""
        known = self._thresholds.get(id(condition))
        if known is None or known[0] is not condition:
            if len(self._thresholds) >= _KEPT:
                self._thresholds.clear()
            known = self._thresholds[id(condition)] = (condition, {})
        found = known[1].get(category)
        if found is None:
            found = known[1][category] = condition.threshold_for(category, DEFAULT_THRESHOLD)
        return found

    def _cost(self, condition: Condition) -> int:
        detector = self.detectors.get(condition.kind)
        return 0 if detector is None else detector.cost

    def _rules_out(self, kind: str, message: MessageView) -> bool:
        """The detector's shared pre-check (``Detector.rules_out``): True when no condition of
        ``kind`` can match ``message``, whatever its list or parameters (one merged keyword
        search rules out all seven profanity lists of a clean message)."""
        detector = self.detectors.get(kind)
        if detector is None:
            return False
        try:
            return detector.rules_out(message, self.lists)
        except Exception:
            log.exception("detector %s pre-check failed on message %d", kind, message.id)
            return False

    async def _run_step(
        self,
        step: _Step,
        run: Runner,
        undecided: Mapping[int, str],
        ruled_out: Callable[[str], bool] | None = None,
    ) -> Match | None:
        rule = step.rule
        if ruled_out is not None:
            if rule.match is MatchMode.ALL:
                if any(ruled_out(kind) for kind in step.kinds):
                    return None
            elif all(ruled_out(kind) for kind in step.kinds):
                return None
        hits: list[Detection] = []
        unsure: list[str] = []
        for condition, lowest in zip(step.conditions, step.lowest, strict=True):
            if lowest is None:  # no detector serves this kind
                hit = None
            else:
                found = await run(condition, rule.id)
                # nothing reaches even the condition's lowest threshold (the usual case: a
                # model's nine scores, all low): no hit, without a threshold per detection
                if all(d.confidence < lowest for d in found):
                    hit = None
                else:
                    hit = _best_hit(condition, found, self._threshold_of)
                if hit is None and id(condition) in undecided:
                    unsure.append(undecided[id(condition)])
                    continue
            if hit is None and rule.match is MatchMode.ALL:
                return None
            if hit is not None:
                hits.append(hit)
                if rule.match is MatchMode.ANY:
                    break
        if unsure and (rule.match is MatchMode.ALL or not hits):
            # Undecided, not missed: hold the message for a moderator; never approve it, and
            # take none of the rule's own actions on a guess.
            return Match(
                rule_id=rule.id,
                rule_name=rule.name,
                revision=rule.revision,
                reason="; ".join(unsure),
                confidence=0.0,
                actions=(Action.REVIEW,),
            )
        if not hits:
            return None
        confidence = (
            min(h.confidence for h in hits)
            if rule.match is MatchMode.ALL
            else max(h.confidence for h in hits)
        )
        return Match(
            rule_id=rule.id,
            rule_name=rule.name,
            revision=rule.revision,
            reason="; ".join(h.reason for h in hits),
            confidence=confidence,
            actions=rule.actions,
        )


def _best_hit(
    condition: Condition,
    detections: Sequence[Detection],
    threshold_of: Callable[[Condition, str], float] | None = None,
) -> Detection | None:
    """The most confident detection reaching its threshold, its reason filled in.

    The threshold of a category is the condition's ``thresholds[category]`` if given, else
    its ``threshold``, else 0.5 (``threshold_of(condition, category)``: the same, cached).
    """
    if threshold_of is None:

        def threshold_of(c: Condition, category: str) -> float:
            return c.threshold_for(category, DEFAULT_THRESHOLD)

    relevant = [
        (d, threshold_of(condition, d.category))
        for d in detections
        if not condition.categories or d.category in condition.categories
    ]
    relevant = [(d, t) for d, t in relevant if d.confidence >= t]
    if not relevant:
        return None
    best, threshold = max(relevant, key=lambda dt: dt[0].confidence)
    reason = best.reason or f"{best.category} {best.confidence:.2f} >= {threshold:.2f}"
    return Detection(best.detector, best.category, best.confidence, reason)
