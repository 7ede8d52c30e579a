"""Sentence similarity detector (condition kind ``similarity``).

The condition names a list of kind ``sentences`` (``listId``); the confidence is the highest
cosine similarity (0..1) between the message's sentence embedding and the list's sentences
(multilingual Universal Sentence Encoder), category = the list id, and the reason names the
closest sentence. Paraphrases of a listed sentence typically score 0.6-0.9, unrelated chat
below 0.4 (the shipped rule's threshold: ``defaults.SIMILARITY_THRESHOLD``). A list's embeddings are computed once per list object (lists are replaced, not
mutated, when edited through the API), in the encoder's worker thread.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from moderation.detectors.base import EXPENSIVE, DetectContext, Detector, message_text
from moderation.detectors.encoder import SharedEncoder
from moderation.detectors.model_registry import ModelRegistry, shared_models
from moderation.rules import Condition, WordList
from moderation.types import Detection, MessageView


class SimilarityDetector(Detector):
    """Detector for ``similarity`` conditions: closeness to a ``sentences`` list."""

    name = "similarity"
    cost = EXPENSIVE
    reads: frozenset[str] = frozenset()
    list_kinds: tuple[str, ...] = ("sentences",)

    def __init__(self, models: ModelRegistry | None = None) -> None:
        self.models = shared_models() if models is None else models
        self._lists: dict[int, tuple[WordList, npt.NDArray[np.float32]]] = {}

    @property
    def encoder(self) -> SharedEncoder:
        """The shared sentence encoder."""
        return self.models.encoder()

    def warm_up(self) -> None:
        """Start loading the sentence encoder in a background thread."""
        self.models.warm_up(("encoder",))

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
        embedding = await self.encoder.embed(text)
        sims = vectors @ embedding
        best = int(np.argmax(sims))
        score = round(float(min(max(sims[best], 0.0), 1.0)), 4)
        return [Detection(self.name, wl.id, score, f"similar to {wl.items[best]!r} ({score:.2f})")]
