"""Regex pattern lists, run with the ``regex`` package under a per-pattern time limit.

Patterns are case-insensitive and searched in the raw text and, when it differs, in its
folded form (``moderation.normalize.fold``: confusables, full-width forms, accents). A pattern
that runs past its time limit (catastrophic backtracking) counts as no match and is logged as
a warning; it never stalls the pipeline for longer than the limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import regex

from moderation.detectors.base import DetectContext, message_text
from moderation.normalize import fold
from moderation.rules import Condition, WordList
from moderation.types import Detection, MessageView

log = logging.getLogger(__name__)

#: Seconds one pattern may run against one text.
DEFAULT_TIMEOUT = 0.05


@dataclass(frozen=True)
class CompiledPatterns:
    """A pattern list compiled once; ``allow`` holds folded texts a match may not be."""

    patterns: tuple[tuple[str, Any], ...]
    allow: frozenset[str]


def compile_patterns(wl: WordList) -> CompiledPatterns:
    """Compile every pattern (already validated by ``parse_list``) case-insensitively."""
    compiled: list[tuple[str, Any]] = []
    for item in wl.items:
        try:
            compiled.append((item, regex.compile(item, regex.IGNORECASE)))
        except regex.error:
            log.warning("pattern %r of list %s does not compile; skipped", item, wl.id)
    return CompiledPatterns(tuple(compiled), frozenset(fold(a) for a in wl.allow))


class PatternDetector:
    """Detector for ``patterns`` conditions: category = list id, one detection per pattern."""

    name = "patterns"
    cost = 2
    reads: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._compiled: dict[int, tuple[WordList, CompiledPatterns]] = {}

    def compiled(self, wl: WordList) -> CompiledPatterns:
        """The compiled form of ``wl``, built once per list object."""
        entry = self._compiled.get(id(wl))
        if entry is None or entry[0] is not wl:
            entry = (wl, compile_patterns(wl))
            self._compiled[id(wl)] = entry
        return entry[1]

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """A detection for each pattern of the list that matches the message."""
        wl = ctx.lists.get(condition.list_id or "")
        if wl is None or wl.kind != "patterns":
            return []
        raw = message_text(message)
        if not raw:
            return []
        texts = [raw]
        folded = fold(raw)
        if folded != raw:
            texts.append(folded)
        compiled = self.compiled(wl)
        out: list[Detection] = []
        for source, pattern in compiled.patterns:
            found = self._search(pattern, source, texts, compiled.allow, wl.id)
            if found is not None:
                out.append(
                    Detection(self.name, wl.id, 1.0, f"pattern {source!r} matched {found!r}")
                )
        return out

    def _search(
        self, pattern: Any, source: str, texts: list[str], allow: frozenset[str], list_id: str
    ) -> str | None:
        for text in texts:
            try:
                for m in pattern.finditer(text, timeout=self.timeout):
                    matched = str(m.group(0))
                    if fold(matched) not in allow:
                        return matched[:100]
            except TimeoutError:
                log.warning("pattern %r of list %s timed out; treated as no match", source, list_id)
                return None
        return None
