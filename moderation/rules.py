"""Rules and word lists: frozen models, validation from the JSON of PROTOCOL.md, and back.

Over 400 lines on purpose: the models and their validators mirror each other field by field,
and splitting them would put one wire shape in two places.

``parse_rule`` and ``parse_list`` accept the decoded JSON body and raise ``RuleError`` naming
the offending field path (``conditions[0].threshold``). Validation is strict: unknown keys are
errors, so a typo never silently disables part of a rule. ``rule_to_json`` and
``list_to_json`` give back exactly the wire shape (camelCase), so
``parse_rule(rule_to_json(r)) == r``.

Regex patterns are also checked for shapes known to backtrack catastrophically
(``catastrophic_shape``) when a list is written; a list read back from storage is not held to
checks that came later (``parse_list(..., stored=True)``): the runtime budget bounds it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import phonenumbers
import regex

from moderation.errors import RuleError
from moderation.regex_safety import catastrophic_shape
from moderation.types import Action, ReceiverView, UserView

#: Condition kinds a rule may use. Kinds without a registered detector validate but never
#: match (see ``Engine.unavailable_kinds``).
CONDITION_KINDS: Final = frozenset(
    {
        "keywords",
        "patterns",
        "phone",
        "email",
        "toxicity",
        "sentiment",
        "similarity",
        "spam",
        "scam",
        "image",
        "video",
        "image_hash",
        "openai",
        "custom_api",
    }
)
#: Kinds whose condition names a word list in ``listId``.
LIST_CONDITION_KINDS: Final = frozenset({"keywords", "patterns", "similarity", "image_hash"})
#: ``image_hashes``: 64-bit perceptual hashes (``moderation.phash``) as 16 hex digits, for
#: ``image_hash`` conditions (docs/moderation.md, "Known-bad images").
LIST_KINDS: Final = ("keywords", "patterns", "sentences", "image_hashes")
#: Hashes per ``image_hashes`` list (each frame is compared with all of them, vectorised).
MAX_IMAGE_HASHES: Final = 10_000
#: The ``maxDistance`` of an ``image_hash`` condition: its default, calibrated in
#: ``tests/moderation/test_phash.py``, and its ceiling (unrelated images lie ~32 apart).
DEFAULT_HASH_DISTANCE: Final = 10
MAX_HASH_DISTANCE: Final = 24
MAX_CONTEXT_WINDOW: Final = 10
MAX_LIST_ITEMS: Final = 20_000
MAX_ITEM_LENGTH: Final = 500
#: Patterns per ``patterns`` list: each is a separate search of every message, and all of a
#: rule's share one time budget (``moderation.detectors.patterns``).
MAX_PATTERNS: Final = 500

#: Categories the local AI detectors score; a condition of these kinds may only name these.
TOXICITY_CATEGORIES: Final = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "insult",
    "identity_attack",
    "threat",
    "sexual",
    "self_harm",
    "violence",
)
SENTIMENT_CATEGORIES: Final = ("negative", "positive")
SCAM_CATEGORIES: Final = (
    "scam",
    "phishing",
    "advance_fee",
    "crypto",
    "fake_offer",
    "link_shortener",
    "urgency",
    "spam_behaviour",
)
IMAGE_CATEGORIES: Final = (
    "unsafe",
    "explicit_nudity",
    "non_explicit_nudity",
    "swimwear_underwear",
    "violence",
    "gambling",
    "alcohol",
    "drugs_tobacco",
    "rude_gestures",
    "visually_disturbing",
    "hate_symbols",
)
KIND_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "toxicity": TOXICITY_CATEGORIES,
    "sentiment": SENTIMENT_CATEGORIES,
    "scam": SCAM_CATEGORIES,
    "image": IMAGE_CATEGORIES,
    "video": IMAGE_CATEGORIES,
}

ParamValue = str | int | float | bool | tuple[str, ...]

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_REGION_CODES = frozenset(phonenumbers.SUPPORTED_REGIONS)


class MatchMode(StrEnum):
    """Whether any or all of a rule's applicable conditions must match."""

    ANY = "any"
    ALL = "all"


@dataclass(frozen=True)
class SenderFilter:
    """Which senders a rule applies to; empty fields match everyone."""

    uids: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    name_contains: str | None = None
    created_after: int | None = None
    created_before: int | None = None

    def matches(self, user: UserView) -> bool:
        """Whether ``user`` passes every non-empty field (tags: any one in common)."""
        return (
            (not self.uids or user.uid in self.uids)
            and (not self.roles or user.role in self.roles)
            and (not self.tags or not set(self.tags).isdisjoint(user.tags))
            and _name_ok(self.name_contains, user.name)
            and _created_ok(self.created_after, self.created_before, user.created_at)
        )


@dataclass(frozen=True)
class ReceiverFilter:
    """Which receivers a rule applies to; empty fields match everything.

    ``group_types`` only constrains group receivers: a direct message passes it (restrict
    ``types`` to ``["group"]`` to exclude direct messages).
    """

    types: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    group_types: tuple[str, ...] = ()
    name_contains: str | None = None
    created_after: int | None = None
    created_before: int | None = None

    def matches(self, receiver: ReceiverView) -> bool:
        """Whether ``receiver`` passes every non-empty field (tags: any one in common)."""
        return (
            (not self.types or receiver.type in self.types)
            and (not self.ids or receiver.id in self.ids)
            and (not self.tags or not set(self.tags).isdisjoint(receiver.tags))
            and (
                not self.group_types
                or receiver.type != "group"
                or receiver.group_type in self.group_types
            )
            and _name_ok(self.name_contains, receiver.name)
            and _created_ok(self.created_after, self.created_before, receiver.created_at)
        )


def _name_ok(needle: str | None, name: str) -> bool:
    return not needle or needle.casefold() in name.casefold()


def _created_ok(after: int | None, before: int | None, created_at: int) -> bool:
    return (after is None or created_at > after) and (before is None or created_at < before)


@dataclass(frozen=True)
class Condition:
    """One test a rule applies to messages of ``message_types``.

    ``threshold`` None means the engine default (0.5); ``context_window`` None means the
    engine's configured window. ``params`` holds the kind-specific options under their JSON
    names (e.g. ``regions`` for phone, ``repeatThreshold`` for spam).
    """

    kind: str
    message_types: tuple[str, ...]
    list_id: str | None = None
    threshold: float | None = None
    categories: tuple[str, ...] = ()
    context_window: int | None = None
    params: tuple[tuple[str, ParamValue], ...] = ()

    def param(self, name: str, default: ParamValue) -> ParamValue:
        """A kind-specific option, or ``default`` when the rule leaves it out."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    def threshold_for(self, category: str, default: float) -> float:
        """``thresholds[category]`` if given, else ``threshold``, else ``default``."""
        for key, value in self.params:
            if key == "thresholds" and isinstance(value, tuple):
                for item in value:  # "category=0.8", see _parse_param
                    name, _, number = item.partition("=")
                    if name == category:
                        return float(number)
        return default if self.threshold is None else self.threshold

    def lowest_threshold(self, default: float) -> float:
        """The lowest threshold any category has under this condition (``threshold_for``'s
        values): the smallest of its ``thresholds`` and of ``threshold`` (else ``default``),
        which applies to the categories ``thresholds`` leaves out."""
        values = [default if self.threshold is None else self.threshold]
        for key, value in self.params:
            if key == "thresholds" and isinstance(value, tuple):
                values.extend(float(item.partition("=")[2]) for item in value)
        return min(values)

    def applies_to(self, category: str, message_type: str, caption: bool = False) -> bool:
        """Whether this condition looks at messages of this category and type.

        For category ``custom`` the entry ``"custom"`` covers every custom type. With
        ``caption`` (a media message that has a text), the conditions on ``text`` apply too:
        a caption is judged by the text rules.
        """
        if message_type in self.message_types:
            return True
        if caption and "text" in self.message_types:
            return True
        return category == "custom" and "custom" in self.message_types


@dataclass(frozen=True)
class Rule:
    """A moderation rule, as in the Rule object of PROTOCOL.md."""

    id: str
    name: str
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    description: str = ""
    enabled: bool = True
    sender: SenderFilter = field(default_factory=SenderFilter)
    receiver: ReceiverFilter = field(default_factory=ReceiverFilter)
    match: MatchMode = MatchMode.ANY
    revision: int = 0
    created_at: int = 0
    updated_at: int = 0

    def applies(self, sender: UserView, receiver: ReceiverView) -> bool:
        """Whether the sender and receiver filters let this rule look at a message."""
        return self.sender.matches(sender) and self.receiver.matches(receiver)


@dataclass(frozen=True)
class WordList:
    """A named list of keywords, regex patterns or sentences, with an allow-list.

    ``allow`` holds words or phrases that never count as a hit even when an item matches
    inside them (e.g. a place name containing a listed word).
    """

    id: str
    name: str
    kind: str
    items: tuple[str, ...]
    allow: tuple[str, ...] = ()


# ---------------------------------------------------------------------- JSON helpers


def _obj(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise RuleError(path or "body", "must be an object")
    return value


def _no_unknown(obj: Mapping[str, object], known: Collection[str], prefix: str) -> None:
    for key in obj:
        if key not in known:
            raise RuleError(prefix + key, "unknown field")


def _str(value: object, path: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RuleError(path, "must be a string")
    if not empty and not value.strip():
        raise RuleError(path, "must not be empty")
    return value


def _opt_str(value: object, path: str) -> str | None:
    return None if value is None else _str(value, path, empty=True) or None


def _int(value: object, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(path, "must be an integer")
    if not lo <= value <= hi:
        raise RuleError(path, f"must be between {lo} and {hi}")
    return value


def _opt_int(value: object, path: str) -> int | None:
    return None if value is None else _int(value, path, 0, 2**53)


def _number(value: object, path: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(path, "must be a number")
    if not lo <= value <= hi:
        raise RuleError(path, f"must be between {lo:g} and {hi:g}")
    return float(value)


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise RuleError(path, "must be true or false")
    return value


def _strs(
    value: object,
    path: str,
    *,
    choices: Collection[str] | None = None,
    nonempty: bool = False,
) -> tuple[str, ...]:
    if value is None:
        value = []
    if not isinstance(value, list):
        raise RuleError(path, "must be a list of strings")
    out: list[str] = []
    for i, item in enumerate(value):
        s = _str(item, f"{path}[{i}]")
        if choices is not None and s not in choices:
            raise RuleError(f"{path}[{i}]", f"must be one of {', '.join(sorted(choices))}")
        if s not in out:
            out.append(s)
    if nonempty and not out:
        raise RuleError(path, "must not be empty")
    return tuple(out)


# ---------------------------------------------------------------------- rules

_RULE_KEYS = (
    "id",
    "name",
    "description",
    "enabled",
    "filters",
    "match",
    "conditions",
    "actions",
    "revision",
    "createdAt",
    "updatedAt",
)
_SENDER_KEYS = ("uids", "roles", "tags", "nameContains", "createdAfter", "createdBefore")
_RECEIVER_KEYS = (
    "types",
    "ids",
    "tags",
    "groupTypes",
    "nameContains",
    "createdAfter",
    "createdBefore",
)
_CONDITION_KEYS = ("kind", "messageTypes", "listId", "threshold", "categories", "contextWindow")
_SPAM_INTS: Final = {
    # The server gives spam detectors the sender's 20 most recent messages (10 minutes).
    "repeatThreshold": (2, 20),
    "burstCount": (2, 20),
    "burstSeconds": (1, 3600),
    "windowSeconds": (1, 86_400),
    "linkThreshold": (1, 100),
    "minLength": (0, 1000),
}
_KIND_PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "phone": ("regions",),
    "spam": (*_SPAM_INTS, "similarity", "acrossConversations"),
    "openai": ("prompt", "model"),
    "image_hash": ("maxDistance",),
    **{kind: ("thresholds",) for kind in KIND_CATEGORIES},
}


def parse_rule(obj: object, *, known_lists: Collection[str] | None = None) -> Rule:
    """Validate a Rule JSON object and build a ``Rule``.

    ``known_lists``, when given, are the list ids a ``listId`` may name. Absent optional
    fields take their defaults (enabled, match ``any``, empty filters, revision 0). Raises
    ``RuleError`` with the path of the first offending field.
    """
    body = _obj(obj, "")
    _no_unknown(body, _RULE_KEYS, "")
    rule_id = _str(body.get("id"), "id")
    if not _ID_RE.fullmatch(rule_id):
        raise RuleError("id", "must be 1-128 letters, digits, '_', '.', ':' or '-'")
    name = _str(body.get("name", rule_id), "name")
    description = _str(body.get("description", ""), "description", empty=True)
    enabled = _bool(body.get("enabled", True), "enabled")
    filters = _obj(body.get("filters") or {}, "filters")
    _no_unknown(filters, ("sender", "receiver"), "filters.")
    match_raw = body.get("match", "any")
    if match_raw not in ("any", "all"):
        raise RuleError("match", "must be 'any' or 'all'")
    raw_conditions = body.get("conditions")
    if not isinstance(raw_conditions, list) or not raw_conditions:
        raise RuleError("conditions", "must be a non-empty list")
    conditions = tuple(
        _parse_condition(c, f"conditions[{i}]", known_lists) for i, c in enumerate(raw_conditions)
    )
    actions = tuple(
        Action(a) for a in _strs(body.get("actions"), "actions", choices=set(Action), nonempty=True)
    )
    return Rule(
        id=rule_id,
        name=name,
        description=description,
        enabled=enabled,
        sender=_parse_sender(filters.get("sender") or {}),
        receiver=_parse_receiver(filters.get("receiver") or {}),
        match=MatchMode(str(match_raw)),
        conditions=conditions,
        actions=actions,
        revision=_int(body.get("revision", 0), "revision", 0, 2**53),
        created_at=_int(body.get("createdAt", 0), "createdAt", 0, 2**53),
        updated_at=_int(body.get("updatedAt", 0), "updatedAt", 0, 2**53),
    )


def _parse_sender(value: object) -> SenderFilter:
    p = "filters.sender"
    obj = _obj(value, p)
    _no_unknown(obj, _SENDER_KEYS, p + ".")
    return SenderFilter(
        uids=_strs(obj.get("uids"), p + ".uids"),
        roles=_strs(obj.get("roles"), p + ".roles"),
        tags=_strs(obj.get("tags"), p + ".tags"),
        name_contains=_opt_str(obj.get("nameContains"), p + ".nameContains"),
        created_after=_opt_int(obj.get("createdAfter"), p + ".createdAfter"),
        created_before=_opt_int(obj.get("createdBefore"), p + ".createdBefore"),
    )


def _parse_receiver(value: object) -> ReceiverFilter:
    p = "filters.receiver"
    obj = _obj(value, p)
    _no_unknown(obj, _RECEIVER_KEYS, p + ".")
    return ReceiverFilter(
        types=_strs(obj.get("types"), p + ".types", choices=("user", "group")),
        ids=_strs(obj.get("ids"), p + ".ids"),
        tags=_strs(obj.get("tags"), p + ".tags"),
        group_types=_strs(obj.get("groupTypes"), p + ".groupTypes"),
        name_contains=_opt_str(obj.get("nameContains"), p + ".nameContains"),
        created_after=_opt_int(obj.get("createdAfter"), p + ".createdAfter"),
        created_before=_opt_int(obj.get("createdBefore"), p + ".createdBefore"),
    )


def _parse_condition(value: object, p: str, known_lists: Collection[str] | None) -> Condition:
    obj = _obj(value, p)
    kind = obj.get("kind")
    if kind not in CONDITION_KINDS:
        raise RuleError(p + ".kind", f"must be one of {', '.join(sorted(CONDITION_KINDS))}")
    assert isinstance(kind, str)
    extra = _KIND_PARAMS.get(kind, ())
    _no_unknown(obj, (*_CONDITION_KEYS, *extra), p + ".")
    message_types = _strs(obj.get("messageTypes"), p + ".messageTypes", nonempty=True)
    list_id: str | None = None
    if kind in LIST_CONDITION_KINDS:
        list_id = _str(obj.get("listId"), p + ".listId")
        if known_lists is not None and list_id not in known_lists:
            raise RuleError(p + ".listId", f"no list {list_id!r}")
    elif obj.get("listId") is not None:
        raise RuleError(p + ".listId", f"not used by kind {kind!r}")
    threshold = obj.get("threshold")
    context_window = obj.get("contextWindow")
    return Condition(
        kind=kind,
        message_types=message_types,
        list_id=list_id,
        threshold=None if threshold is None else _number(threshold, p + ".threshold", 0.0, 1.0),
        categories=_strs(
            obj.get("categories"), p + ".categories", choices=KIND_CATEGORIES.get(kind)
        ),
        context_window=None
        if context_window is None
        else _int(context_window, p + ".contextWindow", 0, MAX_CONTEXT_WINDOW),
        params=tuple(
            (key, _parse_param(kind, key, obj[key], f"{p}.{key}"))
            for key in extra
            if obj.get(key) is not None
        ),
    )


def _parse_param(kind: str, key: str, value: object, path: str) -> ParamValue:
    if key == "thresholds":
        mapping = _obj(value, path)
        choices = KIND_CATEGORIES.get(kind, ())
        for category in mapping:
            if category not in choices:
                raise RuleError(f"{path}.{category}", f"must be one of {', '.join(choices)}")
        # kept as "category=value" strings so params stay flat and hashable
        return tuple(
            f"{category}={_number(mapping[category], f'{path}.{category}', 0.0, 1.0)!r}"
            for category in sorted(mapping)
        )
    if key == "regions":
        regions = _strs(value, path, nonempty=True)
        for i, region in enumerate(regions):
            if region not in _REGION_CODES:
                raise RuleError(f"{path}[{i}]", f"unknown region {region!r}")
        return regions
    if key in _SPAM_INTS:
        lo, hi = _SPAM_INTS[key]
        return _int(value, path, lo, hi)
    if key == "similarity":
        return _number(value, path, 0.0, 1.0)
    if key == "acrossConversations":
        return _bool(value, path)
    if key == "maxDistance":
        return _int(value, path, 0, MAX_HASH_DISTANCE)
    return _str(value, path)


def rule_to_json(rule: Rule) -> dict[str, object]:
    """The Rule object of PROTOCOL.md for ``rule`` (camelCase, every filter field present)."""
    s, r = rule.sender, rule.receiver
    return {
        "id": rule.id,
        "name": rule.name,
        "description": rule.description,
        "enabled": rule.enabled,
        "filters": {
            "sender": {
                "uids": list(s.uids),
                "roles": list(s.roles),
                "tags": list(s.tags),
                "nameContains": s.name_contains,
                "createdAfter": s.created_after,
                "createdBefore": s.created_before,
            },
            "receiver": {
                "types": list(r.types),
                "ids": list(r.ids),
                "tags": list(r.tags),
                "groupTypes": list(r.group_types),
                "nameContains": r.name_contains,
                "createdAfter": r.created_after,
                "createdBefore": r.created_before,
            },
        },
        "match": rule.match.value,
        "conditions": [condition_to_json(c) for c in rule.conditions],
        "actions": [a.value for a in rule.actions],
        "revision": rule.revision,
        "createdAt": rule.created_at,
        "updatedAt": rule.updated_at,
    }


def condition_to_json(condition: Condition) -> dict[str, object]:
    """One condition as JSON; optional fields appear only when set."""
    out: dict[str, object] = {"kind": condition.kind, "messageTypes": list(condition.message_types)}
    if condition.list_id is not None:
        out["listId"] = condition.list_id
    if condition.threshold is not None:
        out["threshold"] = condition.threshold
    if condition.categories:
        out["categories"] = list(condition.categories)
    if condition.context_window is not None:
        out["contextWindow"] = condition.context_window
    for key, value in condition.params:
        if key == "thresholds" and isinstance(value, tuple):
            out[key] = {k.partition("=")[0]: float(k.partition("=")[2]) for k in value}
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


# ---------------------------------------------------------------------- lists

_LIST_KEYS = ("id", "name", "kind", "items", "allow", "createdAt", "updatedAt")


def parse_list(obj: object, *, stored: bool = False) -> WordList:
    """Validate a word-list JSON object and build a ``WordList``.

    Every pattern of a ``patterns`` list is compiled here, so a bad one is rejected at write
    time with its index (``items[3]``); so is one of a catastrophic shape
    (``catastrophic_shape``), and a list of more than ``MAX_PATTERNS`` patterns.
    ``stored=True`` is for bodies read back from storage: they were valid when written, and a
    later check must not drop the list (and the rules naming it) on upgrade, so only
    compilation is checked; the runtime budget bounds slow patterns. ``createdAt``/
    ``updatedAt`` are accepted and dropped (storage owns them). Raises ``RuleError``.
    """
    body = _obj(obj, "")
    _no_unknown(body, _LIST_KEYS, "")
    list_id = _str(body.get("id"), "id")
    if not _ID_RE.fullmatch(list_id):
        raise RuleError("id", "must be 1-128 letters, digits, '_', '.', ':' or '-'")
    kind = body.get("kind", "keywords")
    if kind not in LIST_KINDS:
        raise RuleError("kind", f"must be one of {', '.join(LIST_KINDS)}")
    assert isinstance(kind, str)
    items = _list_items(body.get("items"), "items")
    if kind == "patterns":
        if not stored and len(items) > MAX_PATTERNS:
            raise RuleError("items", f"at most {MAX_PATTERNS} patterns")
        for i, pattern in enumerate(items):
            try:
                regex.compile(pattern)
            except (regex.error, ValueError, OverflowError) as exc:
                raise RuleError(f"items[{i}]", f"invalid pattern: {exc}") from exc
            shape = None if stored else catastrophic_shape(pattern)
            if shape is not None:
                raise RuleError(
                    f"items[{i}]",
                    f"pattern {pattern!r} can backtrack catastrophically: {shape}",
                )
    if kind == "image_hashes":
        items = _image_hashes(items, stored=stored)
    for key in ("createdAt", "updatedAt"):
        if key in body:
            _int(body[key], key, 0, 2**53)
    return WordList(
        id=list_id,
        name=_str(body.get("name", list_id), "name"),
        kind=kind,
        items=items,
        allow=_list_items(body.get("allow", []), "allow"),
    )


_HASH_RE = re.compile(r"[0-9a-f]{16}")


def _image_hashes(items: tuple[str, ...], *, stored: bool) -> tuple[str, ...]:
    """The items of an ``image_hashes`` list: 16 hex digits each (lowercased, duplicates
    dropped), at most ``MAX_IMAGE_HASHES`` of them."""
    if not stored and len(items) > MAX_IMAGE_HASHES:
        raise RuleError("items", f"at most {MAX_IMAGE_HASHES} hashes")
    out: dict[str, None] = {}
    for i, item in enumerate(items):
        norm = item.lower()
        if not _HASH_RE.fullmatch(norm):
            raise RuleError(f"items[{i}]", "must be a 64-bit perceptual hash: 16 hex digits")
        out[norm] = None
    return tuple(out)


def _list_items(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise RuleError(path, "must be a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise RuleError(path, f"at most {MAX_LIST_ITEMS} items")
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        s = _str(item, f"{path}[{i}]").strip()
        if len(s) > MAX_ITEM_LENGTH:
            raise RuleError(f"{path}[{i}]", f"at most {MAX_ITEM_LENGTH} characters")
        if s not in seen:
            seen.add(s)
            out.append(s)
    return tuple(out)


def list_to_json(wl: WordList) -> dict[str, object]:
    """The word-list JSON object for ``wl``."""
    return {
        "id": wl.id,
        "name": wl.name,
        "kind": wl.kind,
        "items": list(wl.items),
        "allow": list(wl.allow),
    }
