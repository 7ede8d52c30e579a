"""A lexical model of our own: hashed character and word n-grams, one linear model per target.

The sentence embedding reads meaning but blurs the exact words; a bag of n-grams keeps them
(profanity, slurs and their misspellings, spam boilerplate such as "txt STOP to 87121").
``moderation/models/text_lexical.npz`` (made by ``python -m moderation.training.train``)
holds one logistic model per target in ``LEXICAL_CATEGORIES`` over these features. Their
logits are features of the embedding heads (``heads.FEATURE_NAMES``); the heads were trained
on out-of-fold lexical logits, so they trust the lexical model only as far as it generalises.

Features of a text (``buckets``), computed on ``normalize.fold(text)`` (NFKC, case folded,
look-alikes mapped, accents stripped), cut to ``MAX_CHARS``:

- character 2- to 5-grams inside word boundaries: each whitespace-separated word is padded
  with a space on both sides (``" idiot! "``) and cut into n-grams, as scikit-learn's
  ``char_wb`` analyser does;
- word unigrams and bigrams over ``normalize.tokenize`` tokens, plus each token's
  de-obfuscated forms (``normalize.variants``: leetspeak decoded, stretched letters cut).

Each feature is hashed with CRC-32 (``zlib.crc32``: stable across processes, machines and
Python versions; Python's own ``hash`` is salted per process and must never be used here)
into ``DIM`` buckets. A text's vector is binary (a bucket present or not) scaled to unit
length; the intercept depends on the text's length class (``length_class``). Inference is
numpy and the standard library only: hashing, a gather and a sum.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt

from moderation.normalize import fold, tokenize, variants
from moderation.normalize import words as token_texts

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "text_lexical.npz"

#: Hash space: 2**18 buckets.
BITS = 18
DIM = 1 << BITS
MASK = DIM - 1
CHAR_MIN, CHAR_MAX = 2, 5
#: Characters of a text that are read, as for the encoder (cost grows with length: about
#: 0.1 ms for a chat message, 1.2 ms at the cap, on one core).
MAX_CHARS = 1000
#: Longest whitespace-separated word cut into character n-grams (longer ones are cut).
MAX_WORD = 40
#: The lexical models (targets). All but ``profane`` copy the head category of that name;
#: ``profane`` (swearing and slurs) learns from Davidson's "hate or offensive language" and
#: the own set's ``obscene`` labels and stands in for ``obscene``, which no public set labels.
LEXICAL_CATEGORIES: tuple[str, ...] = (
    "toxicity",
    "insult",
    "identity_attack",
    "threat",
    "sexual",
    "scam",
    "profane",
)
#: Lexical logits are clipped to this range before they reach the heads.
LOGIT_CLIP = 12.0

_WORD = "\x01"  # prefix of word unigrams
_BIGRAM = "\x02"  # prefix of word bigrams


def ngrams(text: str) -> list[str]:
    """The features of ``text`` before hashing (with repeats), in a fixed order."""
    folded = fold(text[:MAX_CHARS])
    out: list[str] = []
    for word in folded.split():
        padded = f" {word[:MAX_WORD]} "
        size = len(padded)
        for n in range(CHAR_MIN, min(CHAR_MAX, size) + 1):
            out.extend(padded[i : i + n] for i in range(size - n + 1))
    words = [t.text for t in tokenize(folded)]
    for w in words:
        out.append(_WORD + w)
        for v in variants(w):
            if v != w:
                out.append(_WORD + v)
    out.extend(f"{_BIGRAM}{a} {b}" for a, b in pairwise(words))
    return out


def bucket(feature: str) -> int:
    """The bucket of one feature: CRC-32 of its UTF-8 bytes, low ``BITS`` bits."""
    return zlib.crc32(feature.encode("utf-8")) & MASK


#: Distinct whitespace-separated chunks of text whose buckets stay cached (``buckets`` is on
#: the send path of every moderated message when a local AI rule is on; chat vocabulary
#: repeats a lot). About 1 KB per chunk: under 10 MB when full.
WORD_CACHE = 8192

_crc32 = zlib.crc32


@lru_cache(maxsize=WORD_CACHE)
def _chunk_buckets(chunk: str) -> tuple[tuple[int, ...], bytes | None, int]:
    """Everything ``buckets`` needs from one whitespace-separated chunk of folded text: the
    buckets of its character n-grams, of its word tokens' unigrams and their de-obfuscated
    forms, and of the bigrams of its tokens; then, for the bigrams that cross into the
    neighbouring chunks, ``b" " + first token`` (UTF-8; None without tokens) and the
    unfinished CRC-32 of ``_BIGRAM + last token``. (A word token never spans whitespace, so
    the tokens of a text are those of its chunks in order.)"""
    padded = f" {chunk[:MAX_WORD]} "
    size = len(padded)
    crc = _crc32
    top = min(CHAR_MAX, size) + 1
    if padded.isascii():  # one byte per character: slice the bytes, encode once
        data = padded.encode()
        found = {
            crc(data[i : i + n]) & MASK for n in range(CHAR_MIN, top) for i in range(size - n + 1)
        }
    else:
        found = {
            crc(padded[i : i + n].encode()) & MASK
            for n in range(CHAR_MIN, top)
            for i in range(size - n + 1)
        }
    tokens = token_texts(chunk)
    for w in tokens:
        found.add(crc((_WORD + w).encode()) & MASK)
        found.update(crc((_WORD + v).encode()) & MASK for v in variants(w) if v != w)
    found.update(crc(f"{_BIGRAM}{a} {b}".encode()) & MASK for a, b in pairwise(tokens))
    if not tokens:
        return tuple(found), None, 0
    return tuple(found), f" {tokens[0]}".encode(), crc(f"{_BIGRAM}{tokens[-1]}".encode())


def buckets(text: str) -> npt.NDArray[np.int32]:
    """Sorted distinct buckets present in ``text`` (empty for an empty text): the buckets of
    ``ngrams(text)``, computed per distinct chunk with a cache (about 3x faster)."""
    return buckets_of_folded(fold(text[:MAX_CHARS]))


def buckets_of_folded(folded: str) -> npt.NDArray[np.int32]:
    """``buckets`` of a text already folded (``fold(text[:MAX_CHARS])``), so a caller that
    needs the folded text for other features too folds once."""
    found: set[int] = set()
    update, add, crc = found.update, found.add, _crc32
    last: int | None = None  # the unfinished CRC of the bigram that starts at the last token
    for chunk in folded.split():
        chunk_buckets, first, chunk_last = _chunk_buckets(chunk)
        update(chunk_buckets)
        if first is not None:
            if last is not None:
                add(crc(first, last) & MASK)  # the bigram across the whitespace
            last = chunk_last
    ids = np.fromiter(found, dtype=np.int32, count=len(found))
    ids.sort()
    return ids


#: Texts fall into this many classes by their number of buckets (``length_class``), each
#: with its own intercept: a long text's scaled n-grams weigh little, so without it every
#: long text would drift to one shared intercept.
LENGTH_CLASSES = 8


def length_class(count: int) -> int:
    """0 for under 16 buckets, then one class per doubling, ``LENGTH_CLASSES - 1`` for 1,024+."""
    return min(max(count.bit_length() - 4, 0), LENGTH_CLASSES - 1)


def row_scale(count: int) -> np.float32:
    """The value of each of a text's ``count`` buckets (the vector has unit length)."""
    return np.float32(1.0 / math.sqrt(max(count, 1)))


def scaled_sum(
    weights: npt.NDArray[np.float32], ids: npt.NDArray[np.intp] | npt.NDArray[np.int32]
) -> npt.NDArray[np.float32]:
    """The rows ``ids`` of ``weights`` summed in order (float32) times ``row_scale(len(ids))``:
    a text's share of a linear model over its buckets (``take`` and ``add.reduce``: the
    arithmetic of ``weights[ids].sum(axis=0)``, a third of its cost)."""
    total: npt.NDArray[np.float32] = np.add.reduce(
        weights.take(ids, axis=0), axis=0, dtype=np.float32
    )
    return total * row_scale(len(ids))


@dataclass(frozen=True)
class Lexical:
    """One linear model per category over the hashed n-grams: ``logits(texts)``."""

    categories: tuple[str, ...]
    weights: npt.NDArray[np.float32]  # (DIM, categories)
    bias: npt.NDArray[np.float32]  # (LENGTH_CLASSES, categories)

    def logits_of(self, ids: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
        """Logits (categories,) for one text's ``buckets``, clipped to +-``LOGIT_CLIP``."""
        z: npt.NDArray[np.float32] = self.bias[length_class(len(ids))].copy()
        if len(ids):
            z += scaled_sum(self.weights, ids)
        # np.clip's arithmetic, without its argument checks (a few microseconds)
        np.maximum(z, -LOGIT_CLIP, out=z)
        np.minimum(z, LOGIT_CLIP, out=z)
        return z

    def logits(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Clipped logits, (N, categories)."""
        out = np.empty((len(texts), len(self.categories)), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self.logits_of(buckets(t))
        return out

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            bits=np.array(BITS),
            categories=np.array(self.categories),
            weights=self.weights.astype(np.float16),
            bias=self.bias.astype(np.float32),
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> Lexical:
        with np.load(path, allow_pickle=False) as data:
            if int(data["bits"]) != BITS:
                raise ValueError(f"{path}: hashed into 2**{int(data['bits'])}, expected 2**{BITS}")
            model = cls(
                categories=tuple(str(c) for c in data["categories"]),
                weights=data["weights"].astype(np.float32),
                bias=data["bias"].astype(np.float32),
            )
        k = len(model.categories)
        if model.weights.shape != (DIM, k) or model.bias.shape != (LENGTH_CLASSES, k):
            raise ValueError(f"{path}: weights {model.weights.shape}, bias {model.bias.shape}")
        return model
