"""Normalisation: folding, tokens, leetspeak and stretched-letter variants."""

from __future__ import annotations

import pytest

from moderation.normalize import fold, text_of, tokenize, variants


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("HeLLo", "hello"),
        ("\uff46\uff55\uff4c\uff4c", "full"),
        ("cr\u00e8me br\u00fbl\u00e9e", "creme brulee"),
        ("\u0441\u0430t", "cat"),  # Cyrillic es, a
        ("a\u200bb\u200dc\ufeffd", "abcd"),
        ("Stra\u00dfe", "strasse"),
        ("\u00f8l \u0142\u00f3d\u017a", "ol lodz"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("5h1t", {"shit", "shlt"}),
        ("a$$", {"ass"}),
        ("fuuuuck", {"fuuck", "fuck"}),
        ("biitch", {"bitch"}),
        ("2024", {"2024"}),
        ("a55", {"a55"}),
        ("fodder", {"fodder"}),
    ],
)
def test_variants(token: str, expected: set[str]) -> None:
    assert expected <= set(variants(token))


def test_variants_keep_doubled_consonants() -> None:
    assert "foder" not in variants("fodder") and "raping" not in variants("rapping")


def test_tokenize_keeps_leet_symbols_and_drops_edge_bangs() -> None:
    assert [t.text for t in tokenize("sh!t! @ss, 10$ ok!!")] == ["sh!t", "@ss", "10$", "ok"]


def test_text_of_json() -> None:
    assert text_of({"a": ["x", {"b": "y"}], "n": 3}) == "x\ny"
