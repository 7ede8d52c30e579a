"""Which verdicts quarantine an upload: only a disapproving match of an ``image_hash`` rule."""

from __future__ import annotations

from moderation.detectors.image_hash import reason_of
from moderation.types import Action, Match, Verdict, VerdictStatus
from server.media.quarantine import known_image_match


def verdict(status: VerdictStatus, *matches: Match) -> Verdict:
    actions = tuple(a for m in matches for a in m.actions)
    return Verdict(status, matches, actions, ())


def match(reason: str, *actions: Action, rule: str = "r") -> Match:
    return Match(rule, rule, 1, reason, 1.0, actions)


def test_a_blocking_hash_match_names_rule_list_and_distance() -> None:
    hit = match(reason_of(4, "bad-images", " at 5.0 s"), Action.BLOCK, rule="kb")
    found = known_image_match(verdict(VerdictStatus.DISAPPROVED, hit))
    assert found == {"ruleId": "kb", "listId": "bad-images", "distance": 4}
    # Also when another rule decided first: the hash rule's own match counts.
    words = match("matched 'x' in list profanity-en", Action.BLOCK, rule="profanity")
    assert known_image_match(verdict(VerdictStatus.DISAPPROVED, words, hit)) == found


def test_review_flag_approval_and_other_rules_quarantine_nothing() -> None:
    flagged = match(reason_of(2, "bad-images"), Action.FLAG)
    assert known_image_match(verdict(VerdictStatus.APPROVED, flagged)) is None
    held = match(reason_of(2, "bad-images"), Action.REVIEW)
    assert known_image_match(verdict(VerdictStatus.REVIEW, held)) is None
    words = match("matched 'x' in list profanity-en", Action.BLOCK)
    assert known_image_match(verdict(VerdictStatus.DISAPPROVED, words, flagged)) is None
