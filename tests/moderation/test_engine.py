"""Engine semantics: filters, any/all, actions -> status, ordering, context, unavailable kinds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from moderation.detectors.base import DetectContext, Detector
from moderation.engine import Engine
from moderation.local_detectors import build_detectors
from moderation.rules import Condition, Rule, WordList, parse_rule
from moderation.types import Action, Detection, MessageView, VerdictStatus

Make = Callable[..., MessageView]

LISTS = {
    "bad": WordList("bad", "bad", "keywords", ("badword",)),
    "worse": WordList("worse", "worse", "keywords", ("worseword",)),
}


def rule(rule_id: str = "r", **overrides: Any) -> Rule:
    body: dict[str, Any] = {
        "id": rule_id,
        "name": f"Rule {rule_id}",
        "conditions": [{"kind": "keywords", "messageTypes": ["text"], "listId": "bad"}],
        "actions": ["block"],
    }
    body.update(overrides)
    return parse_rule(body, known_lists=LISTS.keys())


async def status(rules: list[Rule], message: MessageView, **kw: Any) -> VerdictStatus:
    return (await Engine(rules, LISTS, build_detectors(), **kw).evaluate(message)).status


@pytest.mark.parametrize(
    ("sender_filter", "user", "applies"),
    [
        ({}, {}, True),
        ({"uids": ["alice"]}, {}, True),
        ({"uids": ["carol"]}, {}, False),
        ({"roles": ["user"]}, {}, True),
        ({"roles": ["moderator"]}, {}, False),
        ({"tags": ["new", "vip"]}, {"sender_tags": ("vip",)}, True),
        ({"tags": ["new"]}, {"sender_tags": ("vip",)}, False),
        ({"nameContains": "BOT"}, {"sender_name": "SpamBot 3000"}, True),
        ({"nameContains": "bot"}, {"sender_name": "Alice"}, False),
        ({"createdAfter": 500}, {"sender_created": 1000}, True),
        ({"createdAfter": 1000}, {"sender_created": 1000}, False),
        ({"createdBefore": 2000}, {"sender_created": 1000}, True),
        ({"createdBefore": 1000}, {"sender_created": 1000}, False),
    ],
)
async def test_sender_filters(
    make_message: Make, sender_filter: dict[str, Any], user: dict[str, Any], applies: bool
) -> None:
    r = rule(filters={"sender": sender_filter})
    got = await status([r], make_message("a badword", **user))
    assert got is (VerdictStatus.DISAPPROVED if applies else VerdictStatus.APPROVED)


@pytest.mark.parametrize(
    ("receiver_filter", "receiver", "applies"),
    [
        ({"types": ["user", "group"]}, {}, True),
        ({"types": ["group"]}, {}, False),
        ({"types": ["group"]}, {"receiver_type": "group", "group_type": "public"}, True),
        ({"ids": ["bob"]}, {}, True),
        ({"ids": ["dave"]}, {}, False),
        ({"tags": ["kids"]}, {"receiver_tags": ("kids", "x")}, True),
        ({"tags": ["kids"]}, {}, False),
        ({"groupTypes": ["public"]}, {"receiver_type": "group", "group_type": "public"}, True),
        ({"groupTypes": ["public"]}, {"receiver_type": "group", "group_type": "private"}, False),
        ({"groupTypes": ["public"]}, {}, True),  # direct messages pass groupTypes
        ({"nameContains": "teen"}, {"receiver_name": "Teens Lounge"}, True),
        ({"nameContains": "teen"}, {}, False),
        ({"createdAfter": 10, "createdBefore": 5000}, {"receiver_created": 1000}, True),
        ({"createdBefore": 10}, {"receiver_created": 1000}, False),
    ],
)
async def test_receiver_filters(
    make_message: Make, receiver_filter: dict[str, Any], receiver: dict[str, Any], applies: bool
) -> None:
    r = rule(filters={"receiver": receiver_filter})
    got = await status([r], make_message("a badword", **receiver))
    assert got is (VerdictStatus.DISAPPROVED if applies else VerdictStatus.APPROVED)


TWO = [
    {"kind": "keywords", "messageTypes": ["text"], "listId": "bad"},
    {"kind": "keywords", "messageTypes": ["text"], "listId": "worse"},
]


@pytest.mark.parametrize(
    ("match", "text", "matched"),
    [
        ("any", "badword", True),
        ("any", "worseword", True),
        ("any", "fine", False),
        ("all", "badword", False),
        ("all", "badword and worseword", True),
    ],
)
async def test_match_any_all(make_message: Make, match: str, text: str, matched: bool) -> None:
    verdict = await Engine([rule(match=match, conditions=TWO)], LISTS, build_detectors()).evaluate(
        make_message(text)
    )
    assert bool(verdict.matches) is matched
    if matched and match == "all":
        assert "badword" in verdict.matches[0].reason and "worseword" in verdict.matches[0].reason


async def test_all_only_counts_conditions_for_this_type(make_message: Make) -> None:
    conditions = [TWO[0], {"kind": "keywords", "messageTypes": ["image"], "listId": "worse"}]
    verdict = await Engine(
        [rule(match="all", conditions=conditions)], LISTS, build_detectors()
    ).evaluate(make_message("badword"))
    assert verdict.status is VerdictStatus.DISAPPROVED


@pytest.mark.parametrize(
    ("actions", "expected", "flagged"),
    [
        (["block"], VerdictStatus.DISAPPROVED, False),
        (["review"], VerdictStatus.REVIEW, False),
        (["flag"], VerdictStatus.APPROVED, True),
        (["kick"], VerdictStatus.DISAPPROVED, False),
        (["ban"], VerdictStatus.DISAPPROVED, False),
        (["block_user"], VerdictStatus.DISAPPROVED, False),
        (["review", "flag"], VerdictStatus.REVIEW, True),
        (["flag", "block"], VerdictStatus.DISAPPROVED, True),
    ],
)
async def test_actions_to_status(
    make_message: Make, actions: list[str], expected: VerdictStatus, flagged: bool
) -> None:
    verdict = await Engine([rule(actions=actions)], LISTS, build_detectors()).evaluate(
        make_message("badword")
    )
    assert verdict.status is expected and verdict.flagged is flagged
    assert set(verdict.actions) == {Action(a) for a in actions}


async def test_most_severe_match_first_and_actions_combined(make_message: Make) -> None:
    rules = [
        rule("flagger", actions=["flag"]),
        rule("reviewer", actions=["review"]),
        rule("blocker", actions=["block"], conditions=[TWO[1]]),
    ]
    verdict = await Engine(rules, LISTS, build_detectors()).evaluate(
        make_message("badword worseword")
    )
    assert verdict.status is VerdictStatus.DISAPPROVED
    assert [m.rule_id for m in verdict.matches] == ["blocker", "reviewer", "flagger"]
    assert verdict.actions == (Action.BLOCK, Action.REVIEW, Action.FLAG)
    review = await Engine(rules[:2], LISTS, build_detectors()).evaluate(make_message("badword"))
    assert review.status is VerdictStatus.REVIEW and review.matches[0].rule_id == "reviewer"


async def test_match_carries_rule_identity(make_message: Make) -> None:
    r = rule("x", name="The X", revision=7)
    verdict = await Engine([r], LISTS, build_detectors()).evaluate(make_message("badword"))
    match = verdict.matches[0]
    assert (match.rule_id, match.rule_name, match.revision, match.confidence) == (
        "x",
        "The X",
        7,
        1.0,
    )
    assert "badword" in match.reason and match.actions == (Action.BLOCK,)
    assert [d.category for d in verdict.detections] == ["bad"]


async def test_disabled_rules_ignored_but_dry_run_works(make_message: Make) -> None:
    r = rule(enabled=False)
    engine = Engine([r], LISTS, build_detectors())
    assert (await engine.evaluate(make_message("badword"))).status is VerdictStatus.APPROVED
    assert not engine.covers("message", "text")
    match = await engine.evaluate_rule(r, make_message("badword"))
    assert match is not None and match.rule_id == "r"
    assert await engine.evaluate_rule(r, make_message("fine")) is None


@pytest.mark.parametrize(
    ("types", "category", "message_type", "covered"),
    [
        (["text"], "message", "text", True),
        (["text"], "message", "image", False),
        (["custom"], "custom", "anything", True),
        (["poll"], "custom", "poll", True),
        (["text"], "custom", "poll", False),
    ],
)
def test_covers(types: list[str], category: str, message_type: str, covered: bool) -> None:
    conditions = [{"kind": "keywords", "messageTypes": types, "listId": "bad"}]
    assert (
        Engine([rule(conditions=conditions)], LISTS, build_detectors()).covers(
            category, message_type
        )
        is covered
    )


async def test_custom_messages_scanned_in_data(make_message: Make) -> None:
    conditions = [{"kind": "keywords", "messageTypes": ["custom"], "listId": "bad"}]
    message = make_message(None, category="custom", message_type="card", data={"t": "badword"})
    assert await status([rule(conditions=conditions)], message) is VerdictStatus.DISAPPROVED


async def test_unavailable_kinds_never_match(make_message: Make) -> None:
    conditions = [
        {"kind": "custom_api", "messageTypes": ["text"], "threshold": 0.1},
        {"kind": "openai", "messageTypes": ["text"], "prompt": "?"},
    ]
    r = rule(conditions=conditions)
    engine = Engine(
        [r, rule("k", enabled=False, conditions=[{"kind": "image", "messageTypes": ["image"]}])],
        LISTS,
        build_detectors(),
    )
    assert engine.unavailable_kinds() == {"custom_api", "openai"}
    assert (await engine.evaluate(make_message("badword"))).status is VerdictStatus.APPROVED
    assert engine.covers("message", "text")


class Fake(Detector):
    """A detector that returns fixed detections and counts its calls."""

    def __init__(self, name: str, cost: int, detections: list[Detection]) -> None:
        self.name = name
        self.cost = cost
        self.categories: tuple[str, ...] = tuple(d.category for d in detections)
        self.detections = detections
        self.calls = 0
        self.windows: list[int] = []

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        self.calls += 1
        self.windows.append(len(ctx.context))
        return self.detections


async def test_threshold_and_categories(make_message: Make) -> None:
    fake = Fake(
        "toxicity",
        100,
        [Detection("toxicity", "insult", 0.93), Detection("toxicity", "threat", 0.2)],
    )

    def tox(**cond: Any) -> Rule:
        return rule(conditions=[{"kind": "toxicity", "messageTypes": ["text"], **cond}])

    cases = [
        (tox(), True),  # default threshold 0.5
        (tox(threshold=0.95), False),
        (tox(categories=["threat"]), False),
        (tox(categories=["threat"], threshold=0.1), True),
        (tox(categories=["insult"], threshold=0.8), True),
    ]
    for r, matched in cases:
        verdict = await Engine([r], LISTS, {"toxicity": fake}).evaluate(make_message("x"))
        assert bool(verdict.matches) is matched, r.conditions
    verdict = await Engine([tox(threshold=0.8)], LISTS, {"toxicity": fake}).evaluate(
        make_message("x")
    )
    assert verdict.matches[0].reason == "insult 0.93 >= 0.80"


async def test_per_category_thresholds_below_the_condition_threshold(make_message: Make) -> None:
    """A category's own threshold counts even when it is below the condition's (the engine
    rules out a condition quickly when no score reaches its lowest threshold)."""
    fake = Fake(
        "toxicity",
        100,
        [Detection("toxicity", "insult", 0.4), Detection("toxicity", "threat", 0.2)],
    )

    def tox(**cond: Any) -> Rule:
        return rule(conditions=[{"kind": "toxicity", "messageTypes": ["text"], **cond}])

    cases = [
        (tox(threshold=0.9), False),
        (tox(threshold=0.9, thresholds={"insult": 0.3}), True),
        (tox(threshold=0.9, thresholds={"threat": 0.3}), False),
        (tox(threshold=0.9, thresholds={"threat": 0.2}), True),  # equal to it is a hit
        (tox(thresholds={"insult": 0.45, "threat": 0.25}), False),
        (tox(categories=["threat"], threshold=0.9, thresholds={"insult": 0.3}), False),
        (tox(), False),  # default 0.5
    ]
    for r, matched in cases:
        engine = Engine([r], LISTS, {"toxicity": fake})
        for _ in range(2):  # the second time from the engine's per-condition cache
            verdict = await engine.evaluate(make_message("x"))
            assert bool(verdict.matches) is matched, r.conditions


async def test_expensive_rules_skipped_after_block(make_message: Make) -> None:
    fake = Fake("toxicity", 100, [Detection("toxicity", "insult", 0.9)])
    rules = [
        rule("ai", actions=["flag"], conditions=[{"kind": "toxicity", "messageTypes": ["text"]}]),
        rule("words", actions=["block"]),
    ]
    detectors: dict[str, Any] = {**_local(), "toxicity": fake}
    engine = Engine(rules, LISTS, detectors)
    verdict = await engine.evaluate(make_message("badword"))
    assert [m.rule_id for m in verdict.matches] == ["words"] and fake.calls == 0
    verdict = await engine.evaluate(make_message("fine"))
    assert [m.rule_id for m in verdict.matches] == ["ai"] and fake.calls == 1


async def test_condition_detections_computed_once(make_message: Make) -> None:
    fake = Fake("spam", 4, [Detection("spam", "burst", 1.0)])
    shared = parse_rule(
        {"id": "s", "conditions": [{"kind": "spam", "messageTypes": ["text"]}], "actions": ["flag"]}
    )
    engine = Engine([shared], LISTS, {"spam": fake})
    await engine.evaluate(make_message("x"))
    assert fake.calls == 1


async def test_failing_detector_is_logged_and_does_not_match(
    make_message: Make, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Fake):
        async def detect(
            self, message: MessageView, condition: Condition, ctx: DetectContext
        ) -> list[Detection]:
            raise RuntimeError("down")

    r = rule(conditions=[{"kind": "toxicity", "messageTypes": ["text"]}])
    verdict = await Engine([r], LISTS, {"toxicity": Broken("toxicity", 100, [])}).evaluate(
        make_message("x")
    )
    assert verdict.status is VerdictStatus.APPROVED
    assert "down" in caplog.text


async def test_context_window_from_condition_or_engine(make_message: Make) -> None:
    fake = Fake("phone", 5, [])
    context = [make_message(f"m{i}", id=i) for i in range(8)]
    own = rule("own", conditions=[{"kind": "phone", "messageTypes": ["text"], "contextWindow": 2}])
    default = rule("default", conditions=[{"kind": "phone", "messageTypes": ["text"]}])
    none = rule(
        "none", conditions=[{"kind": "phone", "messageTypes": ["text"], "contextWindow": 0}]
    )
    engine = Engine([own, default, none], LISTS, {"phone": fake}, context_window=5)
    await engine.evaluate(make_message("x", id=9), context=context)
    assert sorted(fake.windows) == [0, 2, 5]


async def test_phone_split_across_messages_blocked_with_context(make_message: Make) -> None:
    r = rule(conditions=[{"kind": "phone", "messageTypes": ["text"], "contextWindow": 1}])
    engine = Engine([r], LISTS, build_detectors())
    previous = make_message("text me on 415 555", id=1)
    current = make_message("26 71", id=2)
    assert (await engine.evaluate(current)).status is VerdictStatus.APPROVED
    verdict = await engine.evaluate(current, context=[previous])
    assert verdict.status is VerdictStatus.DISAPPROVED
    assert "+14155552671" in verdict.matches[0].reason


async def test_spam_from_sender_recent(make_message: Make) -> None:
    r = rule(conditions=[{"kind": "spam", "messageTypes": ["text"]}], actions=["review"])
    text = "Win a free cruise, click my profile"
    recent = [
        make_message(text, id=i, sent_at=1_764_000_000 - 100 * (3 - i), receiver=f"u{i}")
        for i in (1, 2)
    ]
    verdict = await Engine([r], LISTS, build_detectors()).evaluate(
        make_message(text, id=3), sender_recent=recent
    )
    assert verdict.status is VerdictStatus.REVIEW
    assert verdict.matches[0].reason.startswith("sent 3 times")


async def test_detect_all_reports_every_category(make_message: Make) -> None:
    engine = Engine([], LISTS, build_detectors())
    found = await engine.detect_all(make_message("badword, call 415 555 2671"))
    by = {(d.detector, d.category): d.confidence for d in found}
    assert by[("keywords", "bad")] == 1.0 and by[("keywords", "worse")] == 0.0
    assert by[("phone", "phone")] == 1.0 and by[("email", "email")] == 0.0
    assert {("spam", "repeat"), ("spam", "burst"), ("spam", "links")} <= by.keys()
    assert all(0.0 <= d.confidence <= 1.0 for d in found)


def _local() -> dict[str, Any]:
    return build_detectors()


def test_what_the_enabled_rules_read() -> None:
    keywords = {"kind": "keywords", "messageTypes": ["text"], "listId": "words"}
    phone = {"kind": "phone", "messageTypes": ["text"], "contextWindow": 3}
    lists = {"words": WordList("words", "w", "keywords", ("zork",))}

    def engine(*conditions: dict[str, Any], enabled: bool = True) -> Engine:
        body = {"id": "r", "enabled": enabled, "conditions": list(conditions), "actions": ["block"]}
        return Engine(
            [parse_rule(body, known_lists=lists)], lists, build_detectors(), context_window=5
        )

    only_words = engine(keywords)
    assert (only_words.context_needed(), only_words.sender_recent_needed()) == (0, False)
    with_phone = engine(keywords, phone, {"kind": "spam", "messageTypes": ["text"]})
    assert (with_phone.context_needed(), with_phone.sender_recent_needed()) == (3, True)
    assert engine(phone, enabled=False).context_needed() == 0
    # A kind without a registered detector is assumed to read everything.
    assert engine({"kind": "custom_api", "messageTypes": ["video"]}).context_needed() == 5


def test_an_expensive_condition_is_inline_for_a_text_its_detector_settles() -> None:
    class Cascade(Fake):
        def settles(self, text: str, condition: Condition) -> bool:
            return text == "clean"

    r = rule(conditions=[{"kind": "toxicity", "messageTypes": ["text"]}])
    engine = Engine([r], LISTS, {"toxicity": Cascade("toxicity", 100, [])}, cascade=True)
    assert not engine.inline_for("message", "text")
    assert engine.inline_for("message", "text", "clean")
    assert not engine.inline_for("message", "text", "other")
    # without the cascade (the default) the detector's cheap stage is never asked
    off = Engine([r], LISTS, {"toxicity": Cascade("toxicity", 100, [])})
    assert not off.inline_for("message", "text", "clean")


def test_verdict_detections_count_equal_ones_once() -> None:
    """Equal detections (distinct objects) are listed once, in first-seen order; detections
    that differ in any field, or that share only detector and category, all stay."""
    from moderation.engine import verdict_of

    a = Detection("toxicity", "insult", 0.4, "encoder stage")
    same = Detection("toxicity", "insult", 0.4, "encoder stage")
    other = Detection("toxicity", "insult", 0.5, "encoder stage")
    b = Detection("scam", "scam", 0.1)
    many = [Detection("toxicity", f"c{i}", 0.1) for i in range(9)]
    assert verdict_of([], [a, b, same]).detections == (a, b)
    assert verdict_of([], [a, other, b]).detections == (a, other, b)
    assert verdict_of([], [*many, a, *many, same, b]).detections == (*many, a, b)
    assert verdict_of([], [*many, b, a]).detections == (*many, b, a)
