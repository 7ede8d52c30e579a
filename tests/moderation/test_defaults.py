"""The default rules and lists are valid and behave as documented."""

from __future__ import annotations

from moderation.bundled_lists import read_word_file
from moderation.defaults import REVIEW_THRESHOLD, default_lists, default_rules
from moderation.engine import Engine
from moderation.local_detectors import build_detectors
from moderation.rules import parse_list, parse_rule, rule_to_json


def test_defaults_parse_and_round_trip() -> None:
    lists = [parse_list(body) for body in default_lists()]
    ids = {wl.id for wl in lists}
    assert {"profanity-en", "profanity-de", "profanity-fr", "profanity-es", "profanity-it"} <= ids
    en = next(wl for wl in lists if wl.id == "profanity-en")
    assert 100 <= len(en.items) <= 300
    assert all(
        30 <= len(wl.items) <= 80
        for wl in lists
        if wl.id not in ("profanity-en", "known-bad-images")
    )
    known = next(wl for wl in lists if wl.id == "known-bad-images")
    assert known.kind == "image_hashes" and known.items == ()
    assert next(wl for wl in lists if wl.id == "platform-circumvention").kind == "sentences"
    rules = {r.id: r for r in (parse_rule(body, known_lists=ids) for body in default_rules())}
    openai = {k: r for k, r in rules.items() if k.startswith("openai-")}
    on_by_default = {
        "ai-toxicity",
        "ai-harmful-content",
        "ai-toxicity-flag",
        "ai-harmful-content-flag",
    }
    local_ai = {
        *on_by_default,
        "ai-scam",
        "platform-circumvention",
        "negative-sentiment",
        "ai-image-nudity",
    }
    assert set(rules) - set(openai) - local_ai == {
        "profanity",
        "spam",
        "contact-phone",
        "contact-email",
        "known-bad-images",
    }
    assert all(rules[k].enabled for k in on_by_default)
    assert not any(rules[k].enabled for k in local_ai - on_by_default)
    # Held at the review threshold, delivered and queued in the band below it; the two
    # families read the same categories at both levels.
    for family in ("ai-toxicity", "ai-harmful-content"):
        review, flag = rules[family].conditions[0], rules[f"{family}-flag"].conditions[0]
        assert rules[family].actions == ("review",) and rules[f"{family}-flag"].actions == ("flag",)
        assert review.categories == flag.categories
        for c in review.categories:
            assert review.threshold_for(c, 0) == REVIEW_THRESHOLD > flag.threshold_for(c, 0) >= 0.8
    assert len(openai) == 16 and not any(r.enabled for r in openai.values())
    assert sum(r.conditions[0].message_types == ("image",) for r in openai.values()) == 8
    assert all(
        r.conditions[0].kind == "openai" and r.conditions[0].param("prompt", "")
        for r in openai.values()
    )
    assert rules["profanity"].enabled and rules["spam"].enabled
    # Enabled with an empty list: checks uploads as soon as moderators add hashes.
    assert rules["known-bad-images"].enabled
    assert rules["known-bad-images"].conditions[0].list_id == "known-bad-images"
    assert not rules["contact-phone"].enabled and not rules["contact-email"].enabled
    for rule in rules.values():
        assert parse_rule(rule_to_json(rule), known_lists=ids) == rule


def test_defaults_cover_text_but_not_custom() -> None:
    lists = {wl.id: wl for wl in (parse_list(b) for b in default_lists())}
    rules = [parse_rule(b) for b in default_rules()]
    engine = Engine(rules, lists, build_detectors())
    assert engine.covers("message", "text")
    assert not engine.covers("custom", "poll")
    # Images and videos only through the known-bad image list (empty at first).
    assert engine.covers("message", "image") and engine.covers("message", "video")
    without = Engine([r for r in rules if r.id != "known-bad-images"], lists, build_detectors())
    assert not without.covers("message", "image")
    assert not engine.covers("message", "audio") and not engine.covers("message", "file")
    assert engine.unavailable_kinds() == frozenset()


def test_read_word_file() -> None:
    items, allow = read_word_file("# c\nfoo\n\nbar baz\nfoo\n[allow]\n# c\nfoo bar\n")
    assert items == ["foo", "bar baz"] and allow == ["foo bar"]
