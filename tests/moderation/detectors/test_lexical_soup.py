"""A seed soup of the lexical model (``moderation.training.soup``): one model whose logits are
the mean of its seeds' logits, whose out-of-fold logits are the mean of theirs, and a soup of
one seed is that seed's model."""

from __future__ import annotations

import numpy as np
import pytest

from moderation.detectors.lexical import LOGIT_CLIP, Lexical, buckets
from moderation.training import lexical as training
from moderation.training import soup


def _data() -> tuple[list[str], training.Sparse, np.ndarray, np.ndarray, np.ndarray]:
    # more rows than one mini-batch, so each seed's order of rows gives another model
    texts = [f"you are a {w} {n}" for w in ("idiot", "moron", "loser") for n in range(100)]
    texts += [f"you are a {w} {n}" for w in ("friend", "star", "hero") for n in range(100)]
    x = training.Sparse.of([buckets(t) for t in texts])
    # noisy labels (7 in 10 insults positive, 3 in 10 friendly ones), so no logit reaches the
    # clip and the mean of the seeds' logits is exact
    rude = [float(n % 10 < 7) for _ in range(3) for n in range(100)]
    kind = [float(n % 10 < 3) for _ in range(3) for n in range(100)]
    y = np.array([[p, 1 - p] for p in rude + kind], dtype=np.float32)
    fold = np.arange(len(texts), dtype=np.int64) % 3
    return texts, x, y, np.ones_like(y), fold


def test_a_soups_logits_are_the_mean_of_its_seeds_logits() -> None:
    texts, x, y, w, fold = _data()
    fits = [soup.fit_seed(x, y, w, fold, 3, s) for s in soup.seeds(11, 3)]
    assert not np.array_equal(fits[0].weights, fits[1].weights)  # the seeds differ
    mixed = soup.combine(fits)
    categories = ("toxicity", "insult")
    probe = [*texts[::50], "you are a star and a hero", "never seen words here"]
    seed_logits = [Lexical(categories, f.weights, f.bias).logits(probe) for f in fits]
    soup_logits = Lexical(categories, mixed.weights, mixed.bias).logits(probe)
    assert np.abs(np.stack(seed_logits)).max() < LOGIT_CLIP  # unclipped: the mean is exact
    assert np.allclose(soup_logits, np.mean(seed_logits, axis=0), atol=1e-5)
    # and it still ranks the insults above the friendly words
    z = training.predict(x, mixed.weights, mixed.bias)
    assert z[:300, 0].mean() > z[300:, 0].mean() + 1 and z[300:, 1].mean() > z[:300, 1].mean() + 1
    # the heads train on the soup's out-of-fold logits: the mean of the seeds', clipped
    assert np.allclose(mixed.oof, np.clip(np.mean([f.oof for f in fits], axis=0), -12, 12))


def test_a_soup_of_one_seed_is_that_seeds_model() -> None:
    _, x, y, w, fold = _data()
    (one,) = soup.seeds(11, 1)
    mixed = soup.combine([soup.fit_seed(x, y, w, fold, 3, one)])
    weights, bias = training.fit(x, y, w, seed=one)
    assert np.array_equal(mixed.weights, weights) and np.array_equal(mixed.bias, bias)
    oof = training.cross_fit(x, y, w, fold, 3, seed=one)
    assert np.array_equal(mixed.oof, oof)


def test_a_soup_needs_a_seed() -> None:
    with pytest.raises(ValueError):
        soup.seeds(11, 0)
    with pytest.raises(ValueError):
        soup.combine([])
