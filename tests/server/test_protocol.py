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
