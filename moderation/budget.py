"""The time budget that the pattern conditions of one message share.

Matching time is bounded per message and per rule, not per pattern (``BudgetConfig``): by
default all pattern conditions of one rule may search a message for 50 ms in all, and all
pattern conditions of all rules for 200 ms; the first 2 ms may run on the event loop. The
engine asks a detector for a fresh ``PatternBudget`` per message (``Detector.budget``) and
hands that one budget, with the id of the rule being judged, to every condition of that
detector on the message (``DetectContext.budget`` and ``rule_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OnExhausted(StrEnum):
    """What an undecided pattern condition (its budget ran out) means; never "approve"."""

    REVIEW = "review"
    BLOCK = "block"


@dataclass(frozen=True)
class BudgetConfig:
    """Pattern matching limits, in seconds.

    ``per_rule``: all pattern conditions of one rule on one message; ``per_message``: all
    pattern conditions of all rules on one message; ``on_loop``: how much of a message's
    matching may run on the event loop before the rest moves to a worker thread.
    """

    per_rule: float = 0.05
    per_message: float = 0.2
    on_loop: float = 0.002
    on_exhausted: OnExhausted = OnExhausted.REVIEW


class PatternBudget:
    """The matching time left for one message: in all, per rule, and on the event loop.

    One per evaluated message (``PatternDetector.budget``). Not thread-safe, and need not be:
    the conditions of one message are judged one after another.
    """

    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self.message_left = config.per_message
        self.loop_left = config.on_loop
        self._rules: dict[str, float] = {}

    def left(self, rule: str) -> float:
        """Seconds ``rule`` may still spend on this message (0 when either budget is out)."""
        return max(0.0, min(self.message_left, self._rules.get(rule, self.config.per_rule)))

    def spend(self, rule: str, seconds: float, *, on_loop: bool) -> None:
        """Charge ``seconds`` of matching to ``rule``, the message and, if so, the loop."""
        self.message_left -= seconds
        self._rules[rule] = self._rules.get(rule, self.config.per_rule) - seconds
        if on_loop:
            self.loop_left -= seconds

    def scope(self, rule: str) -> tuple[str, float, float]:
        """Which budget ``rule`` ran out of (``"rule"`` or ``"message"``), its size and the
        seconds spent from it."""
        rule_left = self._rules.get(rule, self.config.per_rule)
        if self.message_left <= rule_left:
            return "message", self.config.per_message, self.config.per_message - self.message_left
        return "rule", self.config.per_rule, self.config.per_rule - rule_left
