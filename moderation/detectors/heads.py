"""Trained logistic heads over the sentence embedding plus a few cheap text features.

``moderation/models/text_heads.npz`` (made by ``python -m moderation.training.train``)
holds, for every category, a weight vector over ``features(text, embedding)`` and a Platt
calibration (``p = sigmoid(a * logit + b)`` fitted on a held-out split), so a threshold of
0.8 means roughly "80 % of messages scored like this were positives in the calibration
data" for every category. The extra features are the bundled profanity lists' hits (so the
heads know a swear word when they see one), links, URL shorteners, money and urgency words.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from moderation.detectors.encoder import SharedEncoder, shared_encoder
from moderation.detectors.keywords import CompiledList, compile_list, find
from moderation.normalize import fold, tokenize
from moderation.rules import WordList

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "text_heads.npz"

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
_MONEY_RE = re.compile(
    r"[$€£]\s?\d|\b\d[\d,.]*\s?(?:k\b|dollars?|usd|eur(?:os?)?|pounds?|gbp|btc|eth|usdt)\b|"
    r"\b(?:prize|cash|bitcoin|crypto|wallet|gift ?cards?|wire|western union|profit|"
    r"invest(?:ment)?|lottery|jackpot|fee)\b",
    re.IGNORECASE,
)
EXTRA_FEATURES: tuple[str, ...] = (
    "profanity_any",
    "profanity_count",
    "links",
    "shortener",
    "urgency",
    "money",
    "caps",
)


@lru_cache(maxsize=1)
def _profanity() -> CompiledList:
    """All bundled profanity lists merged into one compiled keyword list."""
    from moderation.defaults import PROFANITY_LANGUAGES, read_word_file

    data = Path(__file__).resolve().parents[1] / "data"
    items: list[str] = []
    allow: list[str] = []
    for code, _ in PROFANITY_LANGUAGES:
        words, allowed = read_word_file((data / f"profanity-{code}.txt").read_text("utf-8"))
        items.extend(words)
        allow.extend(allowed)
    return compile_list(WordList("profanity", "profanity", "keywords", tuple(items), tuple(allow)))


def domains(text: str) -> list[str]:
    """Domains of the links in ``text`` (lower case), only those with a plausible TLD."""
    out: list[str] = []
    for m in _URL_RE.finditer(text):
        host = m.group(1).lower()
        if host.rsplit(".", 1)[-1] in _TLDS:
            out.append(host[4:] if host.startswith("www.") else host)
    return out


def shortener_links(text: str) -> list[str]:
    """Links in ``text`` that go through a known URL shortener."""
    return [d for d in domains(text) if d in SHORTENERS]


def urgency_hits(text: str) -> int:
    return len(_URGENCY_RE.findall(text))


def extra_features(text: str) -> npt.NDArray[np.float32]:
    """The non-embedding features of ``text``, in ``EXTRA_FEATURES`` order."""
    prof = len(find(_profanity(), tokenize(fold(text))))
    links = domains(text)
    letters = [c for c in text if c.isalpha()]
    caps = sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 8 else 0.0
    return np.array(
        [
            float(prof > 0),
            math.log1p(prof),
            math.log1p(len(links)),
            float(any(d in SHORTENERS for d in links)),
            math.log1p(urgency_hits(text)),
            math.log1p(len(_MONEY_RE.findall(text))),
            caps,
        ],
        dtype=np.float32,
    )


def features(text: str, embedding: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The feature vector the heads score: embedding then ``extra_features``."""
    return np.concatenate([embedding.astype(np.float32), extra_features(text)])


@dataclass(frozen=True)
class Heads:
    """Calibrated logistic heads: ``scores(X)`` -> probabilities per category."""

    categories: tuple[str, ...]
    weights: npt.NDArray[np.float32]  # (features, categories)
    bias: npt.NDArray[np.float32]  # (categories,)
    platt_a: npt.NDArray[np.float32]
    platt_b: npt.NDArray[np.float32]

    def scores(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Calibrated probabilities, (N, categories) for (N, features) input."""
        logits = x @ self.weights + self.bias
        z = np.clip(self.platt_a * logits + self.platt_b, -30.0, 30.0)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def index(self, category: str) -> int:
        return self.categories.index(category)

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            categories=np.array(self.categories),
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            platt_a=self.platt_a.astype(np.float32),
            platt_b=self.platt_b.astype(np.float32),
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> Heads:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                categories=tuple(str(c) for c in data["categories"]),
                weights=data["weights"].astype(np.float32),
                bias=data["bias"].astype(np.float32),
                platt_a=data["platt_a"].astype(np.float32),
                platt_b=data["platt_b"].astype(np.float32),
            )


_heads: Heads | None = None
_heads_lock = threading.Lock()


def shared_heads() -> Heads:
    """The bundled heads, loaded once per process (a few hundred KB; fast)."""
    global _heads
    if _heads is None:
        with _heads_lock:
            if _heads is None:
                _heads = Heads.load()
    return _heads


class HeadDetector:
    """Base of the detectors that score a message with the bundled heads.

    Reports every category in ``categories`` on every run (confidence 0 for an empty text),
    so the evaluate endpoint shows all of them; the engine applies the thresholds.
    """

    name: str = ""
    cost: int = 100
    categories: tuple[str, ...] = ()

    def __init__(self, encoder: SharedEncoder | None = None) -> None:
        self._encoder = encoder

    @property
    def encoder(self) -> SharedEncoder:
        if self._encoder is None:
            self._encoder = shared_encoder()
        return self._encoder

    def warm_up(self) -> None:
        """Start loading the encoder in a background thread."""
        self.encoder.warm_up()

    async def head_scores(self, text: str) -> dict[str, float]:
        """Calibrated head probabilities for ``text`` (every bundled category)."""
        heads = shared_heads()
        if not text.strip():
            return dict.fromkeys(heads.categories, 0.0)
        embedding = await self.encoder.embed(text)
        probs = heads.scores(features(text, embedding)[None, :])[0]
        return {c: round(float(p), 4) for c, p in zip(heads.categories, probs, strict=True)}
