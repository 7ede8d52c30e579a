"""The wire format, sans-I/O: text frame -> typed command, event -> text.

Limits and close codes live here. Nothing in this module touches a socket or the database.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from server import jsoncodec
from server.errors import BadRequest, ClientError, TooLarge, UnknownType

# Close codes of PROTOCOL.md.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003  # binary frame
CLOSE_INVALID_DATA = 1007  # invalid UTF-8
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013  # the client reads too slowly
CLOSE_AUTH = 4401
CLOSE_FORBIDDEN = 4403

#: A uid or guid: 1-100 of ``[A-Za-z0-9_-]``. ``\Z``, not ``$``: ``$`` also matches before a
#: trailing newline, which would let ``"alice\n"`` through ``ID_RE.match``.
ID_RE = re.compile(r"\A[A-Za-z0-9_-]{1,100}\Z")
MEDIA_TYPES = frozenset({"image", "video", "audio", "file"})
MESSAGE_TYPES = frozenset({"text"}) | MEDIA_TYPES
RECEIVER_TYPES = frozenset({"user", "group"})
RECEIPT_TYPES = frozenset({"delivered", "read"})
TYPING_STATES = frozenset({"start", "end"})
MAX_MUID = 200
MAX_TAGS = 50
MAX_EMOJI = 32


@dataclass(frozen=True)
class Limits:
    """Size limits applied while parsing."""

    max_text_chars: int = 16_000
    max_json_bytes: int = 32 * 1024


def is_ident(value: object) -> bool:
    """Whether ``value`` is a valid uid or guid (every id check uses this)."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def parse_json(data: str | bytes) -> Any:
    """Client JSON (a frame or a REST body) as Python values; raises ``BadRequest``.

    The one parser for client input (``parse_frame`` uses the same ``jsoncodec.loads``):
    malformed text, ``NaN``/``Infinity``, integers outside the signed 64-bit range, strings
    with lone surrogates and nesting past ``jsoncodec.MAX_DEPTH`` are refused, the refused
    field named in ``details.field``.
    """
    try:
        value = jsoncodec.loads(data)
    except jsoncodec.JSONError as exc:
        raise json_error(exc) from exc
    marked = b"u0000" in data if isinstance(data, bytes) else "u0000" in data
    field = _nul_field(value) if marked else None
    if field is not None:
        # PostgreSQL text cannot hold NUL (SQLite can): refused here, both backends alike.
        raise _nul_error(field)
    return value


def _nul_field(value: Any, at: str = "") -> str | None:
    """The path of the first string (or key) holding a NUL character, or None."""
    if isinstance(value, str):
        return at if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{at}.{k}" if at else str(k)
            if "\x00" in k:
                return here
            found = _nul_field(v, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _nul_field(v, f"{at}[{i}]")
            if found is not None:
                return found
    return None


def _nul_error(field: str) -> BadRequest:
    return BadRequest(
        f"field '{field}' holds a NUL character, which is not allowed",
        {"field": field.replace("\x00", "")},
    )


def json_error(exc: jsoncodec.JSONError) -> BadRequest:
    """The ``ERR_BAD_REQUEST`` for JSON that ``jsoncodec.loads`` refused."""
    if exc.field is None:
        return BadRequest("malformed JSON")
    if not exc.field:
        return BadRequest(f"the JSON value {exc.reason}")
    return BadRequest(f"field '{exc.field}' {exc.reason}", {"field": exc.field})


class ProtocolError(Exception):
    """A frame that cannot be acted on: the client error, and the frame ``id`` to echo."""

    def __init__(self, error: ClientError, frame_id: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.frame_id = frame_id


@dataclass(frozen=True)
class Auth:
    token: str


@dataclass(frozen=True)
class SendMessage:
    muid: str | None
    receiver: str
    receiver_type: str
    category: str
    message_type: str
    text: str | None
    data: Any
    metadata: dict[str, Any]
    tags: tuple[str, ...]
    parent_id: int | None
    media_id: str | None


@dataclass(frozen=True)
class EditMessage:
    message_id: int
    text: str


@dataclass(frozen=True)
class DeleteMessage:
    message_id: int


@dataclass(frozen=True)
class SendReceipt:
    message_id: int
    receipt_type: str


@dataclass(frozen=True)
class Typing:
    receiver: str
    receiver_type: str
    state: str


@dataclass(frozen=True)
class FlagMessage:
    message_id: int
    reason: str
    remarks: str
    category: str | None = None


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class React:
    """``reaction.add`` (``add``) or ``reaction.remove``."""

    message_id: int
    emoji: str
    add: bool


Command = (
    Auth
    | SendMessage
    | EditMessage
    | DeleteMessage
    | SendReceipt
    | Typing
    | FlagMessage
    | Ping
    | React
)


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool) -> Any:
    value = obj.get(name)
    if value is None:
        if required:
            raise BadRequest(f"missing field '{name}'", {"field": name})
        return None
    # bool is an int in Python; never accept it where a number is meant.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise BadRequest(f"field '{name}' has the wrong type", {"field": name})
    if not isinstance(value, kind):
        raise BadRequest(f"field '{name}' has the wrong type", {"field": name})
    return value


def _ident(obj: dict[str, Any], name: str) -> str:
    value: str = _field(obj, name, str, required=True)
    if not is_ident(value):
        raise BadRequest(f"field '{name}' must be 1-100 of [A-Za-z0-9_-]", {"field": name})
    return value


def _choice(
    obj: dict[str, Any], name: str, choices: frozenset[str], default: str | None = None
) -> str:
    value = _field(obj, name, str, required=default is None)
    if value is None:
        assert default is not None
        return default
    if value not in choices:
        raise BadRequest(
            f"field '{name}' must be one of {sorted(choices)}",
            {"field": name, "allowed": sorted(choices)},
        )
    return str(value)


def _message_id(obj: dict[str, Any], name: str = "messageId") -> int:
    value: int = _field(obj, name, int, required=True)
    if value <= 0:
        raise BadRequest(f"field '{name}' must be a positive integer", {"field": name})
    return value


#: Bidirectional overrides and isolates: they would reorder text around a reaction.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unfit(c: str) -> bool:
    """A character a reaction may not hold. Format characters such as the zero-width joiner
    and tag characters stay allowed: emoji sequences (families, flags) are built with them."""
    return (
        c == "/"
        or c.isspace()
        or c in _BIDI
        or unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")
    )


def check_emoji(value: object, name: str = "emoji") -> str:
    """A reaction: 1 to ``MAX_EMOJI`` characters, no whitespace, control characters or
    ``/`` (it is a path segment in REST). Any such string is accepted, not only emoji, so
    apps may use their own ``:shortcodes:``."""
    if not isinstance(value, str):
        raise BadRequest(f"field '{name}' must be a string", {"field": name})
    if not 1 <= len(value) <= MAX_EMOJI or any(_unfit(c) for c in value):
        raise BadRequest(
            f"field '{name}' must be 1-{MAX_EMOJI} printable characters without spaces or '/'",
            {"field": name},
        )
    return value


def json_size(value: Any) -> int:
    """Bytes of a value as compact JSON."""
    return len(jsoncodec.dumps_bytes(value))


def check_text(text: str, limits: Limits, name: str = "text") -> str:
    """Refuse over-long text with ERR_TOO_LARGE."""
    if len(text) > limits.max_text_chars:
        raise TooLarge(
            f"field '{name}' is longer than {limits.max_text_chars} characters",
            {"field": name, "limit": limits.max_text_chars},
        )
    return text


def parse_send(obj: dict[str, Any], limits: Limits) -> SendMessage:
    """Validate a ``message.send`` body (the WebSocket frame or the REST body)."""
    muid = _field(obj, "muid", str, required=False)
    if muid is not None and not 1 <= len(muid) <= MAX_MUID:
        raise BadRequest(f"field 'muid' must be 1-{MAX_MUID} characters", {"field": "muid"})
    receiver_type = _choice(obj, "receiverType", RECEIVER_TYPES)
    receiver = _ident(obj, "receiver")
    category = _choice(obj, "category", frozenset({"message", "custom"}), "message")
    message_type: str = _field(obj, "messageType", str, required=True)
    text: str | None = None
    data: Any = None
    media_id: str | None = None
    if category == "message":
        if message_type not in MESSAGE_TYPES:
            raise BadRequest(
                "field 'messageType' must be one of " + ", ".join(sorted(MESSAGE_TYPES)),
                {"field": "messageType", "allowed": sorted(MESSAGE_TYPES)},
            )
        if message_type == "text":
            text = check_text(_field(obj, "text", str, required=True), limits)
            if not text.strip():
                raise BadRequest("field 'text' is empty", {"field": "text"})
        else:
            media_id = _field(obj, "mediaId", str, required=True)
            caption = _field(obj, "text", str, required=False)
            text = check_text(caption, limits) if caption is not None else None
    else:
        if not 1 <= len(message_type) <= 100:
            raise BadRequest(
                "field 'messageType' must be 1-100 characters", {"field": "messageType"}
            )
        data = obj.get("data")
        caption = _field(obj, "text", str, required=False)
        text = check_text(caption, limits) if caption is not None else None
    metadata = _field(obj, "metadata", dict, required=False) or {}
    tags_raw = _field(obj, "tags", list, required=False) or []
    if len(tags_raw) > MAX_TAGS or not all(
        isinstance(t, str) and 0 < len(t) <= 100 for t in tags_raw
    ):
        raise BadRequest(
            f"field 'tags' must be up to {MAX_TAGS} non-empty strings", {"field": "tags"}
        )
    parent_id = _field(obj, "parentId", int, required=False)
    for name, value in (("data", data), ("metadata", metadata)):
        if value is not None and json_size(value) > limits.max_json_bytes:
            raise TooLarge(
                f"field '{name}' is larger than {limits.max_json_bytes} bytes",
                {"field": name, "limit": limits.max_json_bytes},
            )
    return SendMessage(
        muid=muid,
        receiver=receiver,
        receiver_type=receiver_type,
        category=category,
        message_type=message_type,
        text=text,
        data=data,
        metadata=metadata,
        tags=tuple(tags_raw),
        parent_id=parent_id,
        media_id=media_id,
    )


def _parse_command(kind: str, obj: dict[str, Any], limits: Limits) -> Command:
    if kind == "message.send":
        return parse_send(obj, limits)
    if kind == "auth":
        return Auth(_field(obj, "token", str, required=True))
    if kind == "message.edit":
        return EditMessage(
            _message_id(obj), check_text(_field(obj, "text", str, required=True), limits)
        )
    if kind == "message.delete":
        return DeleteMessage(_message_id(obj))
    if kind == "receipt":
        return SendReceipt(_message_id(obj), _choice(obj, "receiptType", RECEIPT_TYPES))
    if kind == "typing":
        return Typing(
            receiver=_ident(obj, "receiver"),
            receiver_type=_choice(obj, "receiverType", RECEIVER_TYPES),
            state=_choice(obj, "state", TYPING_STATES),
        )
    if kind == "message.flag":
        reason = _field(obj, "reason", str, required=True)
        remarks = _field(obj, "remarks", str, required=False) or ""
        return FlagMessage(
            _message_id(obj),
            check_text(reason, limits, "reason"),
            check_text(remarks, limits, "remarks"),
            _field(obj, "category", str, required=False),
        )
    if kind == "ping":
        return Ping()
    if kind in ("reaction.add", "reaction.remove"):
        emoji = check_emoji(_field(obj, "emoji", str, required=True))
        return React(_message_id(obj), emoji, add=kind == "reaction.add")
    raise UnknownType(f"unknown frame type {kind!r}", {"type": kind})


def parse_frame(text: str, limits: Limits) -> tuple[str | None, Command]:
    """Parse one text frame into ``(frame id, command)``; raises ProtocolError.

    A frame refused for one of its values still echoes its ``id`` when that is a valid
    string, so the client can tell which request failed.
    """
    try:
        obj = jsoncodec.loads(text)
    except jsoncodec.JSONError as exc:
        doc = exc.document
        raw = doc.get("id") if isinstance(doc, dict) else None
        echo = raw if isinstance(raw, str) and jsoncodec.is_unicode(raw) else None
        raise ProtocolError(json_error(exc), echo) from exc
    if not isinstance(obj, dict):
        raise ProtocolError(BadRequest("a frame must be a JSON object"), None)
    raw_id = obj.get("id")
    frame_id = raw_id if isinstance(raw_id, str) else None
    nul = _nul_field(obj) if "u0000" in text else None
    if nul is not None:
        raise ProtocolError(
            _nul_error(nul), frame_id if frame_id is not None and "\x00" not in frame_id else None
        )
    try:
        if raw_id is not None and not isinstance(raw_id, str):
            raise BadRequest("field 'id' must be a string", {"field": "id"})
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise BadRequest("missing field 'type'", {"field": "type"})
        return frame_id, _parse_command(kind, obj, limits)
    except ClientError as exc:
        raise ProtocolError(exc, frame_id) from exc


def encode(
    event_type: str, body: dict[str, Any] | None = None, *, frame_id: str | None = None
) -> str:
    """One server frame as text."""
    frame: dict[str, Any] = {"type": event_type}
    if frame_id is not None:
        frame["id"] = frame_id
    if body:
        frame.update(body)
    return encode_json(frame)


def encode_json(value: Any) -> str:
    """Compact JSON, as every frame is written."""
    return jsoncodec.dumps(value)


def message_frame(
    event_type: str, message_json: str, *, frame_id: str | None = None, extra: str = ""
) -> str:
    """A ``{"type", "id"?, "message"}`` frame around an already encoded Message object, so
    one message serialised once serves every frame that carries it (``message.sent`` to the
    sender, ``message`` to each receiver). ``extra`` is encoded ``,"key":value`` pairs."""
    head = '{"type":' + encode_json(event_type)
    if frame_id is not None:
        head += ',"id":' + encode_json(frame_id)
    return head + ',"message":' + message_json + extra + "}"


def error_frame(error: ClientError, frame_id: str | None = None) -> str:
    """An ``error`` frame for a client error."""
    return encode("error", error.to_json(), frame_id=frame_id)
