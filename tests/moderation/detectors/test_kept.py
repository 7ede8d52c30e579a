"""``Kept``: the detectors' per-text answers stay bounded in count and in text length."""

from __future__ import annotations

from moderation.detectors.kept import KEPT_TEXT_CHARS, Kept


def test_the_least_recently_used_answer_goes_first() -> None:
    kept: Kept[str, int] = Kept(size=2)
    kept.put("ok", 1, "ok")
    kept.put("thanks", 2, "thanks")
    assert kept.get("ok") == 1  # "ok" is now the most recent
    kept.put("see you", 3, "see you")
    assert kept.get("thanks") is None
    assert (kept.get("ok"), kept.get("see you"), len(kept)) == (1, 3, 2)


def test_a_long_text_is_never_kept() -> None:
    kept: Kept[tuple[str, int], bool] = Kept()
    long = "x" * (KEPT_TEXT_CHARS + 1)
    kept.put((long, 7), True, long)
    assert kept.get((long, 7)) is None and len(kept) == 0
    edge = "x" * KEPT_TEXT_CHARS
    kept.put((edge, 7), True, edge)
    assert kept.get((edge, 7)) is True
