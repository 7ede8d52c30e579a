"""Trained logistic heads over the sentence embedding plus cheap text features.

``moderation/models/text_heads.npz`` (made by ``python -m moderation.training.train``)
holds, for every category, a weight vector over ``features(text, embedding)`` and a Platt
calibration (``p = sigmoid(a * logit + b)`` fitted on a held-out split), so a threshold of
0.8 means roughly "80 % of messages scored like this were positives in the calibration
data" for every category. The features after the 512-d embedding (``FEATURE_NAMES``) are the
bundled profanity lists' hits (so the heads know a swear word when they see one), links, URL
shorteners, money and urgency words, capitals, and the logits of the lexical model
(``lexical``: hashed character and word n-grams), which keeps the exact words the embedding
blurs. The file records that layout and ``Heads.load`` refuses a file made for another one.

The cascade's first stage lives in the same file: a ``Gate``, distilled from the heads,
that estimates the embedding's share of every head's logit from the text's hashed n-grams
(a linear regression over ``GATE_BITS`` buckets of the lexical model's n-grams: a gather and
a sum, no encoder). With the exact cheap features it gives an estimate of every category's
score. A text whose estimates are all below the gate's thresholds (one per category) is
**settled** without the encoder: its scores are those estimates, capped at ``SETTLED_CAP``
(below ``SETTLE_LEVEL``), so a settled text never meets a threshold of ``SETTLE_LEVEL`` or
more. Conditions with a lower threshold always get the encoder
(``moderation.detectors.head_detector``). Each category's gate threshold was chosen in
training so that ``train.GATE_RECALL`` of the calibration rows that the full model scores at
``SETTLE_LEVEL - train.GATE_MARGIN`` or more in that category are escalated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from moderation.detectors.keywords import CompiledList, Prepared, find, prepared_text
from moderation.detectors.lexical import (
    LEXICAL_CATEGORIES,
    LOGIT_CLIP,
    Lexical,
    buckets,
    buckets_of_folded,
    length_class,
    scaled_sum,
)
from moderation.detectors.lexical import MAX_CHARS as LEXICAL_MAX_CHARS
from moderation.detectors.signals import (
    SHORTENERS,
    caps,
    domains,
    may_settle,
    money_hits,
    urgency_hits,
)
from moderation.normalize import Token, fold, tokenize

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "text_heads.npz"

EXTRA_FEATURES: tuple[str, ...] = (
    "profanity_any",
    "profanity_count",
    "links",
    "shortener",
    "urgency",
    "money",
    "caps",
)
#: The features after the embedding, in order: ``EXTRA_FEATURES`` then one lexical logit
#: per ``lexical.LEXICAL_CATEGORIES``.
FEATURE_NAMES: tuple[str, ...] = EXTRA_FEATURES + tuple(f"lexical_{c}" for c in LEXICAL_CATEGORIES)

EMBEDDING_DIM = 512

#: Conditions whose thresholds are all at least this may be settled by the gate; the gate
#: learnt to escalate what the full model scores this high.
SETTLE_LEVEL = 0.8
#: The scores of a settled text are capped here (below ``SETTLE_LEVEL``).
SETTLED_CAP = 0.79
_SETTLED_CAP = np.float32(SETTLED_CAP)
#: The gate hashes the lexical model's buckets into 2**GATE_BITS (its file stays small).
GATE_BITS = 16
GATE_MASK = (1 << GATE_BITS) - 1


def extra_features(
    text: str,
    profanity: CompiledList,
    tokens: list[Token] | Prepared | None = None,
    links: Sequence[str] | None = None,
    urgency: int | None = None,
) -> npt.NDArray[np.float32]:
    """The non-embedding features of ``text``, in ``EXTRA_FEATURES`` order; ``profanity`` is
    the bundled profanity lists merged (``ModelRegistry.profanity``); ``tokens``:
    ``tokenize(fold(text))`` (or ``keywords.prepared_text(text)``), ``links``: ``domains(text)`` and ``urgency``:
    ``urgency_hits(text)``, if already computed."""
    prof = len(find(profanity, tokenize(fold(text)) if tokens is None else tokens))
    links = domains(text) if links is None else links
    urgency = urgency_hits(text) if urgency is None else urgency
    return np.array(
        [
            float(prof > 0),
            math.log1p(prof),
            math.log1p(len(links)),
            float(any(d in SHORTENERS for d in links)),
            math.log1p(urgency),
            math.log1p(money_hits(text)),
            caps(text),
        ],
        dtype=np.float32,
    )


def text_features(
    text: str,
    lexical: Lexical,
    profanity: CompiledList,
    ids: npt.NDArray[np.int32] | None = None,
) -> npt.NDArray[np.float32]:
    """The features after the embedding, in ``FEATURE_NAMES`` order: ``extra_features`` then
    the lexical model's logits (``ModelRegistry.text_features`` caches them per text);
    ``ids``: the text's ``lexical.buckets`` if already computed."""
    if lexical.categories != LEXICAL_CATEGORIES:
        raise ValueError(f"lexical model categories {lexical.categories} != {LEXICAL_CATEGORIES}")
    ids = buckets(text) if ids is None else ids
    return np.concatenate([extra_features(text, profanity), lexical.logits_of(ids)])


class CheapFeatures(NamedTuple):
    """What the cascade's lexical stage reads of a text, computed in one pass
    (``cheap_features``): its ``lexical.buckets``, the heads' features after the embedding
    (``text_features``), whether the gate may settle it (``may_settle``), and the scam
    detector's shortened links (``shortener_links``) and pressure words (``urgency_hits``)."""

    ids: npt.NDArray[np.int32]
    rest: npt.NDArray[np.float32]
    may_settle: bool
    shorteners: tuple[str, ...]
    urgency: int
    #: The gate's estimate of the embedding's part of every head's logit
    #: (``Gate.embedding_logits(ids)``), when ``text_cheap`` was given the ``FusedRows``.
    gate_logits: npt.NDArray[np.float32] | None = None


class FusedRows:
    """The lexical model's rows and the gate's side by side, one row per bucket (the gate's
    row of bucket ``i`` is its row ``i & GATE_MASK``): one gather and one sum give a text's
    lexical logits and the gate's estimate together (``parts``), the same values as
    ``Lexical.logits_of`` and ``Gate.embedding_logits`` (a column's sum does not depend on
    the columns beside it: numpy sums an axis-0 reduction row by row for every column;
    ``test_cascade_fast_path.py`` checks the bytes), 10 us less per message. 22 MB, built
    with the models (``ModelRegistry``: at warm-up, else on first use)."""

    def __init__(self, lexical: Lexical, gate: Gate) -> None:
        self.lexical, self.gate = lexical, gate
        self.split = len(lexical.categories)
        rows = np.empty((len(lexical.weights), self.split + gate.weights.shape[1]), np.float32)
        rows[:, : self.split] = lexical.weights
        # row i's gate part is the gate's row i & GATE_MASK: the gate's table repeated, block
        # by block (copies of contiguous blocks, not a gather of every row: 0.27 s less at
        # start-up)
        gate_part = rows[:, self.split :]
        for start in range(0, len(rows), GATE_MASK + 1):
            block = gate_part[start : start + GATE_MASK + 1]
            block[:] = gate.weights[: len(block)]
        self.rows = rows

    def parts(
        self, ids: npt.NDArray[np.int32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """``(lexical.logits_of(ids), gate.embedding_logits(ids))``."""
        if not len(ids):
            return self.lexical.logits_of(ids), self.gate.embedding_logits(ids)
        both = scaled_sum(self.rows, ids)
        k = self.split
        cls = length_class(len(ids))
        z = self.lexical.bias[cls] + both[:k]
        np.maximum(z, -LOGIT_CLIP, out=z)
        np.minimum(z, LOGIT_CLIP, out=z)
        return z, self.gate.bias[cls] + both[k:]


def text_cheap(
    text: str, lexical: Lexical, profanity: CompiledList, fused: FusedRows | None = None
) -> CheapFeatures:
    """``CheapFeatures`` of ``text``: folding and tokenising it once, and finding its links
    and pressure words once, for everything the send path needs; with ``fused`` (made from
    this ``lexical``), the gate's part too."""
    if lexical.categories != LEXICAL_CATEGORIES:
        raise ValueError(f"lexical model categories {lexical.categories} != {LEXICAL_CATEGORIES}")
    links = domains(text)
    urgency = urgency_hits(text)
    folded = fold(text[:LEXICAL_MAX_CHARS])
    ids = buckets_of_folded(folded)
    prepared = prepared_text(text)  # the profanity feature reads the whole text
    if len(text) > LEXICAL_MAX_CHARS:
        words = [t.text for t in tokenize(folded)]
    else:
        words = [t.text for t in prepared.tokens]
    extra = extra_features(text, profanity, prepared, links, urgency)
    gate_logits = None
    if fused is None:
        logits = lexical.logits_of(ids)
    else:
        logits, gate_logits = fused.parts(ids)
    return CheapFeatures(
        ids,
        np.concatenate([extra, logits]),
        may_settle(words, folded),
        tuple(d for d in links if d in SHORTENERS),
        urgency,
        gate_logits,
    )


def cheap_features(
    text: str, lexical: Lexical, profanity: CompiledList
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], bool]:
    """``(lexical.buckets(text), text_features(text, ...), may_settle(...))`` in one pass
    (``text_cheap``)."""
    found = text_cheap(text, lexical, profanity)
    return found.ids, found.rest, found.may_settle


def feature_matrix(
    texts: Sequence[str],
    embeddings: npt.NDArray[np.float32],
    lexical: Lexical,
    profanity: CompiledList,
) -> npt.NDArray[np.float32]:
    """The features the heads score for many texts, (N, 512 + len(FEATURE_NAMES)): the
    embeddings, ``extra_features`` and the logits of ``lexical`` (training and benchmarks)."""
    if not len(texts):
        return np.zeros((0, EMBEDDING_DIM + len(FEATURE_NAMES)), dtype=np.float32)
    extra = np.stack([extra_features(t, profanity) for t in texts])
    rest = np.concatenate([extra, lexical.logits(texts)], axis=1)
    return np.concatenate([embeddings.astype(np.float32), rest], axis=1)


@dataclass(frozen=True)
class Gate:
    """The cascade's first stage: per head category, a linear estimate of the embedding's part
    of the head's logit over a text's hashed n-grams (``lexical.buckets`` folded into
    ``GATE_BITS`` bits); ``thresholds``: per category, the estimated score from which a text
    is escalated (a text is settled when every estimate is below its category's)."""

    weights: npt.NDArray[np.float32]  # (2**GATE_BITS, categories)
    bias: npt.NDArray[np.float32]  # (lexical.LENGTH_CLASSES, categories)
    thresholds: npt.NDArray[np.float32]  # (categories,)

    def embedding_logits(self, ids: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
        """The estimated embedding part of every head's logit, (categories,)."""
        z: npt.NDArray[np.float32] = self.bias[length_class(len(ids))].copy()
        if len(ids):
            z += scaled_sum(self.weights, ids & GATE_MASK)
        return z


@dataclass(frozen=True)
class Heads:
    """Calibrated logistic heads: ``scores(X)`` -> probabilities per category; ``gate``
    (optional: files trained before the cascade lack it) is the cascade's first stage
    (``settled_scores``)."""

    categories: tuple[str, ...]
    weights: npt.NDArray[np.float32]  # (features, categories)
    bias: npt.NDArray[np.float32]  # (categories,)
    platt_a: npt.NDArray[np.float32]
    platt_b: npt.NDArray[np.float32]
    feature_names: tuple[str, ...] = FEATURE_NAMES
    gate: Gate | None = None
    #: The weights of the features after the embedding (a view of ``weights``).
    rest_weights: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rest_weights", self.weights[EMBEDDING_DIM:])

    def scores(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Calibrated probabilities, (N, categories) for (N, features) input."""
        logits = x @ self.weights + self.bias
        z = np.clip(self.platt_a * logits + self.platt_b, -30.0, 30.0)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def estimated_scores(
        self,
        ids: npt.NDArray[np.int32],
        rest: npt.NDArray[np.float32],
        embedding: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32]:
        """The gate's estimate of every category's score, (categories,), from a text's
        ``lexical.buckets`` and its cheap features (``text_features``); ``embedding``: its
        ``gate.embedding_logits(ids)`` if already computed (``FusedRows``); needs a gate."""
        if self.gate is None:
            raise ValueError("these heads have no gate: retrain with `make train-models`")
        if embedding is None:
            embedding = self.gate.embedding_logits(ids)
        logits = embedding + rest @ self.rest_weights + self.bias
        # the arithmetic of ``scores`` (clip, sigmoid), in place: this runs on the send path
        z = self.platt_a * logits + self.platt_b
        np.maximum(z, -30.0, out=z)
        np.minimum(z, 30.0, out=z)
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1.0
        out: npt.NDArray[np.float32] = (1.0 / z).astype(np.float32, copy=False)
        return out

    def settled_scores(
        self,
        ids: npt.NDArray[np.int32],
        rest: npt.NDArray[np.float32],
        embedding: npt.NDArray[np.float32] | None = None,
    ) -> npt.NDArray[np.float32] | None:
        """The first stage's scores, capped at ``SETTLED_CAP``, when the gate settles the text
        (every estimate below its threshold); None when it needs the encoder (or there is no
        gate). ``embedding``: as for ``estimated_scores``."""
        if self.gate is None:
            return None
        estimate = self.estimated_scores(ids, rest, embedding)
        if (estimate >= self.gate.thresholds).any():
            return None
        return np.minimum(estimate, _SETTLED_CAP, out=estimate)

    def save(self, path: Path) -> None:
        extra: dict[str, npt.NDArray[np.generic]] = {}
        if self.gate is not None:
            extra["gate_weights"] = self.gate.weights.astype(np.float16)
            extra["gate_bias"] = self.gate.bias.astype(np.float32)
            extra["gate_thresholds"] = self.gate.thresholds.astype(np.float32)
        np.savez_compressed(
            path,
            categories=np.array(self.categories),
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            platt_a=self.platt_a.astype(np.float32),
            platt_b=self.platt_b.astype(np.float32),
            feature_names=np.array(self.feature_names),
            **extra,  # type: ignore[arg-type]
        )

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> Heads:
        with np.load(path, allow_pickle=False) as data:
            names = (
                tuple(str(c) for c in data["feature_names"])
                if "feature_names" in data
                else EXTRA_FEATURES
            )
            heads = cls(
                categories=tuple(str(c) for c in data["categories"]),
                weights=data["weights"].astype(np.float32),
                bias=data["bias"].astype(np.float32),
                platt_a=data["platt_a"].astype(np.float32),
                platt_b=data["platt_b"].astype(np.float32),
                feature_names=names,
                gate=Gate(
                    data["gate_weights"].astype(np.float32),
                    data["gate_bias"].astype(np.float32),
                    np.broadcast_to(
                        data["gate_thresholds" if "gate_thresholds" in data else "gate_threshold"],
                        data["bias"].shape,
                    ).astype(np.float32),
                )
                if "gate_weights" in data
                else None,
            )
        if heads.gate is not None and heads.gate.weights.shape != (
            GATE_MASK + 1,
            len(heads.categories),
        ):
            raise ValueError(f"{path}: gate weights {heads.gate.weights.shape}")
        if names != FEATURE_NAMES or heads.weights.shape[0] != EMBEDDING_DIM + len(names):
            raise ValueError(
                f"{path} was trained on features {names}, this code computes {FEATURE_NAMES}:"
                " retrain with `make train-models`"
            )
        return heads
