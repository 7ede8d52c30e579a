"""Cheap signals read off a message's text, shared by the local text models (``heads.py``)
and the scam detector: links and their domains, URL shorteners, pressure and money words,
capitals; and whether a text looks like another language than English (the cascade never
settles those, ``may_settle``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SHORTENERS: frozenset[str] = frozenset(
    {
        "bit.ly",
        "bitly.com",
        "tinyurl.com",
        "t.co",
        "goo.gl",
        "ow.ly",
        "is.gd",
        "v.gd",
        "buff.ly",
        "cutt.ly",
        "rebrand.ly",
        "shorturl.at",
        "rb.gy",
        "t.ly",
        "tiny.cc",
        "s.id",
        "shorte.st",
        "adf.ly",
        "bl.ink",
        "soo.gd",
        "clck.ru",
        "qr.ae",
        "u.to",
        "x.co",
        "lnkd.in",
        "trib.al",
        "snip.ly",
        "short.io",
        "tiny.one",
    }
)
_URL_RE = re.compile(
    r"\b(?:https?://)?(?:www\.)?((?:[a-z0-9-]{1,63}\.)+[a-z]{2,12})(?:/[^\s]*)?",
    re.IGNORECASE,
)
_TLDS = frozenset(
    "com net org io ly gg xyz ru top info biz click link site online shop live me co to cc tk"  # noqa: SIM905
    " uk de fr es it nl pt us ca be at ch eu app dev ai gd id ae in cn br pl".split()
)
_URGENCY_RE = re.compile(
    r"\b(?:urgent(?:ly)?|immediately|right away|act now|asap|limited time|last chance|"
    r"expires?|expiring|within \d+ ?(?:h|hours?|minutes?|days?)|today only|final (?:notice|"
    r"warning)|before it'?s too late|don'?t tell|hurry|suspended|locked|verify (?:now|your)|"
    r"24 ?h(?:ours?)?)\b",
    re.IGNORECASE,
)
MONEY_RE = re.compile(
    r"[$€£]\s?\d|\b\d[\d,.]*\s?(?:k\b|dollars?|usd|eur(?:os?)?|pounds?|gbp|btc|eth|usdt)\b|"
    r"\b(?:prize|cash|bitcoin|crypto|wallet|gift ?cards?|wire|western union|profit|"
    r"invest(?:ment)?|lottery|jackpot|fee)\b",
    re.IGNORECASE,
)

#: For an ASCII text, lower-cased: at least one of these is in every text the pattern above
#: finds something in (a quick test that rules out most messages; exact, since for ASCII
#: text and these ASCII patterns ignoring case is lower-casing). A word added to a pattern goes
#: here too: tests/moderation/detectors/test_cascade_fast_path.py expands every alternative of
#: both patterns and fails on one these lists would rule out.
_URGENCY_NEEDS = (
    "urgent", "immediately", "right away", "act now", "asap", "limited time", "last chance",
    "expir", "within", "today only", "final ", "before it", "don", "hurry", "suspended",
    "locked", "verify ", "24",
)  # fmt: skip
_MONEY_NEEDS = (
    "$", "prize", "cash", "bitcoin", "crypto", "wallet", "gift", "wire", "western union",
    "profit", "invest", "lottery", "jackpot", "fee",
)  # fmt: skip
_DIGIT_RE = re.compile("[0-9]")


def money_hits(text: str) -> int:
    """How many money words and amounts ("$50", "prize", "0.5 btc") ``text`` holds."""
    if text.isascii():
        low = text.lower()
        if not _DIGIT_RE.search(low) and not any(w in low for w in _MONEY_NEEDS):
            return 0
    return len(MONEY_RE.findall(text))


def domains(text: str) -> list[str]:
    """Domains of the links in ``text`` (lower case), only those with a plausible TLD."""
    out: list[str] = []
    if "." not in text:  # every link the pattern finds has a dot
        return out
    for m in _URL_RE.finditer(text):
        host = m.group(1).lower()
        if host.rsplit(".", 1)[-1] in _TLDS:
            out.append(host[4:] if host.startswith("www.") else host)
    return out


def shortener_links(text: str) -> list[str]:
    """Links in ``text`` that go through a known URL shortener."""
    return [d for d in domains(text) if d in SHORTENERS]


def urgency_hits(text: str) -> int:
    """How many pressure words and phrases ("urgent", "within 24 hours") ``text`` holds."""
    if text.isascii():
        low = text.lower()
        if not any(w in low for w in _URGENCY_NEEDS):
            return 0
    return len(_URGENCY_RE.findall(text))


#: ASCII bytes that are not letters, and those that are not capitals (``caps``).
_NOT_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())
_NOT_CAPITALS = bytes(b for b in range(128) if not chr(b).isupper())


def caps(text: str) -> float:
    """The share of capitals among the letters of ``text`` (0 under 8 letters); counted on
    the bytes for an ASCII text (the same counts, without a Python step per character)."""
    if text.isascii():
        data = text.encode()
        letters = len(data.translate(None, _NOT_LETTERS))
        if letters < 8:
            return 0.0
        return len(data.translate(None, _NOT_CAPITALS)) / letters
    chars = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in chars) / len(chars) if len(chars) >= 8 else 0.0


#: Frequent function words of the other languages Parley ships word lists for (German,
#: French, Spanish, Italian, Portuguese, Dutch), folded, none of them a common English word.
#: The gate learnt from mostly English text, so a text holding one of these, or written
#: mostly in another script, is never settled: the multilingual encoder judges it. (A false
#: alarm only costs time: escalating is always safe.)
FOREIGN_WORDS: frozenset[str] = frozenset(
    [
        "der",
        "das",
        "und",
        "ist",
        "nicht",
        "ich",
        "du",
        "bist",
        "ein",
        "eine",
        "einen",
        "sie",
        "wir",
        "ihr",
        "auf",
        "fur",
        "von",
        "zu",
        "dem",
        "sich",
        "auch",
        "noch",
        "nur",
        "aber",
        "wie",
        "wenn",
        "dich",
        "mich",
        "mir",
        "sind",
        "habe",
        "hast",
        "le",
        "les",
        "et",
        "est",
        "ne",
        "pas",
        "je",
        "tu",
        "vous",
        "nous",
        "il",
        "elle",
        "une",
        "des",
        "du",
        "au",
        "aux",
        "avec",
        "pour",
        "dans",
        "qui",
        "que",
        "ce",
        "cette",
        "mais",
        "tres",
        "suis",
        "es",
        "el",
        "los",
        "las",
        "eres",
        "una",
        "del",
        "en",
        "por",
        "para",
        "pero",
        "muy",
        "yo",
        "soy",
        "estas",
        "esta",
        "eso",
        "este",
        "gli",
        "sei",
        "di",
        "che",
        "sono",
        "della",
        "nao",
        "voce",
        "uma",
        "em",
        "com",
        "mas",
        "het",
        "een",
        "niet",
        "ik",
        "je",
        "jij",
        "wij",
        "zij",
        "voor",
        "van",
        "dat",
        "maar",
        "ook",
    ]
)
#: A text with more than this share of letters outside ASCII (after folding) is escalated.
MAX_FOREIGN_SCRIPT = 0.3


def may_settle(folded_words: Sequence[str], folded: str) -> bool:
    """Whether the gate may settle a text (its folded words and folded text): not when it
    looks like a language other than English (``FOREIGN_WORDS``, ``MAX_FOREIGN_SCRIPT``)."""
    if not FOREIGN_WORDS.isdisjoint(folded_words):
        return False
    if folded.isascii():
        return True
    letters = [c for c in folded if c.isalpha()]
    foreign = sum(not c.isascii() for c in letters)
    return not letters or foreign <= MAX_FOREIGN_SCRIPT * len(letters)
