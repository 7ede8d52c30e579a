"""The base of the detectors that score a message with the bundled text heads.

A text's head scores: its sentence embedding (the shared encoder, batched and off the event
loop) followed by the cheap text features (``ModelRegistry.text_features``), scored by the
calibrated heads (``heads.Heads``). The models come from the ``ModelRegistry`` the detector
is given, by default the process's one.
"""

from __future__ import annotations

import numpy as np

from moderation.detectors.base import EXPENSIVE, Detector
from moderation.detectors.model_registry import ModelName, ModelRegistry, shared_models

#: What ``HeadDetector.warm_up`` starts loading.
HEAD_MODELS: tuple[ModelName, ...] = ("encoder", "heads", "lexical", "profanity")


class HeadDetector(Detector):
    """Base of the detectors that score a message with the bundled heads.

    Reports every category in ``categories`` on every run (confidence 0 for an empty text),
    so the evaluate endpoint shows all of them; the engine applies the thresholds.
    """

    name: str = ""
    cost: int = EXPENSIVE

    def __init__(self, models: ModelRegistry | None = None) -> None:
        self.models = shared_models() if models is None else models

    def warm_up(self) -> None:
        """Start loading the encoder, the heads and the lexical model in background threads."""
        self.models.warm_up(HEAD_MODELS)

    async def head_scores(self, text: str) -> dict[str, float]:
        """Calibrated head probabilities for ``text`` (every bundled category)."""
        heads = self.models.heads()
        if not text.strip():
            return dict.fromkeys(heads.categories, 0.0)
        embedding = await self.models.encoder().embed(text)
        features = np.concatenate([embedding.astype(np.float32), self.models.text_features(text)])
        probs = heads.scores(features[None, :])[0]
        return {c: round(float(p), 4) for c, p in zip(heads.categories, probs, strict=True)}
