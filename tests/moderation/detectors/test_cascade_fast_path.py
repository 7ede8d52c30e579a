"""The cascade's lexical stage is computed the fast way (per-word caches, one pass over the
text, the gate's arithmetic precomputed); its results must be exactly those of the plain
definitions below, so a settled text keeps its scores and the same texts are settled. The
reference here is the straightforward code the fast path replaced: every n-gram hashed one by
one, the cheap features counted character by character, the lexical model and the gate as
written in their docstrings."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from moderation.detectors.heads import (
    EMBEDDING_DIM,
    GATE_MASK,
    SETTLED_CAP,
    Heads,
    cheap_features,
    text_features,
)
from moderation.detectors.keywords import CompiledList, find
from moderation.detectors.lexical import (
    LOGIT_CLIP,
    MAX_CHARS,
    Lexical,
    bucket,
    buckets,
    length_class,
    ngrams,
)
from moderation.detectors.model_registry import ModelRegistry
from moderation.detectors.scam import ScamDetector
from moderation.detectors.signals import (
    _URGENCY_RE,
    MONEY_RE,
    SHORTENERS,
    domains,
    may_settle,
    money_hits,
    shortener_links,
    urgency_hits,
)
from moderation.detectors.toxicity import ToxicityDetector
from moderation.normalize import fold, tokenize

OWN_SET = (
    Path(__file__).resolve().parents[3]
    / "moderation"
    / "training"
    / "data"
    / "parley_labelled.jsonl"
)

#: Texts that take the unusual branches: empty, spaces only, long (over ``MAX_CHARS``), other
#: scripts, look-alikes, leetspeak, stretched letters, masks, links, money, urgency, capitals,
#: repeated words (repeated n-grams count once), a word longer than the n-gram cut.
EDGE = [
    "",
    "   ",
    "a",
    "ok",
    "OK!!!",
    "lunch at 12? \u2615",
    "thanks thanks thanks thanks",
    "Claim your FREE prize now at bit.ly/abc123, you idiot!! sh1t",
    "URGENT: verify your account within 24 hours or it will be SUSPENDED",
    "send $500 in bitcoin to my wallet, 1,000 usd profit guaranteed",
    "f u c k this, s.h.i.t happens, f*ck",
    "fuuuuuck yoooou",
    "h\u0435llo fr\u0456end",  # Cyrillic look-alikes
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "\u4f60\u597d\u4e16\u754c\uff0c\u8fd9\u662f\u4e00\u6761\u6d88\u606f",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "du bist ein Vollidiot",
    "supercalifragilisticexpialidocious" * 3,
    "see https://www.example.com/path?q=1 and www.test.io and foo.bar.xyz",
    "ALL CAPS SHOUTING AT EVERYONE HERE",
    "tab\tseparated\nnew line\u00a0nbsp\u200bzero width",
    "word " * 300,  # over MAX_CHARS
    "x" * 1500,
    "\U0001f600\U0001f600 emoji only \U0001f44d",
    # money and pressure words in every case, inside other words, and non-ASCII look-alikes
    # that the patterns' case-insensitive matching takes for ASCII letters
    "Coffee FEES Gift Card giftcards WIRE transfer Western Union 5k 3 dollars \u20ac5 \u00a3 9",
    "DON'T TELL anyone, Hurry, LOCKED, expiring, within 3 days, 24h, Verify Your id",
    "\u017fu\u017fpended and \u212aeep it \u017fecret, act now",  # long s, Kelvin sign
    "URGENTLY ASAP: Limited Time, LAST CHANCE, today only, final notice, before its too late",
]


def texts() -> list[str]:
    with OWN_SET.open(encoding="utf-8") as f:
        own = [json.loads(line)["text"] for line in f]
    return EDGE + own


# ------------------------------------------------------------------ the reference


def ref_buckets(text: str) -> npt.NDArray[np.int32]:
    return np.array(sorted({bucket(f) for f in ngrams(text)}), dtype=np.int32)


def ref_extra(text: str, profanity: CompiledList) -> npt.NDArray[np.float32]:
    prof = len(find(profanity, tokenize(fold(text))))
    links = domains(text)
    letters = [c for c in text if c.isalpha()]
    caps = sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 8 else 0.0
    return np.array(
        [
            float(prof > 0),
            math.log1p(prof),
            math.log1p(len(links)),
            float(any(d in SHORTENERS for d in links)),
            math.log1p(len(_URGENCY_RE.findall(text))),
            math.log1p(len(MONEY_RE.findall(text))),
            caps,
        ],
        dtype=np.float32,
    )


def ref_logits(lexical: Lexical, ids: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
    z: npt.NDArray[np.float32] = lexical.bias[length_class(len(ids))].copy()
    if len(ids):
        z += lexical.weights[ids].sum(axis=0, dtype=np.float32) * np.float32(
            1.0 / np.sqrt(len(ids))
        )
    np.clip(z, -LOGIT_CLIP, LOGIT_CLIP, out=z)
    return z


def ref_gate(heads: Heads, ids: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
    gate = heads.gate
    assert gate is not None
    emb: npt.NDArray[np.float32] = gate.bias[length_class(len(ids))].copy()
    if len(ids):
        emb += gate.weights[ids & GATE_MASK].sum(axis=0, dtype=np.float32) * np.float32(
            1.0 / np.sqrt(len(ids))
        )
    return emb


def ref_settled(
    heads: Heads, ids: npt.NDArray[np.int32], rest: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32] | None:
    gate = heads.gate
    assert gate is not None
    emb = ref_gate(heads, ids)
    logits = emb + rest @ heads.weights[EMBEDDING_DIM:] + heads.bias
    z = np.clip(heads.platt_a * logits + heads.platt_b, -30.0, 30.0)
    estimate = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    if bool((estimate >= gate.thresholds).any()):
        return None
    return np.minimum(estimate, np.float32(SETTLED_CAP))


# ------------------------------------------------------------------ the checks


@pytest.fixture(scope="module")
def models() -> ModelRegistry:
    return ModelRegistry()


def test_pressure_and_money_words_are_the_patterns_hits() -> None:
    """The quick test before the patterns (for ASCII text) never hides a hit."""
    found = 0
    for text in texts():
        for variant in (text, text.upper(), text.title()):
            assert urgency_hits(variant) == len(_URGENCY_RE.findall(variant)), variant
            assert money_hits(variant) == len(MONEY_RE.findall(variant)), variant
            found += urgency_hits(variant) + money_hits(variant)
    assert found > 100


def test_buckets_are_the_hashed_ngrams(models: ModelRegistry) -> None:
    for text in texts():
        assert np.array_equal(buckets(text), ref_buckets(text)), text


def test_cheap_features_are_the_reference(models: ModelRegistry) -> None:
    lexical, profanity = models.lexical(), models.profanity()
    for text in texts():
        ids, rest, may = cheap_features(text, lexical, profanity)
        want_ids = ref_buckets(text)
        assert np.array_equal(ids, want_ids), text
        want = np.concatenate([ref_extra(text, profanity), ref_logits(lexical, want_ids)])
        assert rest.dtype == np.float32 and rest.tobytes() == want.tobytes(), text
        assert np.array_equal(text_features(text, lexical, profanity), want), text
        # the server's way: the lexical model's rows and the gate's gathered together
        kept = models.text_cheap(text)
        assert np.array_equal(kept.ids, want_ids), text
        assert kept.rest.tobytes() == want.tobytes(), text
        assert kept.gate_logits is not None
        assert kept.gate_logits.tobytes() == ref_gate(models.heads(), want_ids).tobytes(), text
        folded = fold(text[:MAX_CHARS])
        assert may == may_settle([t.text for t in tokenize(folded)], folded), text


def test_settled_scores_are_the_reference(models: ModelRegistry) -> None:
    heads, lexical, profanity = models.heads(), models.lexical(), models.profanity()
    settled = 0
    for text in texts():
        ids = ref_buckets(text)
        rest = np.concatenate([ref_extra(text, profanity), ref_logits(lexical, ids)])
        want = ref_settled(heads, ids, rest)
        got = heads.settled_scores(ids, rest)
        given = heads.settled_scores(ids, rest, ref_gate(heads, ids))
        if want is None:
            assert got is None and given is None, text
            continue
        settled += 1
        assert got is not None and got.tobytes() == want.tobytes(), text
        assert given is not None and given.tobytes() == want.tobytes(), text
    assert settled > 100  # both branches are exercised


async def test_the_detectors_report_the_reference_scores() -> None:
    """The lexical stage's results as the detectors report them (rounded to 4 places), and
    the scam detector's link and urgency categories, match the reference."""
    models = ModelRegistry()
    heads, lexical, profanity = models.heads(), models.lexical(), models.profanity()
    toxicity, scam = ToxicityDetector(models), ScamDetector(models)
    for text in texts():
        result = toxicity.lexical_result(text)
        ids = ref_buckets(text)
        rest = np.concatenate([ref_extra(text, profanity), ref_logits(lexical, ids)])
        folded = fold(text[:MAX_CHARS])
        want = (
            ref_settled(heads, ids, rest)
            if may_settle([t.text for t in tokenize(folded)], folded)
            else None
        )
        if want is None:
            assert result is None, text
            continue
        assert result is not None, text
        assert result.scores == {
            c: round(float(p), 4) for c, p in zip(heads.categories, want, strict=True)
        }, text
        assert scam.links_and_urgency(text) == (
            shortener_links(text),
            len(_URGENCY_RE.findall(text)),
        )


def _examples(items: object, cap: int = 2000) -> list[str]:
    """Every shortest way through a parsed regex (``re._parser``), each optional part both
    taken and left, each character class by one member: a string per alternative of the
    pattern, so a word added to a pattern gets an example here."""
    from re import _constants as c  # type: ignore[attr-defined]

    out = [""]
    for op, arg in items:  # type: ignore[attr-defined]
        if op is c.LITERAL:
            opts = [chr(arg)]
        elif op is c.IN:
            opts = []
            for kind, val in arg:
                if kind is c.LITERAL:
                    opts.append(chr(val))
                elif kind is c.RANGE:
                    opts.append(chr(val[0]))
                elif kind is c.CATEGORY:
                    opts.append({c.CATEGORY_DIGIT: "7", c.CATEGORY_SPACE: " "}[val])
        elif op is c.BRANCH:
            opts = [e for branch in arg[1] for e in _examples(branch, cap)]
        elif op is c.SUBPATTERN:
            opts = _examples(arg[-1], cap)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
            low, _high, sub = arg
            inner = _examples(sub, cap)
            opts = [e * max(low, 1) for e in inner] + ([""] if low == 0 else [])
        elif op is c.AT:
            continue
        else:
            raise AssertionError(f"unexpected regex element {op}")
        out = [a + b for a in out for b in opts][:cap]
    return out


@pytest.mark.parametrize("pattern", [_URGENCY_RE, MONEY_RE], ids=["urgency", "money"])
def test_every_word_of_the_patterns_passes_the_quick_test(pattern: object) -> None:
    """Each alternative of the urgency and money patterns, as its own message in three letter
    cases, is counted: a word added to a pattern but not to its quick word list fails here."""
    import re._parser as sre_parse  # type: ignore[import-not-found]

    assert isinstance(pattern, re.Pattern)
    count = urgency_hits if pattern is _URGENCY_RE else money_hits
    examples = {e for e in _examples(sre_parse.parse(pattern.pattern, pattern.flags)) if e}
    assert len(examples) > 30
    for example in examples:
        for variant in (example, example.upper(), example.title()):
            text = f"ok {variant} ok"
            assert pattern.findall(text), text  # the example is a real match
            assert count(text) == len(pattern.findall(text)) >= 1, text
