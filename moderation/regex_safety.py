r"""Known-catastrophic regex shapes, found before a pattern is stored.

``catastrophic_shape`` parses a pattern with the ``regex`` package's own parser (the engine
that runs it; ``re``'s parser would rewrite ``(\w|\d)`` into ``[\w\d]`` and cannot read
``\p{L}``) into a small tree of character sets, sequences, alternations and repeats, and
looks for two shapes inside a backtracking repeat of two or more iterations:

- nested quantifier: the repeated part holds a backtracking repeat R whose characters could
  also make up the rest of the repeated part: ``(a+)+``, ``(a*)*``, ``(\w+\s?)+``,
  ``(\w+\d)+``, ``(.+,)+``. A run of R's characters then splits into iterations in
  exponentially many ways. ``(\d+\.)+`` and ``(a+b)+`` are safe: the rest needs a
  character R cannot take, which pins every split.
- overlapping alternation: two alternatives of the repeated part can start the same way,
  and one's fixed prefix does not rule the other out: ``(a|a)*``, ``(a|aa)*``,
  ``(\w|\d)+``, ``(.|\s)*``. ``(cat|car)+`` is safe (they differ at the third letter).

Character sets are compared on a sample alphabet (ASCII, a few letters, digits and spaces
of other scripts, and every character of the pattern), case-insensitively like matching.
Possessive repeats and atomic groups never backtrack into themselves and are not checked as
inner parts; lookaround bodies are checked on their own. Repeats bounded so tightly that
the split count stays small (``(\d{1,3}){4}``: 3^4) pass. Slow shapes that are only
polynomial (``.*a.*a.*b``) pass too: the runtime budget bounds those.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Final

import regex
from regex import _regex_core

log = logging.getLogger(__name__)

_SAMPLE: Final = frozenset(
    [
        *range(128),
        *map(
            ord,
            "\u00a0\u00e9\u00df\u00f1\u0131\u0430\u03c9\u05d0\u0663\u4e2d\u2003\u2028\U0001f600",
        ),
    ]
)
_LINE_BREAKS: Final = frozenset(map(ord, "\n\r\x0b\x0c\x85\u2028\u2029"))
#: Repeats whose possible splits number at most this many are not worth refusing.
_SMALL_SPLITS: Final = 1024


@dataclass(frozen=True)
class _Chars:
    """One character from ``chars`` (code points of the sample alphabet)."""

    chars: frozenset[int]


@dataclass(frozen=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Alt:
    branches: tuple[_Node, ...]


@dataclass(frozen=True)
class _Repeat:
    """``item`` repeated ``low``..``high`` times (``high`` None: unbounded); ``backtracks``
    is False for possessive repeats and atomic groups (a ``1..1`` repeat of their item)."""

    item: _Node
    low: int
    high: int | None
    backtracks: bool = True


@dataclass(frozen=True)
class _Bound:
    """A word boundary (``\\b``, ``\\m``, ``\\M``): no run of only word (or only non-word)
    characters holds one, so it pins where a repeat may end inside such a run."""


_Node = _Chars | _Seq | _Alt | _Repeat | _Bound
_EMPTY: Final = _Seq(())


def catastrophic_shape(pattern: str) -> str | None:
    """Why ``pattern`` (valid for ``regex``) can backtrack catastrophically, or None.

    A structural check of the parsed pattern for nested quantifiers and overlapping
    alternations under a repeat (see the section comment above); not a proof either way.
    """
    try:
        parsed = _parse(pattern)
    except _regex_core.error:
        return None  # not a valid pattern: compiling it reports that
    except Exception:
        # The parser is the regex package's internal one; if a new release changes it, the
        # write-time check lapses (logged) and the runtime budget still bounds the pattern.
        log.exception("cannot check the shape of pattern %r", pattern)
        return None
    converter = _Converter(_SAMPLE | frozenset(map(ord, pattern)))
    tree = converter.convert(parsed)
    for root in (tree, *converter.lookarounds):
        for loop in _loops(root):
            found = _nested(loop) or _overlapping(loop)
            if found is not None:
                return found
    return None


def _parse(pattern: str) -> Any:
    """The pattern's tree from ``regex``'s parser, as ``regex.compile`` builds it."""
    flags = regex.IGNORECASE
    while True:
        source = _regex_core.Source(pattern)
        info = _regex_core.Info(flags, source.char_type, {})
        source.ignore_space = bool(info.flags & regex.VERBOSE)
        try:
            return _regex_core._parse_pattern(source, info)
        except _regex_core._UnscopedFlagSet:
            flags = info.global_flags  # a global flag mid-pattern: parse again with it


def _variants(c: int) -> frozenset[int]:
    """``c`` and its single-character lower and upper case."""
    ch = chr(c)
    return frozenset({c, *(ord(v) for v in (ch.lower(), ch.upper()) if len(v) == 1)})


class _Converter:
    """Turns ``regex``'s parse tree into ``_Node``s over the ``sample`` alphabet; lookaround
    bodies are collected in ``lookarounds`` (they are checked on their own)."""

    def __init__(self, sample: frozenset[int]) -> None:
        self.sample = sample
        self.lookarounds: list[_Node] = []
        self._variants = [(c, _variants(c)) for c in sorted(sample)]
        self._by_variant: dict[int, set[int]] = {}
        for c, variants in self._variants:
            for v in variants:
                self._by_variant.setdefault(v, set()).add(c)
        self._sets: dict[Any, frozenset[int]] = {}  # by code point or by regex node

    def literal(self, value: int) -> _Chars:
        """One given character, in either case (patterns run with IGNORECASE)."""
        chars = self._sets.get(value)
        if chars is None:
            found = {value}
            for v in _variants(value):
                found.update(self._by_variant.get(v, ()))
            chars = self._sets[value] = frozenset(found)
        return _Chars(chars)

    def char_set(self, node: Any) -> _Chars:
        """The sample characters a one-character node accepts in either case."""
        chars = self._sets.get(node)
        if chars is None:
            matches = node.matches
            chars = frozenset(c for c, vs in self._variants if any(matches(v) for v in vs))
            self._sets[node] = chars
        return _Chars(chars)

    def convert(self, node: Any) -> _Node:
        core = _regex_core
        conv = self.convert
        if isinstance(node, core.Sequence):
            return _Seq(tuple(conv(n) for n in node.items))
        if isinstance(node, core.StringSet):  # a named list: any text
            return _Repeat(_Chars(self.sample), 0, None, backtracks=False)
        if isinstance(node, core.Branch):
            return _Alt(tuple(conv(n) for n in node.branches))
        if isinstance(node, core.PossessiveRepeat):
            return _Repeat(conv(node.subpattern), node.min_count, node.max_count, False)
        if isinstance(node, core.GreedyRepeat):  # LazyRepeat too
            return _Repeat(conv(node.subpattern), node.min_count, node.max_count)
        if isinstance(node, core.Atomic):
            return _Repeat(conv(node.subpattern), 1, 1, backtracks=False)
        if isinstance(node, core.Group | core.Fuzzy):
            return conv(node.subpattern)
        if isinstance(node, core.LookAround):
            self.lookarounds.append(conv(node.subpattern))
            return _EMPTY
        if isinstance(node, core.LookAroundConditional):
            self.lookarounds.append(conv(node.subpattern))
            return _Alt((conv(node.yes_item), conv(node.no_item)))
        if isinstance(node, core.Conditional):
            return _Alt((conv(node.yes_item), conv(node.no_item)))
        if isinstance(node, core.Boundary | core.DefaultBoundary):
            return _Bound() if node.positive else _EMPTY
        if isinstance(
            node,
            core.StartOfWord | core.EndOfWord | core.DefaultStartOfWord | core.DefaultEndOfWord,
        ):
            return _Bound()
        if isinstance(node, core.String):  # Literal too
            return _Seq(tuple(self.literal(v) for v in node.characters))
        if isinstance(node, core.AnyAll | core.Grapheme):
            return _Chars(self.sample)
        if isinstance(node, core.AnyU):
            return _Chars(self.sample - _LINE_BREAKS)
        if isinstance(node, core.Any):
            return _Chars(self.sample - {10})
        if isinstance(node, core.Character) and node.positive and not node.zerowidth:
            return self.literal(node.value)
        if isinstance(node, core.Character | core.Property | core.Range | core.SetBase):
            return _EMPTY if getattr(node, "zerowidth", False) else self.char_set(node)
        # Anchors, backreferences, recursion: nothing the check can reason about.
        return _EMPTY


def _loops(node: _Node) -> Iterator[_Repeat]:
    """Every backtracking repeat of more than one iteration in ``node``."""
    if isinstance(node, _Repeat):
        if node.backtracks and (node.high is None or node.high >= 2):
            yield node
        yield from _loops(node.item)
    elif isinstance(node, _Seq):
        for item in node.items:
            yield from _loops(item)
    elif isinstance(node, _Alt):
        for branch in node.branches:
            yield from _loops(branch)


def _nullable(node: _Node) -> bool:
    if isinstance(node, _Bound):
        return True
    if isinstance(node, _Chars):
        return False
    if isinstance(node, _Seq):
        return all(_nullable(n) for n in node.items)
    if isinstance(node, _Alt):
        return any(_nullable(n) for n in node.branches)
    return node.low == 0 or _nullable(node.item)


def _first(node: _Node) -> frozenset[int]:
    """Characters a match of ``node`` can start with."""
    if isinstance(node, _Bound):
        return frozenset()
    if isinstance(node, _Chars):
        return node.chars
    if isinstance(node, _Seq):
        out: frozenset[int] = frozenset()
        for item in node.items:
            out |= _first(item)
            if not _nullable(item):
                break
        return out
    if isinstance(node, _Alt):
        return frozenset().union(*(_first(n) for n in node.branches))
    return _first(node.item) if node.high != 0 else frozenset()


def _chars(node: _Node) -> frozenset[int]:
    """Every character a match of ``node`` can contain."""
    if isinstance(node, _Bound):
        return frozenset()
    if isinstance(node, _Chars):
        return node.chars
    if isinstance(node, _Seq):
        return frozenset().union(*(_chars(n) for n in node.items))
    if isinstance(node, _Alt):
        return frozenset().union(*(_chars(n) for n in node.branches))
    return _chars(node.item)


def _fits(node: _Node, allowed: frozenset[int]) -> bool:
    """Whether ``node`` can match some text made only of ``allowed`` characters."""
    if isinstance(node, _Bound):
        words = sum(1 for c in allowed if chr(c).isalnum() or c == ord("_"))
        return 0 < words < len(allowed)
    if isinstance(node, _Chars):
        return bool(node.chars & allowed)
    if isinstance(node, _Seq):
        return all(_fits(n, allowed) for n in node.items)
    if isinstance(node, _Alt):
        return any(_fits(n, allowed) for n in node.branches)
    return node.low == 0 or _fits(node.item, allowed)


def _inside(node: _Node) -> Iterator[tuple[_Node, tuple[_Node, ...]]]:
    """Each part of one iteration of a loop body, with the parts beside it on its path (the
    rest of that iteration when this part is taken): down through sequences, alternatives
    and optional parts, not into inner loops (checked as loops themselves) or atomic parts.
    """
    yield node, ()
    if isinstance(node, _Seq):
        for i, item in enumerate(node.items):
            beside = node.items[:i] + node.items[i + 1 :]
            for part, rest in _inside(item):
                yield part, beside + rest
    elif isinstance(node, _Alt):
        for branch in node.branches:
            yield from _inside(branch)
    elif isinstance(node, _Repeat) and node.backtracks and node.high is not None and node.high <= 1:
        for part, rest in _inside(node.item):
            yield part, rest


def _few_splits(loop: _Repeat, choices: int) -> bool:
    """Whether ``choices`` per iteration, over the loop's iterations, stay few."""
    return loop.high is not None and choices**loop.high <= _SMALL_SPLITS


def _nested(loop: _Repeat) -> str | None:
    for part, rest in _inside(loop.item):
        if (
            isinstance(part, _Repeat)
            and part.backtracks
            and (part.high is None or part.high > part.low)
            and _fits(_Seq(rest), _chars(part.item))
        ):
            if part.high is not None and _few_splits(loop, part.high - part.low + 1):
                continue
            return (
                "nested quantifier: a repeated group contains a repeat that can take the"
                " characters of the rest of the group (like (a+)+, (a*)* or (\\w+\\s?)+);"
                " repeat the inner part only, or make the group end with a character the"
                " inner repeat cannot match"
            )
    return None


def _prefix(node: _Node) -> list[frozenset[int]]:
    """The character sets of the fixed-width start of ``node`` (one per position)."""
    if isinstance(node, _Chars):
        return [node.chars]
    if isinstance(node, _Seq):
        out: list[frozenset[int]] = []
        for item in node.items:
            if isinstance(item, _Bound):
                continue
            head = _prefix(item)
            out.extend(head)
            if not (isinstance(item, _Chars) or (isinstance(item, _Seq) and _fixed(item))):
                break
        return out
    return []


def _fixed(node: _Node) -> bool:
    if isinstance(node, _Chars | _Bound):
        return True
    return isinstance(node, _Seq) and all(_fixed(n) for n in node.items)


def _overlapping(loop: _Repeat) -> str | None:
    for part, _ in _inside(loop.item):
        if not isinstance(part, _Alt) or _few_splits(loop, len(part.branches)):
            continue
        shapes = [(_nullable(b), _first(b), _prefix(b)) for b in part.branches]
        for (empty_a, first_a, prefix_a), (empty_b, first_b, prefix_b) in combinations(shapes, 2):
            if empty_a and empty_b:
                clash = True
            elif not first_a & first_b:
                clash = False
            else:
                clash = all(x & y for x, y in zip(prefix_a, prefix_b, strict=False))
            if clash:
                return (
                    "overlapping alternatives under a repeat: two alternatives can match"
                    " the same text (like (a|a)*, (a|aa)* or (\\w|\\d)+); make the"
                    " alternatives exclusive, or use one character class"
                )
    return None
