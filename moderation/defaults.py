"""The rules and word lists a fresh Parley server starts with, in their JSON shapes.

The server stores them like any rule or list created through the API (so they have
revisions, can be edited, disabled or deleted).

Lists: ``profanity-en``, ``profanity-de``, ``profanity-fr``, ``profanity-es``, ``profanity-it``,
``profanity-pt``, ``profanity-nl`` (keywords, from ``moderation/data/*.txt``).

Rules (all for message type ``text`` only, so custom messages stay unmoderated by default):

- ``profanity`` - enabled; any of the seven profanity lists -> ``block``.
- ``spam`` - enabled; the spam behaviour detector (the same or nearly the same text sent to 3
  conversations within 10 minutes, or 3 links in one message) -> ``block``. Blocking rather
  than ``review`` keeps a flood out of the moderators' queue and never leaves messages
  pending. Bursts from one user are left to the per-user rate limit.
- ``contact-phone`` - disabled; a phone number (also spelled out or split) -> ``block``.
- ``contact-email`` - disabled; an e-mail address (also obfuscated) -> ``block``.

The contact rules are off because sharing a number or address is normal in most chats;
marketplaces and communities for minors turn them on.
"""

from __future__ import annotations

from pathlib import Path

#: (list id, language) of the bundled profanity lists.
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


def default_lists() -> list[dict[str, object]]:
    """The bundled word lists as list JSON objects (reads package data)."""
    out: list[dict[str, object]] = []
    data = Path(__file__).resolve().parent / "data"
    for code, language in PROFANITY_LANGUAGES:
        text = (data / f"profanity-{code}.txt").read_text(encoding="utf-8")
        items, allow = read_word_file(text)
        out.append(
            {
                "id": f"profanity-{code}",
                "name": f"Profanity ({language})",
                "kind": "keywords",
                "items": items,
                "allow": allow,
            }
        )
    return out


def _rule(
    rule_id: str,
    name: str,
    description: str,
    conditions: list[dict[str, object]],
    actions: list[str],
    *,
    enabled: bool,
) -> dict[str, object]:
    return {
        "id": rule_id,
        "name": name,
        "description": description,
        "enabled": enabled,
        "filters": {},
        "match": "any",
        "conditions": conditions,
        "actions": actions,
    }


def default_rules() -> list[dict[str, object]]:
    """The default rules as Rule JSON objects (without revision and timestamps)."""
    return [
        _rule(
            "profanity",
            "Profanity filter",
            "Blocks text messages containing profanity or slurs in English, German, French,"
            " Spanish, Italian, Portuguese or Dutch, including common evasions.",
            [
                {"kind": "keywords", "messageTypes": ["text"], "listId": f"profanity-{code}"}
                for code, _ in PROFANITY_LANGUAGES
            ],
            ["block"],
            enabled=True,
        ),
        _rule(
            "spam",
            "Spam behaviour",
            "Blocks the same or nearly the same text sent to 3 or more conversations within"
            " 10 minutes, and link-heavy messages (3 or more links). Floods from one user are"
            " the rate limiter's job, so bursts are not judged here by default.",
            [
                {
                    "kind": "spam",
                    "messageTypes": ["text"],
                    "categories": ["repeat", "links"],
                    "acrossConversations": True,
                }
            ],
            ["block"],
            enabled=True,
        ),
        _rule(
            "contact-phone",
            "Phone numbers",
            "Blocks phone numbers, also when spelled out or split; off by default.",
            [{"kind": "phone", "messageTypes": ["text"], "contextWindow": 2}],
            ["block"],
            enabled=False,
        ),
        _rule(
            "contact-email",
            "E-mail addresses",
            "Blocks e-mail addresses, also when obfuscated ('name at example dot com');"
            " off by default.",
            [{"kind": "email", "messageTypes": ["text"], "contextWindow": 2}],
            ["block"],
            enabled=False,
        ),
    ]
