"""protocol.parse_frame: raw input -> command or error code, grouped by topic."""

from __future__ import annotations

import json

import pytest

from server import protocol
from server.protocol import Limits, ProtocolError, parse_frame

LIMITS = Limits(max_text_chars=50, max_json_bytes=100)


def send(**over: object) -> str:
    frame: dict[str, object] = {
        "type": "message.send",
        "id": "c1",
        "muid": "m1",
        "receiverType": "user",
        "receiver": "bob",
        "messageType": "text",
        "text": "hello",
    }
    frame.update(over)
    return json.dumps({k: v for k, v in frame.items() if v is not ...})


@pytest.mark.parametrize(
    ("raw", "code", "frame_id"),
    [
        ("{", "ERR_BAD_REQUEST", None),
        ("[1,2]", "ERR_BAD_REQUEST", None),
        ('"text"', "ERR_BAD_REQUEST", None),
        ("{}", "ERR_BAD_REQUEST", None),
        ('{"type": 5}', "ERR_BAD_REQUEST", None),
        ('{"type": "nope", "id": "x"}', "ERR_UNKNOWN_TYPE", "x"),
        ('{"type": "ping", "id": 7}', "ERR_BAD_REQUEST", None),
        ("[" * 100_000, "ERR_BAD_REQUEST", None),
        (send(receiver=...), "ERR_BAD_REQUEST", "c1"),
        (send(receiver=12), "ERR_BAD_REQUEST", "c1"),
        (send(receiver="bad uid!"), "ERR_BAD_REQUEST", "c1"),
        (send(receiver="x" * 101), "ERR_BAD_REQUEST", "c1"),
        (send(receiverType="channel"), "ERR_BAD_REQUEST", "c1"),
        (send(messageType="sticker"), "ERR_BAD_REQUEST", "c1"),
        (send(text=...), "ERR_BAD_REQUEST", "c1"),
        (send(text=["hi"]), "ERR_BAD_REQUEST", "c1"),
        (send(text="   "), "ERR_BAD_REQUEST", "c1"),
        (send(text="x" * 51), "ERR_TOO_LARGE", "c1"),
        (send(metadata=[1]), "ERR_BAD_REQUEST", "c1"),
        (send(metadata={"k": "v" * 200}), "ERR_TOO_LARGE", "c1"),
        (send(tags="a"), "ERR_BAD_REQUEST", "c1"),
        (send(tags=[1]), "ERR_BAD_REQUEST", "c1"),
        (send(parentId="1"), "ERR_BAD_REQUEST", "c1"),
        (send(parentId=True), "ERR_BAD_REQUEST", "c1"),
        (send(muid=""), "ERR_BAD_REQUEST", "c1"),
        (send(messageType="image", text=...), "ERR_BAD_REQUEST", "c1"),
        (send(category="custom", messageType="", text=...), "ERR_BAD_REQUEST", "c1"),
        (
            send(category="custom", messageType="poll", text=..., data={"x": "y" * 200}),
            "ERR_TOO_LARGE",
            "c1",
        ),
        ('{"type": "message.edit", "messageId": "1", "text": "x"}', "ERR_BAD_REQUEST", None),
        ('{"type": "message.edit", "messageId": 0, "text": "x"}', "ERR_BAD_REQUEST", None),
        ('{"type": "message.delete"}', "ERR_BAD_REQUEST", None),
        ('{"type": "receipt", "messageId": 1, "receiptType": "seen"}', "ERR_BAD_REQUEST", None),
        (
            '{"type": "typing", "receiver": "b", "receiverType": "user", "state": "maybe"}',
            "ERR_BAD_REQUEST",
            None,
        ),
        ('{"type": "message.flag", "messageId": 1}', "ERR_BAD_REQUEST", None),
        ('{"type": "auth"}', "ERR_BAD_REQUEST", None),
    ],
)
def test_bad_frames(raw: str, code: str, frame_id: str | None) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(raw, LIMITS)
    assert info.value.error.code == code
    assert info.value.frame_id == frame_id


def test_send_parses_with_defaults() -> None:
    frame_id, cmd = parse_frame(send(), LIMITS)
    assert frame_id == "c1"
    assert cmd == protocol.SendMessage(
        muid="m1",
        receiver="bob",
        receiver_type="user",
        category="message",
        message_type="text",
        text="hello",
        data=None,
        metadata={},
        tags=(),
        parent_id=None,
        media_id=None,
    )


def test_custom_message_keeps_data() -> None:
    _, cmd = parse_frame(
        send(category="custom", messageType="poll", text=..., data={"q": 1}), LIMITS
    )
    assert isinstance(cmd, protocol.SendMessage)
    assert (cmd.category, cmd.message_type, cmd.data, cmd.text) == (
        "custom",
        "poll",
        {"q": 1},
        None,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "ping"}', protocol.Ping()),
        ('{"type": "auth", "token": "t"}', protocol.Auth("t")),
        ('{"type": "message.edit", "messageId": 3, "text": "x"}', protocol.EditMessage(3, "x")),
        ('{"type": "message.delete", "messageId": 3}', protocol.DeleteMessage(3)),
        (
            '{"type": "receipt", "messageId": 3, "receiptType": "read"}',
            protocol.SendReceipt(3, "read"),
        ),
        (
            '{"type": "typing", "receiver": "g1", "receiverType": "group", "state": "start"}',
            protocol.Typing("g1", "group", "start"),
        ),
        (
            '{"type": "message.flag", "messageId": 3, "reason": "spam"}',
            protocol.FlagMessage(3, "spam", ""),
        ),
    ],
)
def test_good_frames(raw: str, expected: object) -> None:
    assert parse_frame(raw, LIMITS)[1] == expected


def test_encode_echoes_id() -> None:
    assert json.loads(protocol.encode("pong", frame_id="p1")) == {"type": "pong", "id": "p1"}


# ------------------------------------------------------------------ values the server refuses


@pytest.mark.parametrize(
    ("raw", "field", "frame_id"),
    [
        # Python's json writes NaN and big ints; neither can be stored and given back.
        (send(metadata={"x": float("nan"), "y": 2**64}), "metadata.x", "c1"),
        (send(metadata={"y": 2**64}), "metadata.y", "c1"),
        (send(metadata={"y": -(2**63) - 1}), "metadata.y", "c1"),
        (send(metadata={"inf": float("inf")}), "metadata.inf", "c1"),
        (
            send(category="custom", messageType="poll", text=..., data={"v": [1, float("nan")]}),
            "data.v[1]",
            "c1",
        ),
        (send(parentId=10**30), "parentId", "c1"),
        (send(parentId=2**63), "parentId", "c1"),
        (send(metadata={"f": "@"}).replace('"@"', "1e400"), "metadata.f", "c1"),
        (
            '{"type": "message.delete", "id": "d1", "messageId": 9223372036854775808}',
            "messageId",
            "d1",
        ),
        (
            '{"type": "receipt", "messageId": 1000000000000000000000000000000, '
            '"receiptType": "read"}',
            "messageId",
            None,
        ),
        # A lone surrogate is not text: refused, and an invalid id is never echoed.
        (send(id="\ud800"), "id", None),
        (send(text="hi \udfff"), "text", "c1"),
        (send(muid="\ud800"), "muid", "c1"),
        (send(metadata={"k\ud800": 1}), "metadata.k\\ud800", "c1"),
        ('{"type": "ping", "id": "\ud800"}', "id", None),  # raw, not escaped
    ],
)
def test_refused_values(raw: str, field: str, frame_id: str | None) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(raw, LIMITS)
    assert info.value.error.code == "ERR_BAD_REQUEST"
    assert info.value.error.details == {"field": field}
    assert info.value.frame_id == frame_id
    # The error frame itself is valid JSON in valid UTF-8.
    frame = protocol.error_frame(info.value.error, info.value.frame_id)
    assert json.loads(frame.encode("utf-8"))["details"] == {"field": field}


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63)])
def test_64_bit_integers_are_kept_and_one_more_is_refused(value: int) -> None:
    _, cmd = parse_frame(send(metadata={"n": value}, parentId=2**63 - 1), LIMITS)
    assert isinstance(cmd, protocol.SendMessage)
    assert (cmd.metadata, cmd.parent_id) == ({"n": value}, 2**63 - 1)
    beyond = value + 1 if value > 0 else value - 1
    with pytest.raises(ProtocolError):
        parse_frame(send(metadata={"n": beyond}), LIMITS)


def test_surrogate_pairs_are_text_and_halves_are_not() -> None:
    _, cmd = parse_frame(send(text="\U0001f600", id="\U0001f600"), LIMITS)
    assert isinstance(cmd, protocol.SendMessage) and cmd.text == "\U0001f600"
    with pytest.raises(ProtocolError):
        parse_frame(send(text="\ud83d"), LIMITS)


# ------------------------------------------------------------------ ids


def test_ids_are_matched_whole() -> None:
    valid = ["bob", "A-z_09", "x" * 100]
    invalid = ["", "x" * 101, "bob\n", "\nbob", "bob\r", "bo b", "b\u00f6b"]
    for value in valid + invalid:
        ok = value in valid
        assert protocol.is_ident(value) is ok, repr(value)
        # ID_RE.match, as a caller may use it, agrees: `$` would let "bob\n" through.
        assert (protocol.ID_RE.match(value) is not None) is ok, repr(value)
    assert not protocol.is_ident(7) and not protocol.is_ident(None)


@pytest.mark.parametrize(
    "raw",
    [
        send(receiver="bob\n"),
        '{"type": "typing", "receiver": "g1\\n", "receiverType": "group", "state": "start"}',
    ],
)
def test_ids_with_a_trailing_newline_are_refused(raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(raw, LIMITS)
    assert info.value.error.code == "ERR_BAD_REQUEST"
    assert info.value.error.details == {"field": "receiver"}


# ------------------------------------------------------------------ reactions


def react(emoji: object, kind: str = "reaction.add", message_id: object = 7) -> str:
    return json.dumps({"type": kind, "id": "r1", "messageId": message_id, "emoji": emoji})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (react("👍"), protocol.React(7, "👍", add=True)),
        (react("👍", "reaction.remove"), protocol.React(7, "👍", add=False)),
        # emoji sequences: zero-width joiners, skin tones, variation selectors, tag characters
        (react("👨\u200d👩\u200d👧"), protocol.React(7, "👨\u200d👩\u200d👧", add=True)),
        (react("👍🏽"), protocol.React(7, "👍🏽", add=True)),
        (react("❤\ufe0f"), protocol.React(7, "❤\ufe0f", add=True)),
        (
            react("🏴\U000e0067\U000e0062\U000e007f"),
            protocol.React(7, "🏴\U000e0067\U000e0062\U000e007f", add=True),
        ),
        (react(":party-parrot:"), protocol.React(7, ":party-parrot:", add=True)),
        (react("x" * 32), protocol.React(7, "x" * 32, add=True)),
    ],
)
def test_reaction_frames(raw: str, expected: protocol.React) -> None:
    assert parse_frame(raw, LIMITS) == ("r1", expected)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (react(""), "emoji"),
        (react("x" * 33), "emoji"),
        (react("a b"), "emoji"),
        (react("a\u00a0b"), "emoji"),
        (react("x/y"), "emoji"),
        (react("\n"), "emoji"),
        (react("\u202eevil"), "emoji"),  # a bidirectional override
        (react("\x00"), "emoji"),
        (react(5), "emoji"),
        (json.dumps({"type": "reaction.add", "id": "r1", "messageId": 7}), "emoji"),
        (react("👍", message_id=0), "messageId"),
        (react("👍", message_id="7"), "messageId"),
    ],
)
def test_refused_reactions(raw: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(raw, LIMITS)
    assert info.value.error.code == "ERR_BAD_REQUEST"
    assert info.value.error.details == {"field": field}
    assert info.value.frame_id == "r1"
