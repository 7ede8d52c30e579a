"""The lexical model: stable hashing, its features, the shipped file and its layout in the
heads, scores that separate profane from clean text, and the numpy training it comes from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moderation.detectors.heads import (
    EMBEDDING_DIM,
    EXTRA_FEATURES,
    FEATURE_NAMES,
    Heads,
)
from moderation.detectors.lexical import (
    DIM,
    LENGTH_CLASSES,
    LEXICAL_CATEGORIES,
    LOGIT_CLIP,
    MODEL_PATH,
    Lexical,
    bucket,
    buckets,
    length_class,
    ngrams,
)
from moderation.detectors.model_registry import shared_models
from moderation.training import lexical as training

ROOT = Path(__file__).resolve().parents[3]


def test_hash_is_crc32_and_pinned() -> None:
    # pinned values: a change here silently invalidates the shipped weights
    assert bucket(" id") == 59997
    assert bucket("\x01idiot") == 210316
    assert bucket("fuck") == 220620
    assert all(0 <= b < DIM for b in (bucket("x"), bucket("\u00e9t\u00e9"), bucket("")))


def test_hash_does_not_depend_on_the_process() -> None:
    """Python's ``hash`` is salted per process; the buckets must not be."""
    text = "Claim your FREE prize now, you idiot!! sh1t"
    code = f"from moderation.detectors.lexical import buckets; print(buckets({text!r}).tolist())"
    runs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        runs.add(out.stdout.strip())
    assert runs == {str(buckets(text).tolist())}


def test_ngrams_layout() -> None:
    grams = ngrams("Idiot!")
    assert grams[:3] == [" i", "id", "di"]  # char 2-grams of " idiot! " first
    assert " idio" in grams and "iot! " in grams  # up to 5-grams, padded word
    assert "\x01idiot" in grams  # word unigram (token without the punctuation)
    assert all(len(g) <= 5 for g in grams if not g.startswith(("\x01", "\x02")))
    leet = ngrams("sh1t head")
    assert "\x01sh1t" in leet and "\x01shit" in leet  # de-obfuscated variant
    assert "\x02sh1t head" in leet  # word bigram
    # folded: case, full-width and accents do not change the features
    assert ngrams("IDIOT") == ngrams("idiot") == ngrams("\uff49\uff44\uff49\uff4f\uff54")
    assert ngrams("") == [] and len(buckets("")) == 0


def test_buckets_sorted_distinct() -> None:
    ids = buckets("the the the cat sat on the mat")
    assert ids.dtype == np.int32
    assert np.all(np.diff(ids) > 0)
    assert len(buckets("x" * 100_000)) < 30  # long words are cut, long texts too


def test_length_classes() -> None:
    assert [length_class(n) for n in (0, 1, 15, 16, 31, 32, 200, 1023, 1024, 10**6)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        4,
        6,
        7,
        7,
    ]
    assert length_class(10**9) == LENGTH_CLASSES - 1


def test_shipped_model_loads_and_matches_the_layout() -> None:
    assert MODEL_PATH.exists() and MODEL_PATH.stat().st_size < 4 * 1024 * 1024
    lexical = shared_models().lexical()
    assert lexical.categories == LEXICAL_CATEGORIES
    assert lexical.weights.shape == (DIM, len(LEXICAL_CATEGORIES))
    assert lexical.bias.shape == (LENGTH_CLASSES, len(LEXICAL_CATEGORIES))
    assert np.isfinite(lexical.weights).all() and np.abs(lexical.weights).max() > 0
    heads = shared_models().heads()
    assert heads.feature_names == FEATURE_NAMES
    lexical_names = tuple(f"lexical_{c}" for c in LEXICAL_CATEGORIES)
    assert EXTRA_FEATURES + lexical_names == FEATURE_NAMES
    assert heads.weights.shape == (EMBEDDING_DIM + len(FEATURE_NAMES), len(heads.categories))
    feats = shared_models().text_features("you stupid idiot")
    assert feats.shape == (len(FEATURE_NAMES),) and not feats.flags.writeable
    lexical_part = feats[len(EXTRA_FEATURES) :]
    assert np.allclose(lexical_part, lexical.logits(["you stupid idiot"])[0])


def test_heads_refuse_a_file_for_another_layout(tmp_path: Path) -> None:
    heads = shared_models().heads()
    old = Heads(
        heads.categories,
        heads.weights[: EMBEDDING_DIM + len(EXTRA_FEATURES)],
        heads.bias,
        heads.platt_a,
        heads.platt_b,
        feature_names=EXTRA_FEATURES,
    )
    path = tmp_path / "old.npz"
    old.save(path)
    with pytest.raises(ValueError, match="retrain"):
        Heads.load(path)


def test_lexical_refuses_a_file_with_other_shapes(tmp_path: Path) -> None:
    bad = Lexical(("toxicity",), np.zeros((16, 1), np.float32), np.zeros((1, 1), np.float32))
    bad.save(tmp_path / "bad.npz")
    with pytest.raises(ValueError):
        Lexical.load(tmp_path / "bad.npz")


def test_profane_and_scam_texts_score_above_clean_ones() -> None:
    lexical = shared_models().lexical()
    col = {c: i for i, c in enumerate(lexical.categories)}
    clean = lexical.logits(
        [
            "see you tomorrow at the cafe",
            "can you review my pull request please",
            "the meeting is cancelled, sorry",
        ]
    )
    profane = lexical.logits(["holy shit, what the fuck", "fuck you, you stupid piece of shit"])
    assert profane[:, col["profane"]].min() > clean[:, col["profane"]].max()
    assert profane[:, col["toxicity"]].min() > clean[:, col["toxicity"]].max()
    insult = lexical.logits(["shut up you worthless idiot"])[0]
    assert insult[col["insult"]] > clean[:, col["insult"]].max()
    scam = lexical.logits(["WINNER!! Claim your FREE prize now, txt WIN to 80082"])[0]
    assert scam[col["scam"]] > 0 > clean[:, col["scam"]].max()
    # evasions share n-grams with the plain word
    evasive = lexical.logits(["fuuuck you", "sh1t"])[:, col["profane"]]
    assert evasive.min() > clean[:, col["profane"]].max()
    assert np.abs(lexical.logits(["x" * 5000, ""])).max() <= LOGIT_CLIP


def _toy() -> tuple[training.Sparse, np.ndarray, np.ndarray]:
    texts = [f"you are a {w} {n}" for w in ("idiot", "moron", "loser") for n in range(20)]
    texts += [f"you are a {w} {n}" for w in ("friend", "star", "hero") for n in range(20)]
    y = np.array([[1.0]] * 60 + [[0.0]] * 60, dtype=np.float32)
    return training.Sparse.of([buckets(t) for t in texts]), y, np.ones_like(y)


def test_training_separates_and_is_deterministic() -> None:
    x, y, w = _toy()
    weights, bias = training.fit(x, y, w, epochs=5)
    again, bias_again = training.fit(x, y, w, epochs=5)
    assert np.array_equal(weights, again) and np.array_equal(bias, bias_again)
    assert weights.shape == (DIM, 1) and bias.shape == (LENGTH_CLASSES, 1)
    z = training.predict(x, weights, bias)[:, 0]
    assert z[:60].min() > z[60:].max()
    # the numpy training and the runtime model compute the same logits
    model = Lexical(("toxicity",), weights, bias)
    assert np.allclose(model.logits(["you are a idiot 3"])[0, 0], z[3], atol=1e-4)


def test_cross_fit_scores_rows_with_models_that_did_not_see_them() -> None:
    x, y, w = _toy()
    fold = np.arange(len(y), dtype=np.int64) % 2
    oof = training.cross_fit(x, y, w, fold, 2, epochs=5)
    assert oof.shape == y.shape
    # the held-out words are shared with the other fold, so it still separates
    assert oof[:60, 0].mean() > oof[60:, 0].mean()
    # a row whose only distinctive word appears in no other row gets no credit for it
    x1 = training.Sparse.of([buckets("zqxj unique"), buckets("plain words"), buckets("plain")])
    y1 = np.array([[1.0], [0.0], [0.0]], dtype=np.float32)
    full_w, full_b = training.fit(x1, y1, np.ones_like(y1), epochs=20)
    fitted = training.predict(x1, full_w, full_b)[0, 0]
    held = training.cross_fit(x1, y1, np.ones_like(y1), np.array([0, 1, 1]), 2, epochs=20)
    assert held[0, 0] < fitted


def test_adding_rows_does_not_reshuffle_the_others() -> None:
    # each epoch's order is a hash of every row (its n-grams, the epoch, the seed): rows added
    # to the training data fall in among the others, whose order among themselves stays, so a
    # change of data is not judged through a new mini-batch order
    x, _, _ = _toy()
    extra = training.Sparse.of([buckets(f"a new row {n}") for n in range(30)])
    both = training.Sparse.of(
        [x.indices[x.indptr[i] : x.indptr[i + 1]] for i in range(len(x))]
        + [extra.indices[extra.indptr[i] : extra.indptr[i + 1]] for i in range(len(extra))]
    )
    old = np.arange(len(x), dtype=np.int64)
    for epoch in range(3):
        alone = training.epoch_order(x.key, old, epoch, training.SEED)
        mixed = training.epoch_order(both.key, np.arange(len(both), dtype=np.int64), epoch, 1)
        mixed_same_seed = training.epoch_order(
            both.key, np.arange(len(both), dtype=np.int64), epoch, training.SEED
        )
        assert list(mixed_same_seed[mixed_same_seed < len(x)]) == list(alone)
        assert sorted(alone) == list(old) and list(alone) != list(old)
        # another seed (or epoch) is another order
        assert list(mixed[mixed < len(x)]) != list(alone)
    assert list(training.epoch_order(x.key, old, 0, 7)) != list(
        training.epoch_order(x.key, old, 1, 7)
    )


def test_another_seed_trains_another_model_that_still_separates() -> None:
    # more rows than one mini-batch, so the order matters
    texts = [f"you are a {w} {n}" for w in ("idiot", "moron", "loser") for n in range(100)]
    texts += [f"you are a {w} {n}" for w in ("friend", "star", "hero") for n in range(100)]
    x = training.Sparse.of([buckets(t) for t in texts])
    y = np.array([[1.0]] * 300 + [[0.0]] * 300, dtype=np.float32)
    w = np.ones_like(y)
    weights, _ = training.fit(x, y, w, epochs=3)
    other, bias = training.fit(x, y, w, epochs=3, seed=3)
    assert not np.array_equal(weights, other)
    z = training.predict(x, other, bias)[:, 0]
    assert z[:300].min() > z[300:].max()
