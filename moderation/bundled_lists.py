"""The word lists shipped in ``moderation/data``: their ids and how their files are read.

Read by ``defaults`` (the lists a fresh server stores) and by the model registry (the
profanity feature of the text heads), so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

#: (language code, language) of the bundled profanity lists, ``data/profanity-<code>.txt``.
PROFANITY_LANGUAGES: tuple[tuple[str, str], ...] = (
    ("en", "English"),
    ("de", "German"),
    ("fr", "French"),
    ("es", "Spanish"),
    ("it", "Italian"),
    ("pt", "Portuguese"),
    ("nl", "Dutch"),
)
ALLOW_MARKER = "[allow]"


def read_word_file(text: str) -> tuple[list[str], list[str]]:
    """Items and allow-list of a bundled list file.

    One word or phrase per line; ``#`` starts a comment line; lines after ``[allow]`` are
    the allow-list.
    """
    items: list[str] = []
    allow: list[str] = []
    target = items
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == ALLOW_MARKER:
            target = allow
            continue
        if line not in target:
            target.append(line)
    return items, allow


def read_profanity_list(code: str) -> tuple[list[str], list[str]]:
    """Items and allow-list of the bundled profanity list of language ``code``."""
    return read_word_file((DATA_DIR / f"profanity-{code}.txt").read_text(encoding="utf-8"))
