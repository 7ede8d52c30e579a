"""Regex pattern lists, run with the ``regex`` package under a time budget per message.

Patterns are case-insensitive and searched in the raw text and, when it differs, in its
folded form (``moderation.normalize.fold``: confusables, full-width forms, accents).

Time budget. Matching time is bounded per message and per rule, not per pattern
(``moderation.budget.BudgetConfig``): by default all pattern conditions of one rule may search
a message for 50 ms in all, and all pattern conditions of all rules for 200 ms. The engine
hands every pattern condition of a message the same ``PatternBudget`` (``budget()``), in
``DetectContext.budget``.

Off the event loop. The first ``on_loop`` seconds of a message's pattern matching (default
2 ms) run on the event loop: lists of ordinary patterns finish in microseconds, and a thread
hop would cost more than the matching. Whatever is left of a list then runs in a worker
thread with the GIL released (``concurrent=True``), so a slow pattern delays only its own
message, never other connections or ``/healthz``.

When the budget runs out before every pattern was tried and none matched, the condition is
undecided, and an undecided condition never approves. Under ``on_exhausted`` ``review`` (the
default) the detector raises ``BudgetExhausted`` and the engine holds the message for review
with a reason saying the pattern budget ran out; under ``block`` it reports a hit (confidence
1.0 in the list's category), so the rule's own actions apply, as for a provider's
``actionOnError: block``. Patterns of known catastrophic shapes are refused when the list is
written (``moderation.rules.catastrophic_shape``); the budget bounds the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import regex

from moderation.budget import BudgetConfig, OnExhausted, PatternBudget
from moderation.detectors.base import DetectContext, Detector, message_text
from moderation.errors import BudgetExhausted
from moderation.normalize import fold
from moderation.rules import Condition, WordList
from moderation.types import Detection, MessageView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledPatterns:
    """A pattern list compiled once; ``allow`` holds folded texts a match may not be."""

    patterns: tuple[tuple[str, Any], ...]
    allow: frozenset[str]


def compile_patterns(wl: WordList) -> CompiledPatterns:
    """Compile every pattern (already validated by ``parse_list``) case-insensitively."""
    compiled: list[tuple[str, Any]] = []
    for item in wl.items:
        try:
            compiled.append((item, regex.compile(item, regex.IGNORECASE)))
        except regex.error:
            log.warning("pattern %r of list %s does not compile; skipped", item, wl.id)
    return CompiledPatterns(tuple(compiled), frozenset(fold(a) for a in wl.allow))


@dataclass(frozen=True)
class Progress:
    """How far one run of ``search_patterns`` got: ``done`` when every pattern from
    ``start`` was tried; else ``next`` is the first pattern not (completely) tried."""

    next: int
    hits: tuple[tuple[str, str], ...]
    spent: float
    done: bool


def search_patterns(
    compiled: CompiledPatterns,
    texts: list[str],
    start: int,
    limit: float,
    *,
    concurrent: bool,
) -> Progress:
    """Try the patterns from index ``start`` on ``texts`` for at most ``limit`` seconds.

    Returns each matching pattern with its first match outside the allow-list. A pattern cut
    off by the limit is not counted as tried: the caller may run it again from ``next`` with
    more time. ``concurrent`` releases the GIL while matching (for worker threads).
    """
    hits: list[tuple[str, str]] = []
    began = time.perf_counter()
    patterns = compiled.patterns
    for index in range(start, len(patterns)):
        source, pattern = patterns[index]
        found: str | None = None
        try:
            for text in texts:
                remaining = limit - (time.perf_counter() - began)
                if remaining <= 0:
                    return Progress(index, tuple(hits), time.perf_counter() - began, False)
                for m in pattern.finditer(text, timeout=remaining, concurrent=concurrent):
                    matched = str(m.group(0))
                    if fold(matched) not in compiled.allow:
                        found = matched[:100]
                        break
                if found is not None:
                    break
        except TimeoutError:
            return Progress(index, tuple(hits), time.perf_counter() - began, False)
        if found is not None:
            hits.append((source, found))
    return Progress(len(patterns), tuple(hits), time.perf_counter() - began, True)


class PatternDetector(Detector):
    """Detector for ``patterns`` conditions: category = list id, one detection per pattern."""

    name = "patterns"
    cost = 2
    reads: frozenset[str] = frozenset()
    list_kinds: tuple[str, ...] = ("patterns",)

    def __init__(self, *, config: BudgetConfig | None = None) -> None:
        self.config = config or BudgetConfig()
        self._compiled: dict[int, tuple[WordList, CompiledPatterns]] = {}

    def budget(self) -> PatternBudget:
        """A fresh budget for one message."""
        return PatternBudget(self.config)

    def prepare(self, lists: Mapping[str, WordList]) -> None:
        """Compile the pattern lists now, not on the first message."""
        for wl in lists.values():
            if wl.kind in self.list_kinds:
                self.compiled(wl)

    def compiled(self, wl: WordList) -> CompiledPatterns:
        """The compiled form of ``wl``, built once per list object."""
        entry = self._compiled.get(id(wl))
        if entry is None or entry[0] is not wl:
            entry = (wl, compile_patterns(wl))
            self._compiled[id(wl)] = entry
        return entry[1]

    async def detect(
        self,
        message: MessageView,
        condition: Condition,
        ctx: DetectContext,
        *,
        budget: PatternBudget | None = None,
        rule: str = "",
    ) -> list[Detection]:
        """A detection for each pattern of the list that matches the message.

        ``budget`` is the message's budget (default ``ctx.budget``, else a fresh one) and
        ``rule`` the id of the rule the condition belongs to (default ``ctx.rule_id``). Raises ``BudgetExhausted`` when the budget ran out
        before every pattern was tried and none matched (see the module docstring).
        """
        wl = ctx.lists.get(condition.list_id or "")
        if wl is None or wl.kind != "patterns":
            return []
        raw = message_text(message)
        if not raw:
            return []
        texts = [raw]
        folded = fold(raw)
        if folded != raw:
            texts.append(folded)
        compiled = self.compiled(wl)
        if budget is None:
            budget = ctx.budget if ctx.budget is not None else self.budget()
        if not rule:
            rule = ctx.rule_id
        step = search_patterns(
            compiled, texts, 0, min(budget.left(rule), budget.loop_left), concurrent=False
        )
        budget.spend(rule, step.spent, on_loop=True)
        hits = list(step.hits)
        if not step.done and budget.left(rule) > 0:
            step = await asyncio.to_thread(
                search_patterns, compiled, texts, step.next, budget.left(rule), concurrent=True
            )
            budget.spend(rule, step.spent, on_loop=False)
            hits.extend(step.hits)
        out = [
            Detection(self.name, wl.id, 1.0, f"pattern {source!r} matched {found!r}")
            for source, found in hits
        ]
        if step.done or out:
            return out
        return self._exhausted(wl, len(compiled.patterns) - step.next, budget, rule, message)

    def _exhausted(
        self, wl: WordList, untried: int, budget: PatternBudget, rule: str, message: MessageView
    ) -> list[Detection]:
        scope, size, spent = budget.scope(rule)
        reason = (
            f"pattern budget ran out: list {wl.id!r} had {untried} untried pattern(s) when the"
            f" {scope} budget of {size * 1000:g} ms was spent"
        )
        log.warning("message %d, rule %s: %s", message.id, rule or "-", reason)
        if self.config.on_exhausted is OnExhausted.BLOCK:
            return [Detection(self.name, wl.id, 1.0, f"{reason}; actionOnError=block")]
        raise BudgetExhausted(self.name, reason, scope=scope, spent=spent, budget=size)
