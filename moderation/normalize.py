"""Text normalisation that defeats common filter evasions, shared by the text detectors.

``fold`` maps a text to a canonical lower-case Latin form: NFKC (full-width and compatibility
forms), case folding, zero-width and soft-hyphen removal, Cyrillic and Greek look-alikes to
Latin, and diacritics stripped. ``tokenize`` splits folded text into word tokens (keeping the
leetspeak symbols ``@ $ !`` inside words) and ``variants`` gives the forms a token may stand
for: leetspeak decoded (``1`` as ``i`` and as ``l``), stretched letters collapsed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from typing import Final, NamedTuple

ZERO_WIDTH: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u200e\u200f")

#: Look-alikes NFKC leaves alone: Cyrillic and Greek letters that render like Latin ones,
#: and Latin letters without a decomposition. Applied after case folding.
CONFUSABLES: Final = str.maketrans(
    {
        "\u0430": "a",  # cyrillic small letter a
        "\u0432": "b",  # cyrillic small letter ve
        "\u0435": "e",  # cyrillic small letter ie
        "\u0451": "e",  # cyrillic small letter io
        "\u0437": "3",  # cyrillic small letter ze
        "\u0456": "i",  # cyrillic small letter byelorussian-ukrainian i
        "\u0457": "i",  # cyrillic small letter yi
        "\u0458": "j",  # cyrillic small letter je
        "\u043a": "k",  # cyrillic small letter ka
        "\u043c": "m",  # cyrillic small letter em
        "\u043d": "h",  # cyrillic small letter en
        "\u043e": "o",  # cyrillic small letter o
        "\u0440": "p",  # cyrillic small letter er
        "\u0441": "c",  # cyrillic small letter es
        "\u0442": "t",  # cyrillic small letter te
        "\u0443": "y",  # cyrillic small letter u
        "\u0445": "x",  # cyrillic small letter ha
        "\u0455": "s",  # cyrillic small letter dze
        "\u0501": "d",  # cyrillic small letter komi de
        "\u04bb": "h",  # cyrillic small letter shha
        "\u04cf": "l",  # cyrillic small letter palochka
        "\u051b": "q",  # cyrillic small letter qa
        "\u051d": "w",  # cyrillic small letter we
        "\u044c": "b",  # cyrillic small letter soft sign
        "\u043f": "n",  # cyrillic small letter pe
        "\u0433": "r",  # cyrillic small letter ghe
        "\u03b1": "a",  # greek small letter alpha
        "\u03b2": "b",  # greek small letter beta
        "\u03b3": "y",  # greek small letter gamma
        "\u03b5": "e",  # greek small letter epsilon
        "\u03b6": "z",  # greek small letter zeta
        "\u03b7": "n",  # greek small letter eta
        "\u03b9": "i",  # greek small letter iota
        "\u03ba": "k",  # greek small letter kappa
        "\u03bc": "u",  # greek small letter mu
        "\u03bd": "v",  # greek small letter nu
        "\u03bf": "o",  # greek small letter omicron
        "\u03c1": "p",  # greek small letter rho
        "\u03c4": "t",  # greek small letter tau
        "\u03c5": "u",  # greek small letter upsilon
        "\u03c7": "x",  # greek small letter chi
        "\u03c9": "w",  # greek small letter omega
        "\u00f8": "o",  # latin small letter o with stroke
        "\u0142": "l",  # latin small letter l with stroke
        "\u0111": "d",  # latin small letter d with stroke
        "\u0127": "h",  # latin small letter h with stroke
        "\u0131": "i",  # latin small letter dotless i
        "\u00e6": "ae",  # latin small letter ae
        "\u0153": "oe",  # latin small ligature oe
        "\u00fe": "th",  # latin small letter thorn
    }
)

#: Leetspeak; ``1`` is decoded both as ``i`` (here) and as ``l`` (see ``variants``).
LEET: Final = str.maketrans(
    {"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "$": "s", "5": "s", "7": "t"}
)
LEET_L: Final = str.maketrans({"1": "l"})

_TOKEN_RE = re.compile(r"(?:[^\W_]|[@$!])+")
_RUN3_RE = re.compile(r"(.)\1{2,}")
_RUN2_RE = re.compile(r"(.)\1+")
_VOWEL_RUN_RE = re.compile(r"([aeiou])\1+")
MASKS: Final = frozenset("*#%")


def fold(text: str) -> str:
    """Canonical form of ``text``: NFKC, casefold, no zero-width, Latin look-alikes, no accents."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not ZERO_WIDTH.isdisjoint(text):
        text = "".join(c for c in text if c not in ZERO_WIDTH)
    text = text.translate(CONFUSABLES)
    if not text.isascii():
        text = "".join(
            c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)
        )
        text = unicodedata.normalize("NFC", text)
    return text


def looks_leet(token: str) -> bool:
    """Whether a token may be leetspeak: it has letters, and no more digits than letters.

    ``5h1t`` and ``a$$`` qualify; ``2024``, ``A55`` (a road) or ``4x4`` do not.
    """
    letters = sum(c.isalpha() for c in token)
    return letters > 0 and letters >= sum(c.isdigit() for c in token)


def decode_leet(token: str) -> str:
    """Leetspeak decoded with ``1`` as ``i``, for tokens that ``looks_leet``."""
    return token.translate(LEET) if looks_leet(token) else token


def collapse(token: str, *, keep: int) -> str:
    """Runs of a repeated character shortened: ``keep=2`` for runs of 3+, ``keep=1`` for all."""
    if keep == 2:
        return _RUN3_RE.sub(r"\1\1", token)
    return _RUN2_RE.sub(r"\1", token)


def collapse_vowels(token: str) -> str:
    """Doubled vowels made single (``fuuck`` -> ``fuck``, ``biitch`` -> ``bitch``)."""
    return _VOWEL_RUN_RE.sub(r"\1", token)


@functools.lru_cache(maxsize=65_536)
def variants(token: str) -> tuple[str, ...]:
    """Every form a folded text token may stand for, most literal first.

    Leetspeak decoded (``1`` read as ``i`` and as ``l``); runs of 3+ letters cut to two
    (``asssss`` -> ``ass``); doubled vowels cut to one (``fuuck`` -> ``fuck``); and, for a token
    that was visibly stretched (a run of 3+), every run cut to one (``fuckkkk`` -> ``fuck``).
    Doubled consonants are left alone so ``rapping`` or ``fodder`` never read as listed words.
    """
    out: list[str] = []
    bases = [decode_leet(token)]
    if "1" in token and looks_leet(token):
        bases.append(token.translate(LEET_L).translate(LEET))
    for base in bases:
        two = collapse(base, keep=2)
        forms = [base, two, collapse_vowels(two)]
        if two != base:
            forms.append(collapse(base, keep=1))
        for form in forms:
            if form and form not in out:
                out.append(form)
    return tuple(out)


class Token(NamedTuple):
    """A word of folded text: its characters, its span, and the gap before it (a tuple:
    texts are tokenised on every moderated message)."""

    text: str
    start: int
    end: int
    gap: str  # the characters between the previous token and this one


_new_token = tuple.__new__  # Token(...) without the generated __new__'s overhead


def tokenize(folded: str) -> list[Token]:
    """Word tokens of folded text; ``!`` at either end of a token is punctuation, not leet."""
    tokens: list[Token] = []
    append = tokens.append
    prev_end = 0
    for m in _TOKEN_RE.finditer(folded):
        start, end = m.span()
        text = m.group()
        if "!" in text:
            while start < end and folded[start] == "!":
                start += 1
            while end > start and folded[end - 1] == "!":
                end -= 1
            if start == end:
                continue
            text = folded[start:end]
        append(_new_token(Token, (text, start, end, folded[prev_end:start])))
        prev_end = end
    return tokens


def words(folded: str) -> list[str]:
    """The texts of ``tokenize(folded)``, without building tokens."""
    out = []
    for word in _TOKEN_RE.findall(folded):
        if "!" in word:
            word = word.strip("!")
            if not word:
                continue
        out.append(word)
    return out


def item_words(item: str) -> tuple[str, ...]:
    """A list item (word or phrase) as the canonical words a text must contain."""
    return tuple(decode_leet(t.text) for t in tokenize(fold(item)))


def text_of(value: object, *, limit: int = 65_536) -> str:
    """The text of a message body: a string, or the string leaves of a JSON value, joined
    (``data:`` URLs, inline media, left out)."""
    parts: list[str] = []
    size = 0
    for s in _strings(value, depth=0):
        parts.append(s)
        size += len(s)
        if size >= limit:
            break
    return "\n".join(parts)[:limit]


def _strings(value: object, *, depth: int) -> Iterator[str]:
    if depth > 16:
        return
    if isinstance(value, str):
        if not value.startswith("data:"):  # inline media (a data: URL) is not text
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v, depth=depth + 1)
