"""Keyword lists matched on whole words and phrases of normalised text.

A list compiles once (cached per ``WordList`` object) to a set of canonical words, the
phrases indexed by their first word, and the allow-list. A text is folded and tokenised
(``moderation.normalize``), then each token is tried in every form it may stand for
(leetspeak decoded, stretched letters collapsed). Words split by separators are joined first:
runs of single characters (``f u c k``, ``f.u.c.k``, ``f-u-c-k``, ``f*u*c*k``) and tokens glued
by punctuation without spaces (``fu.ck``); a masked token (``f*ck``, ``sh#t``) matches a listed
word of the same length. Only whole tokens match, so ``Scunthorpe``, ``assessment`` or
``cocktail`` pass a list holding ``cunt``, ``ass`` and ``cock``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from moderation.detectors.base import DetectContext, Detector, message_text
from moderation.detectors.kept import Kept
from moderation.normalize import LEET, MASKS, Token, fold, item_words, tokenize, variants
from moderation.rules import Condition, WordList
from moderation.types import Detection, MessageView

#: Longest gap between the pieces of a separated word (``f . u``) and longest run joined.
MAX_GAP = 3
MAX_RUN = 40
#: One-letter words that may precede or follow a spelled-out word ("a f u c k i n g").
_LONE_WORDS = ("a", "i", "u")


@dataclass(frozen=True)
class CompiledList:
    """A word list ready for matching; see the module docstring."""

    words: dict[str, str]  # canonical word (or joined phrase) -> list item
    phrases: dict[str, tuple[tuple[tuple[str, ...], str], ...]]  # first word -> (words, item)
    by_length: dict[int, tuple[str, ...]]  # for masked tokens
    allow: tuple[tuple[str, ...], ...]


def compile_list(wl: WordList) -> CompiledList:
    """Compile a keyword (or sentence) list; pure and deterministic."""
    words: dict[str, str] = {}
    phrases: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for item in wl.items:
        parts = item_words(item)
        if not parts:
            continue
        if len(parts) == 1:
            words.setdefault(parts[0], item)
        else:
            phrases.setdefault(parts[0], []).append((parts, item))
            words.setdefault("".join(parts), item)
    by_length: dict[int, list[str]] = {}
    for word in words:
        by_length.setdefault(len(word), []).append(word)
    return CompiledList(
        words=words,
        phrases={k: tuple(v) for k, v in phrases.items()},
        by_length={k: tuple(v) for k, v in by_length.items()},
        allow=tuple(p for p in (item_words(a) for a in wl.allow) if p),
    )


@dataclass(frozen=True)
class Hit:
    """A list item found at token positions ``start`` (inclusive) to ``end`` (exclusive)."""

    item: str
    start: int
    end: int


@dataclass(frozen=True)
class Prepared:
    """A text's tokens with every form each may stand for, and the joined candidates: the
    list-independent part of matching, computed once per text however many lists run."""

    tokens: list[Token]
    forms: list[tuple[str, ...]]
    joined: list[tuple[int, int, str, tuple[str, ...]]]  # start, end, joined text, its forms


def prepare(tokens: list[Token]) -> Prepared:
    return Prepared(
        tokens,
        [variants(t.text) for t in tokens],
        [(start, end, text, variants(text)) for start, end, text in _joined(tokens)],
    )


@lru_cache(maxsize=256)
def prepared_text(text: str) -> Prepared:
    """``prepare(tokenize(fold(text)))``, kept for the few texts in flight: the keyword
    detector and the AI heads' profanity feature read the same message. Read only."""
    return prepare(tokenize(fold(text)))


def find(compiled: CompiledList, text: list[Token] | Prepared) -> list[Hit]:
    """Every hit of ``compiled`` in the text, outside allowed phrases, in text order."""
    prepared = text if isinstance(text, Prepared) else prepare(text)
    tokens, forms = prepared.tokens, prepared.forms
    hits: list[Hit] = []
    for i, token_forms in enumerate(forms):
        item = _word_hit(compiled, token_forms)
        if item is not None:
            hits.append(Hit(item, i, i + 1))
        for form in token_forms:
            for parts, phrase_item in compiled.phrases.get(form, ()):
                end = i + len(parts)
                if end <= len(tokens) and all(
                    parts[k] in forms[i + k] for k in range(1, len(parts))
                ):
                    hits.append(Hit(phrase_item, i, end))
    for start, end, joined, joined_forms in prepared.joined:
        item = _word_hit(compiled, joined_forms)
        if item is not None:
            hits.append(Hit(item, start, end))
        elif any(c in MASKS for c in joined):
            item = _masked_hit(compiled, joined)
            if item is not None:
                hits.append(Hit(item, start, end))
    if compiled.allow and hits:
        allowed = _allowed_spans(compiled.allow, forms)
        hits = [h for h in hits if not any(s < h.end and h.start < e for s, e in allowed)]
    hits.sort(key=lambda h: (h.start, h.end))
    return hits


def _word_hit(compiled: CompiledList, token_forms: Iterable[str]) -> str | None:
    for form in token_forms:
        item = compiled.words.get(form)
        if item is not None:
            return item
    return None


def _masked_hit(compiled: CompiledList, joined: str) -> str | None:
    core = joined.strip("".join(MASKS))
    masked = sum(c in MASKS for c in core)
    if masked == 0 or masked * 2 > len(core) or core[0] in MASKS:
        return None
    decoded = "".join(c if c in MASKS else c.translate(LEET) for c in core)
    for word in compiled.by_length.get(len(decoded), ()):
        if all(d in MASKS or d == w for d, w in zip(decoded, word, strict=True)):
            return compiled.words[word]
    return None


def _joined(tokens: list[Token]) -> list[tuple[int, int, str]]:
    """Candidate words made by joining separated pieces: (start, end, joined text)."""
    out: list[tuple[int, int, str]] = []
    n = len(tokens)
    i = 0
    # Runs of single characters separated by short gaps: "f u c k", "f.u.c.k", "f - u".
    while i < n:
        j = i
        while (
            j + 1 < n
            and len(tokens[j].text) == 1
            and len(tokens[j + 1].text) == 1
            and len(tokens[j + 1].gap) <= MAX_GAP
            and "\n" not in tokens[j + 1].gap
            and j + 1 - i < MAX_RUN
        ):
            j += 1
        if j - i >= 1 and len(tokens[i].text) == 1:
            out.extend(_trimmed(tokens, i, j + 1))
        i = j + 1
    # Tokens glued by punctuation without spaces: "fu.ck", "sh*t", "f.u.c.k.i.n.g".
    i = 0
    while i < n:
        j = i
        while (
            j + 1 < n
            and 0 < len(tokens[j + 1].gap) <= MAX_GAP
            and not any(c.isspace() for c in tokens[j + 1].gap)
            and j + 1 - i < MAX_RUN
        ):
            j += 1
        if j > i:
            text = "".join(
                (tokens[k].gap if k > i and set(tokens[k].gap) <= MASKS else "") + tokens[k].text
                for k in range(i, j + 1)
            )
            out.append((i, j + 1, text))
        i = j + 1
    return out


def _trimmed(tokens: list[Token], start: int, end: int) -> list[tuple[int, int, str]]:
    """A run of single characters, and the run without a leading/trailing one-letter word."""
    out = [(start, end, "".join(t.text for t in tokens[start:end]))]
    s, e = start, end
    if tokens[s].text in _LONE_WORDS and e - s > 2:
        s += 1
    if tokens[e - 1].text in _LONE_WORDS and e - s > 2:
        e -= 1
    if (s, e) != (start, end):
        out.append((s, e, "".join(t.text for t in tokens[s:e])))
    if s != start and e != end:
        out.append((s, end, "".join(t.text for t in tokens[s:end])))
        out.append((start, e, "".join(t.text for t in tokens[start:e])))
    return out


def _allowed_spans(
    allow: tuple[tuple[str, ...], ...], forms: list[tuple[str, ...]]
) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for parts in allow:
        for i in range(len(forms) - len(parts) + 1):
            if all(parts[k] in forms[i + k] for k in range(len(parts))):
                spans.append((i, i + len(parts)))
    return spans


class KeywordDetector(Detector):
    """Detector for ``keywords`` conditions: the condition's list, category = list id."""

    name = "keywords"
    cost = 1
    reads: frozenset[str] = frozenset()
    list_kinds: tuple[str, ...] = ("keywords", "sentences")

    def __init__(self, *, cache_size: int = 256) -> None:
        self._compiled: dict[int, tuple[WordList, CompiledList]] = {}
        self._prepared: OrderedDict[str, Prepared] = OrderedDict()
        # ``rules_out``'s answer per text, with the lists object it was given (a clean text
        # seen again is ruled out without folding and searching it again)
        self._ruled_out: Kept[str, tuple[Mapping[str, WordList], bool]] = Kept()
        self._unions: dict[int, tuple[Mapping[str, WordList], CompiledList]] = {}
        self._may: OrderedDict[tuple[int, int], tuple[Prepared, Mapping[str, WordList], bool]] = (
            OrderedDict()
        )
        self._cache_size = cache_size

    def compiled(self, wl: WordList) -> CompiledList:
        """The compiled form of ``wl``, built once per list object."""
        entry = self._compiled.get(id(wl))
        if entry is None or entry[0] is not wl:
            entry = (wl, compile_list(wl))
            self._compiled[id(wl)] = entry
        return entry[1]

    def prepare(self, lists: Mapping[str, WordList]) -> None:
        """Compile the keyword and sentence lists now, not on the first message."""
        for wl in lists.values():
            if wl.kind in self.list_kinds:
                self.compiled(wl)

    def may_match(self, prepared: Prepared, lists: Mapping[str, WordList]) -> bool:
        """False only when no keyword list in ``lists`` can match the text.

        A rule usually checks several lists (one per language). All of them merged into one
        list without allow-lists finds a superset of every single list's hits, so a clean
        message, the common case, is ruled out by one search instead of one per list.
        """
        key = (id(prepared), id(lists))
        known = self._may.get(key)
        if known is not None and known[0] is prepared and known[1] is lists:
            return known[2]  # the other conditions of the same message
        result = bool(find(self._merged(lists), prepared))
        self._may[key] = (prepared, lists, result)
        if len(self._may) > 64:
            self._may.popitem(last=False)
        return result

    def _merged(self, lists: Mapping[str, WordList]) -> CompiledList:
        cached = self._unions.get(id(lists))
        if cached is not None and cached[0] is lists:
            return cached[1]
        words: dict[str, str] = {}
        phrases: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        by_length: dict[int, list[str]] = {}
        for wl in lists.values():
            if wl.kind == "patterns":
                continue
            compiled = self.compiled(wl)
            for word, item in compiled.words.items():
                words.setdefault(word, item)
            for first, entries in compiled.phrases.items():
                phrases.setdefault(first, []).extend(entries)
        for word in words:
            by_length.setdefault(len(word), []).append(word)
        merged = CompiledList(
            words=words,
            phrases={k: tuple(v) for k, v in phrases.items()},
            by_length={k: tuple(v) for k, v in by_length.items()},
            allow=(),
        )
        self._unions = {id(lists): (lists, merged)}  # one engine's lists at a time
        return merged

    def prepared(self, text: str) -> Prepared:
        """``text`` folded, tokenised and expanded, cached for the few texts in flight (a
        message is checked against several lists, one condition each)."""
        found = self._prepared.get(text)
        if found is None:
            found = prepared_text(text)
            self._prepared[text] = found
            if len(self._prepared) > self._cache_size:
                self._prepared.popitem(last=False)
        else:
            self._prepared.move_to_end(text)
        return found

    def rules_out(self, message: MessageView, lists: Mapping[str, WordList]) -> bool:
        """True when no keyword list can match the message (the engine then skips every
        keyword condition of a rule without running them one by one)."""
        text = message_text(message)
        if not text:
            return True
        known = self._ruled_out.get(text)
        if known is not None and known[0] is lists:
            return known[1]
        result = not self.may_match(self.prepared(text), lists)
        self._ruled_out.put(text, (lists, result), text)
        return result

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """One detection per distinct item found; none when the list is missing."""
        wl = ctx.lists.get(condition.list_id or "")
        if wl is None or wl.kind == "patterns":
            return []
        text = message_text(message)
        if not text:
            return []
        prepared = self.prepared(text)
        if not self.may_match(prepared, ctx.lists):
            return []  # no list at all can match: skip this list's full search
        items = dict.fromkeys(hit.item for hit in find(self.compiled(wl), prepared))
        return [
            Detection(self.name, wl.id, 1.0, f"matched {item!r} in list {wl.id}") for item in items
        ]
