"""Rule and list validation: errors name the field; JSON round-trips exactly."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from moderation.errors import ModerationError, RuleError
from moderation.regex_safety import catastrophic_shape
from moderation.rules import (
    MAX_PATTERNS,
    Condition,
    MatchMode,
    list_to_json,
    parse_list,
    parse_rule,
    rule_to_json,
)
from moderation.types import Action

FULL: dict[str, Any] = {
    "id": "profanity",
    "name": "Profanity filter",
    "description": "...",
    "enabled": True,
    "filters": {
        "sender": {
            "uids": ["a"],
            "roles": ["user"],
            "tags": ["new"],
            "nameContains": "bot",
            "createdAfter": 10,
            "createdBefore": None,
        },
        "receiver": {
            "types": ["user", "group"],
            "ids": [],
            "tags": [],
            "groupTypes": ["public"],
            "nameContains": None,
            "createdAfter": None,
            "createdBefore": 20,
        },
    },
    "match": "all",
    "conditions": [
        {"kind": "keywords", "messageTypes": ["text", "custom"], "listId": "profanity-en"},
        {"kind": "toxicity", "messageTypes": ["text"], "categories": ["insult"], "threshold": 0.8},
        {"kind": "phone", "messageTypes": ["text"], "regions": ["GB"], "contextWindow": 3},
        {"kind": "spam", "messageTypes": ["text"], "repeatThreshold": 4, "similarity": 0.8},
        {"kind": "openai", "messageTypes": ["image"], "prompt": "is it bad?", "model": "m"},
    ],
    "actions": ["block", "flag"],
    "revision": 3,
    "createdAt": 1764000000,
    "updatedAt": 1764000100,
}


def minimal(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "r1",
        "name": "R",
        "conditions": [{"kind": "keywords", "messageTypes": ["text"], "listId": "l"}],
        "actions": ["block"],
    }
    body.update(changes)
    return body


def test_full_rule_round_trips_exactly() -> None:
    rule = parse_rule(FULL, known_lists={"profanity-en"})
    assert rule.match is MatchMode.ALL
    assert rule.actions == (Action.BLOCK, Action.FLAG)
    assert rule.conditions[1].threshold == 0.8
    assert rule.conditions[2].param("regions", ()) == ("GB",)
    assert rule.conditions[2].context_window == 3
    assert rule_to_json(rule) == FULL
    assert parse_rule(rule_to_json(rule)) == rule


def test_defaults_fill_in() -> None:
    rule = parse_rule(minimal())
    assert rule.enabled and rule.match is MatchMode.ANY and rule.revision == 0
    out = rule_to_json(rule)
    assert out["filters"] == {
        "sender": {
            "uids": [],
            "roles": [],
            "tags": [],
            "nameContains": None,
            "createdAfter": None,
            "createdBefore": None,
        },
        "receiver": {
            "types": [],
            "ids": [],
            "tags": [],
            "groupTypes": [],
            "nameContains": None,
            "createdAfter": None,
            "createdBefore": None,
        },
    }
    assert out["conditions"] == [{"kind": "keywords", "messageTypes": ["text"], "listId": "l"}]


def _set(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(FULL)
    target: Any = body
    keys = path.replace("[", ".").replace("]", "").split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("id", "", "id"),
        ("id", "has space", "id"),
        ("id", 5, "id"),
        ("name", None, "name"),
        ("enabled", "yes", "enabled"),
        ("match", "most", "match"),
        ("conditions", [], "conditions"),
        ("conditions", KeyError, "conditions"),
        ("actions", [], "actions"),
        ("actions", ["block", "nuke"], "actions[1]"),
        ("revision", -1, "revision"),
        ("createdAt", "now", "createdAt"),
        ("extra", 1, "extra"),
        ("filters.sender.uids", "a", "filters.sender.uids"),
        ("filters.sender.uids", ["a", 3], "filters.sender.uids[1]"),
        ("filters.sender.createdAfter", True, "filters.sender.createdAfter"),
        ("filters.sender.colour", [], "filters.sender.colour"),
        ("filters.receiver.types", ["channel"], "filters.receiver.types[0]"),
        ("filters.other", {}, "filters.other"),
        ("conditions[0].kind", "magic", "conditions[0].kind"),
        ("conditions[0].messageTypes", [], "conditions[0].messageTypes"),
        ("conditions[0].listId", KeyError, "conditions[0].listId"),
        ("conditions[0].listId", "unknown-list", "conditions[0].listId"),
        ("conditions[1].threshold", 1.5, "conditions[1].threshold"),
        ("conditions[1].threshold", "high", "conditions[1].threshold"),
        ("conditions[1].threshold", True, "conditions[1].threshold"),
        ("conditions[1].listId", "profanity-en", "conditions[1].listId"),
        ("conditions[1].categories", [1], "conditions[1].categories[0]"),
        ("conditions[2].contextWindow", 11, "conditions[2].contextWindow"),
        ("conditions[2].contextWindow", -1, "conditions[2].contextWindow"),
        ("conditions[2].regions", ["XX"], "conditions[2].regions[0]"),
        ("conditions[2].prompt", "hi", "conditions[2].prompt"),
        ("conditions[3].repeatThreshold", 1, "conditions[3].repeatThreshold"),
        ("conditions[3].similarity", 2, "conditions[3].similarity"),
        ("conditions[4].prompt", 3, "conditions[4].prompt"),
        ("conditions[4]", "keywords", "conditions[4]"),
    ],
)
def test_errors_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(_set(path, value), known_lists={"profanity-en"})
    assert info.value.field == field
    assert isinstance(info.value, ModerationError) and info.value.message


def test_non_object_body() -> None:
    with pytest.raises(RuleError):
        parse_rule(["not", "an", "object"])


def test_known_lists_optional() -> None:
    assert parse_rule(minimal(), known_lists=None).conditions[0].list_id == "l"


@pytest.mark.parametrize(
    ("condition", "category", "message_type", "applies"),
    [
        (Condition("keywords", ("text",)), "message", "text", True),
        (Condition("keywords", ("text",)), "message", "image", False),
        (Condition("keywords", ("custom",)), "custom", "poll", True),
        (Condition("keywords", ("poll",)), "custom", "poll", True),
        (Condition("keywords", ("poll",)), "custom", "vote", False),
        (Condition("keywords", ("text",)), "custom", "poll", False),
    ],
)
def test_condition_applies_to(
    condition: Condition, category: str, message_type: str, applies: bool
) -> None:
    assert condition.applies_to(category, message_type) is applies


# ---------------------------------------------------------------------- lists


def test_list_round_trip_and_storage_fields() -> None:
    body = {"id": "w", "name": "Words", "kind": "keywords", "items": ["a", " b ", "a"]}
    wl = parse_list({**body, "createdAt": 1, "updatedAt": 2})
    assert wl.items == ("a", "b") and wl.allow == ()
    assert list_to_json(wl) == {
        "id": "w",
        "name": "Words",
        "kind": "keywords",
        "items": ["a", "b"],
        "allow": [],
    }
    assert parse_list(list_to_json(wl)) == wl


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": None}, "id"),
        ({"kind": "emoji"}, "kind"),
        ({"items": "abc"}, "items"),
        ({"items": ["ok", ""]}, "items[1]"),
        ({"items": ["ok", 7]}, "items[1]"),
        ({"items": ["x" * 501]}, "items[0]"),
        ({"allow": [None]}, "allow[0]"),
        ({"colour": "red"}, "colour"),
        ({"kind": "patterns", "items": ["ok", "(a"]}, "items[1]"),
    ],
)
def test_list_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    body = {"id": "w", "name": "Words", "kind": "keywords", "items": ["a"], **changes}
    with pytest.raises(RuleError) as info:
        parse_list(body)
    assert info.value.field == field


# ---------------------------------------------------------------------- pattern shapes


@pytest.mark.parametrize(
    ("pattern", "shape"),
    [
        # nested quantifiers
        (r"(a+)+", "nested quantifier"),
        (r"(a+)+$", "nested quantifier"),
        (r"(a*)*", "nested quantifier"),
        (r"(\w+\s?)+", "nested quantifier"),
        (r"^(\w+\s?)*$", "nested quantifier"),
        (r"(\d+\d)+", "nested quantifier"),
        (r"(.+,)+", "nested quantifier"),
        (r"(x+x+)+y", "nested quantifier"),
        (r"(a?a?)+", "nested quantifier"),
        (r"((ab)+)+", "nested quantifier"),
        (r"(?:[a-z]+|\d+)+", "nested quantifier"),
        (r"(\w+[-\d])+", "nested quantifier"),
        (r"(?:\s*\w+\s*)+$", "nested quantifier"),
        (r"(\p{L}+\s?)+", "nested quantifier"),
        (r"(a+){3,}", "nested quantifier"),
        (r"(?x) ( a + ) +", "nested quantifier"),
        (r"x(?=(a+)+y)", "nested quantifier"),  # inside a lookahead too
        (r"^(([a-z])+.)+[A-Z]([a-z])+$", "nested quantifier"),
        # overlapping alternations under a repeat
        (r"(a|a)*", "overlapping alternatives"),
        (r"(a|aa)*b", "overlapping alternatives"),
        (r"(\w|\d)+", "overlapping alternatives"),
        (r"(?:\w|\d)+", "overlapping alternatives"),
        (r"(.|\s)*x", "overlapping alternatives"),
        (r"(a|b|ab)*c", "overlapping alternatives"),
        (r"(?:A|a)+", "overlapping alternatives"),  # patterns run case-insensitively
    ],
)
def test_catastrophic_shapes_are_found(pattern: str, shape: str) -> None:
    found = catastrophic_shape(pattern)
    assert found is not None and found.startswith(shape)


@pytest.mark.parametrize(
    "pattern",
    [
        r"\bfoo\b",
        r"(ab)+",
        r"(a+b)+",
        r"(\d+\.)+",
        r"(\w+\s)+",
        r"(?:\s*\w)+",
        r"(-?\d)+",
        r"(cat|car)+",
        r"(?:a|b)*",
        r"[A-Za-z]+",
        r"\p{L}+",
        r"\bbuy\s+now\b",
        r"free\s+crypto",
        r"(?i)(?:f|ph)ree",
        r"(?:bit\.ly|t\.co|goo\.gl)/\w+",
        # e-mail addresses and domains
        r"[\w.+-]+@[\w-]+\.[\w.-]+",
        r"[^@\s]+@[^@\s]+\.[^@\s]+",
        r"(?:[a-z0-9-]+\.)+[a-z]{2,}",
        r"\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}\b",
        r"(?:https?://)?(?:www\.)?\w+\.com",
        # phone numbers, cards, addresses
        r"\+?\d{1,3}[\s.-]?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}",
        r"(\+\d{1,2}\s)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}",
        r"(?:\d[\s.-]?){7,}",
        r"\d{4}-\d{4}-\d{4}-\d{4}",
        r"(\d{1,3}\.){3}\d{1,3}",
        # a word boundary pins where a word ends
        r"(?:\b\w+\b\W*){1,10}",
        r"(\b\w+\s?)+",
        # never backtracked into, or too few splits to matter
        r"(a++)+",
        r"(?>a+)+",
        r"(\d{1,3}){4}",
        # slow but only polynomial: left to the runtime budget
        r".*a.*a.*a.*b",
        r"(\w+)\1",
    ],
)
def test_ordinary_patterns_pass_the_shape_check(pattern: str) -> None:
    assert catastrophic_shape(pattern) is None


def test_catastrophic_pattern_refused_with_its_index_and_text() -> None:
    body = {"id": "p", "kind": "patterns", "items": [r"\bok\b", r"(\w+\s?)+$"]}
    with pytest.raises(RuleError) as info:
        parse_list(body)
    assert info.value.field == "items[1]"
    assert info.value.message.startswith(
        "pattern '(\\\\w+\\\\s?)+$' can backtrack catastrophically: nested quantifier"
    )


def test_pattern_count_is_capped() -> None:
    items = [f"word{i}" for i in range(MAX_PATTERNS + 1)]
    with pytest.raises(RuleError) as info:
        parse_list({"id": "p", "kind": "patterns", "items": items})
    assert info.value.field == "items" and str(MAX_PATTERNS) in info.value.message
    assert len(parse_list({"id": "p", "kind": "patterns", "items": items[:-1]}).items) == 500
    # keyword lists keep their own, larger cap
    assert len(parse_list({"id": "k", "kind": "keywords", "items": items}).items) == 501


def test_stored_lists_are_not_held_to_later_checks() -> None:
    # A list written before the shape check existed still loads (the runtime budget bounds
    # it); one that does not compile is still refused.
    items = [r"(a+)+$", *(f"w{i}" for i in range(MAX_PATTERNS))]
    wl = parse_list({"id": "p", "kind": "patterns", "items": items}, stored=True)
    assert wl.items[0] == r"(a+)+$" and len(wl.items) == MAX_PATTERNS + 1
    with pytest.raises(RuleError):
        parse_list({"id": "p", "kind": "patterns", "items": ["(a"]}, stored=True)


def test_lowest_threshold_is_the_smallest_a_category_can_get() -> None:
    def cond(body: dict[str, object]) -> Condition:
        return parse_rule(
            {"id": "r", "name": "r", "conditions": [body], "actions": ["flag"]}
        ).conditions[0]

    per_category = {"kind": "toxicity", "messageTypes": ["text"], "threshold": 0.9}
    assert cond(per_category).lowest_threshold(0.5) == 0.9
    with_map = {**per_category, "thresholds": {"insult": 0.7, "threat": 0.95}}
    assert cond(with_map).lowest_threshold(0.5) == 0.7
    # the categories the map leaves out get ``threshold``, else the engine's default
    no_base = {"kind": "toxicity", "messageTypes": ["text"], "thresholds": {"insult": 0.8}}
    assert cond(no_base).lowest_threshold(0.5) == 0.5
