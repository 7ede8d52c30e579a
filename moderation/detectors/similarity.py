"""Sentence similarity detector (condition kind ``similarity``).

The condition names a list of kind ``sentences`` (``listId``); the confidence is the highest
cosine similarity (0..1) between the message's sentence embedding and the list's sentences
(multilingual Universal Sentence Encoder), category = the list id, and the reason names the
closest sentence. Paraphrases of a listed sentence typically score 0.6-0.9, unrelated chat
below 0.4 (the shipped rule's threshold: ``defaults.SIMILARITY_THRESHOLD``). A list's embeddings are computed once per list object (lists are replaced, not
mutated, when edited through the API), in the encoder's worker thread.

With the engine's ``cascade`` on (the ``aiCascade`` setting), a cheap first stage
(``similarity_gate``: the text's embedding estimated from per-token rows, about 10 us) settles
a text clearly unlike every sentence of the list without the encoder: its estimated best
cosine is below ``gate.gate_threshold(threshold)``, fitted so that every checked text the
encoder scores at the condition's threshold less ``similarity_gate.MARGIN`` or more is
escalated. A settled text's score is that estimate (below the threshold) and its reason reads
``lexical stage: settled without the encoder (estimate 0.12 < 0.30, closest '...')``; an
escalated one is scored by the encoder, as with the cascade off, its reason naming the
closest sentence. Shouted texts and conditions with a threshold under
``similarity_gate.MIN_GATED`` always get the encoder. The engine may judge a settled text on
the send path (``settles``). ``counts`` says how many texts each stage decided.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from moderation.detectors.base import (
    EXPENSIVE,
    DetectContext,
    Detector,
    message_text,
)
from moderation.detectors.cascade import STAGE_ENCODER, STAGE_LEXICAL
from moderation.detectors.encoder import SharedEncoder
from moderation.detectors.kept import Kept
from moderation.detectors.model_registry import ModelRegistry, shared_models
from moderation.detectors.similarity_gate import SimilarityGate, shouted
from moderation.lazy import once
from moderation.rules import Condition, WordList
from moderation.types import Detection, MessageView

log = logging.getLogger(__name__)

#: The threshold of a condition that sets none (the engine's default).
DEFAULT_THRESHOLD = 0.5


class SimilarityDetector(Detector):
    """Detector for ``similarity`` conditions: closeness to a ``sentences`` list."""

    name = "similarity"
    cost = EXPENSIVE
    reads: frozenset[str] = frozenset()
    list_kinds: tuple[str, ...] = ("sentences",)

    def __init__(self, models: ModelRegistry | None = None) -> None:
        self.models = shared_models() if models is None else models
        self._lists: dict[int, tuple[WordList, npt.NDArray[np.float32]]] = {}
        #: The lists of the last engine prepared, by id (``settles`` is given no lists).
        self._prepared: dict[str, WordList] = {}
        self._gate = once(self._load_gate)
        self._gate_failed = False
        # the gate's answer per (text, list, threshold): the engine asks on the send path,
        # then ``detect`` runs, and chat repeats texts (the list object is kept in the value:
        # ids are not reused)
        self._decided: Kept[tuple[str, int, float], tuple[WordList, Detection | None]] = Kept()
        #: Texts decided by each stage (``lexical``: settled by the gate).
        self.counts = {STAGE_LEXICAL: 0, STAGE_ENCODER: 0}

    @property
    def encoder(self) -> SharedEncoder:
        """The shared sentence encoder."""
        return self.models.encoder()

    def warm_up(self) -> None:
        """Start loading the sentence encoder in a background thread."""
        self.models.warm_up(("encoder",))

    def prepare(self, lists: Mapping[str, WordList]) -> None:
        """Remember the engine's ``sentences`` lists, for ``settles``."""
        self._prepared = {k: wl for k, wl in lists.items() if wl.kind == "sentences"}

    def _load_gate(self) -> SimilarityGate:
        return SimilarityGate.load(self.encoder.backend())

    def gate(self) -> SimilarityGate | None:
        """The cascade's first stage, once the encoder is loaded (None before, or when its
        file cannot be read: then every text gets the encoder)."""
        if self._gate_failed or not self.encoder.loaded:
            return None
        try:
            return self._gate()
        except (OSError, ValueError, KeyError):
            log.exception("the similarity gate failed to load; every text gets the encoder")
            self._gate_failed = True
            return None

    def _settled(
        self, text: str, wl: WordList, vectors: npt.NDArray[np.float32], threshold: float
    ) -> Detection | None:
        """The lexical stage's detection when the gate settles ``text`` for this list and
        threshold, else None (kept: ``kept.Kept``; an answer given
        before the gate could load is not kept, so the text is gated once it has)."""
        key = (text, id(wl), threshold)
        known = self._decided.get(key)
        if known is not None and known[0] is wl:
            return known[1]
        gate = self.gate()
        if gate is None:  # not loaded yet: the encoder decides, and nothing is kept
            return None
        found = self._decide(gate, text, wl, vectors, threshold)
        self._decided.put(key, (wl, found), text)
        return found

    def _decide(
        self,
        gate: SimilarityGate,
        text: str,
        wl: WordList,
        vectors: npt.NDArray[np.float32],
        threshold: float,
    ) -> Detection | None:
        gate_at = gate.gate_threshold(threshold)
        if gate_at is None or shouted(text):
            return None
        sims = vectors @ gate.estimate(text)
        best = int(np.argmax(sims))
        if sims[best] >= gate_at:
            return None
        score = round(float(min(max(sims[best], 0.0), 1.0)), 4)
        return Detection(
            self.name,
            wl.id,
            score,
            f"lexical stage: settled without the encoder (estimate {score:.2f} < {gate_at:.2f},"
            f" closest {wl.items[best]!r})",
        )

    def settles(self, text: str, condition: Condition) -> bool:
        """Whether the gate settles ``text`` for ``condition`` (cheap and synchronous), so
        the engine may judge the message on the send path: only once the list's sentences
        are embedded (the first message on a list waits for them in ``detect``)."""
        if not text.strip():
            return True
        wl = self._prepared.get(condition.list_id or "")
        if wl is None or not wl.items:
            return False
        entry = self._lists.get(id(wl))
        if entry is None or entry[0] is not wl:
            return False
        threshold = condition.threshold_for(wl.id, DEFAULT_THRESHOLD)
        return self._settled(text, wl, entry[1], threshold) is not None

    async def vectors(self, wl: WordList) -> npt.NDArray[np.float32]:
        """The embeddings of the list's sentences, computed once per list object."""
        entry = self._lists.get(id(wl))
        if entry is None or entry[0] is not wl:
            vectors = await self.encoder.encode_async(wl.items)
            entry = (wl, vectors)
            self._lists[id(wl)] = entry
            if len(self._lists) > 64:
                self._lists.pop(next(iter(self._lists)))
        return entry[1]

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """One detection (category = list id) with the best cosine similarity."""
        wl = ctx.lists.get(condition.list_id or "")
        if wl is None or wl.kind != "sentences":
            return []
        text = message_text(message)
        if not text.strip() or not wl.items:
            return [Detection(self.name, wl.id, 0.0)]
        vectors = await self.vectors(wl)
        if ctx.cascade:
            settled = self._settled(
                text, wl, vectors, condition.threshold_for(wl.id, DEFAULT_THRESHOLD)
            )
            if settled is not None:
                self.counts[STAGE_LEXICAL] += 1
                return [settled]
        self.counts[STAGE_ENCODER] += 1
        embedding = await self.encoder.embed(text)
        sims = vectors @ embedding
        best = int(np.argmax(sims))
        score = round(float(min(max(sims[best], 0.0), 1.0)), 4)
        return [Detection(self.name, wl.id, score, f"similar to {wl.items[best]!r} ({score:.2f})")]
