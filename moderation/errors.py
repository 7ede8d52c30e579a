"""Errors raised by the moderation package.

```
ModerationError                 base of everything raised here
 +-- RuleError(field, message)  a rule or word list failed validation; ``field`` is the
 |                              offending JSON path, e.g. ``conditions[0].threshold``
 +-- DetectorError              a detector could not run (bad configuration, provider failure)
      +-- Undecided             the detector could not look at what it must judge (media that
           |                    cannot be decoded): the engine holds the message for review
           +-- BudgetExhausted  a detector ran out of its time budget before it could decide
                                (regex patterns); the engine holds the message for review
```
"""

from __future__ import annotations


class ModerationError(Exception):
    """Base class of every error raised by ``moderation``."""


class RuleError(ModerationError):
    """A rule or list body is invalid; ``field`` names the JSON path at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class DetectorError(ModerationError):
    """A detector failed to run; the engine treats its condition as not matched."""

    def __init__(self, detector: str, message: str) -> None:
        super().__init__(f"{detector}: {message}")
        self.detector = detector
        self.message = message


class Undecided(DetectorError):
    """The detector could not decide: the engine turns its condition into a ``review`` match
    (reason: ``message``), never into "no match", so the message waits for a moderator."""


class BudgetExhausted(Undecided):
    """A detector ran out of time before it could say whether its condition matches.

    Unlike other detector errors this one never counts as "no match": the engine turns the
    condition into a ``review`` match whose reason is ``message``, so the message is held for
    a moderator instead of approved. ``scope`` is ``"rule"`` or ``"message"`` (which budget
    ran out), ``spent`` and ``budget`` are in seconds.
    """

    def __init__(
        self, detector: str, message: str, *, scope: str, spent: float, budget: float
    ) -> None:
        super().__init__(detector, message)
        self.scope = scope
        self.spent = spent
        self.budget = budget
