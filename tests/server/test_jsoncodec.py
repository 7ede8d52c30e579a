"""jsoncodec: client JSON in (what is refused, with which field), valid JSON out."""

from __future__ import annotations

import json

import pytest

from server import jsoncodec
from server.jsoncodec import INT_MAX, INT_MIN, JSONError

NOT_FINITE = "is not a finite number"
OUT_OF_RANGE = "is an integer outside"
NOT_UNICODE = "lone surrogate"

# ------------------------------------------------------------------ loads: refused values


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ('{"x": NaN}', "x", NOT_FINITE),
        ('{"x": Infinity}', "x", NOT_FINITE),
        ('{"x": -Infinity}', "x", NOT_FINITE),
        ('{"x": 1e400}', "x", NOT_FINITE),
        ('{"x": -1E400}', "x", NOT_FINITE),
        (f'{{"x": {INT_MAX + 1}}}', "x", OUT_OF_RANGE),
        (f'{{"x": {INT_MIN - 1}}}', "x", OUT_OF_RANGE),
        # orjson reads these as an int (2**64 - 1) and as a float (2**64): both refused.
        ('{"x": 18446744073709551615}', "x", OUT_OF_RANGE),
        ('{"x": 18446744073709551616}', "x", OUT_OF_RANGE),
        ('{"x": 1000000000000000000000000000000}', "x", OUT_OF_RANGE),
        ('{"metadata": {"x": NaN, "y": 18446744073709551616}}', "metadata.x", NOT_FINITE),
        ('{"metadata": {"ok": 1, "y": 18446744073709551616}}', "metadata.y", OUT_OF_RANGE),
        ('{"data": {"items": [1, 2, NaN]}}', "data.items[2]", NOT_FINITE),
        ('{"id": "\\ud800"}', "id", NOT_UNICODE),
        ('{"text": "a\\udfffb"}', "text", NOT_UNICODE),
        ('{"text": "\\udc00\\ud800"}', "text", NOT_UNICODE),  # a pair the wrong way round
        ('{"text": "\\ud83d"}', "text", NOT_UNICODE),  # half an emoji
        ('{"tags": ["ok", "\\ud800"]}', "tags[1]", NOT_UNICODE),
        ('{"metadata": {"\\ud800": 1}}', "metadata.\\ud800", NOT_UNICODE),
        ("NaN", "", NOT_FINITE),
    ],
)
def test_refused_values_name_their_field(raw: str, field: str, reason: str) -> None:
    for data in (raw, raw.encode()):
        with pytest.raises(JSONError) as info:
            jsoncodec.loads(data)
        assert info.value.field == field
        assert reason in info.value.reason


def test_raw_lone_surrogate_in_a_str_is_refused() -> None:
    with pytest.raises(JSONError) as info:
        jsoncodec.loads('{"id": "\ud800"}')
    assert (info.value.field, NOT_UNICODE in info.value.reason) == ("id", True)


def test_the_field_path_is_printable_utf8() -> None:
    with pytest.raises(JSONError) as info:
        jsoncodec.loads('{"metadata": {"\\ud800": 1}}')
    assert info.value.field is not None
    info.value.field.encode("utf-8")  # safe to echo in an error


def test_refused_document_keeps_the_rest_of_the_top_level() -> None:
    with pytest.raises(JSONError) as info:
        jsoncodec.loads('{"id": "c1", "n": NaN}')
    assert info.value.document == {"id": "c1", "n": None}


def test_text_that_is_not_utf8_is_malformed() -> None:
    # A surrogate encoded as UTF-8 bytes (CESU-8): json.loads(bytes) would read it.
    with pytest.raises(JSONError) as info:
        jsoncodec.loads(b'{"id": "\xed\xa0\x80"}')
    assert info.value.field is None and info.value.reason == "malformed JSON"


def test_deeply_nested_refused_value_is_found() -> None:
    raw = "[" * 100 + "NaN" + "]" * 100
    with pytest.raises(JSONError) as info:
        jsoncodec.loads(raw)
    assert info.value.field == "[0]" * 100


@pytest.mark.parametrize("raw", ["[" * 129 + "]" * 129, '{"m": ' + "[" * 128 + "]" * 128 + "}"])
def test_nesting_deeper_than_max_depth_is_refused(raw: str) -> None:
    # Deep enough and the server could not encode it back (orjson stops at 254 levels,
    # json at the interpreter's recursion limit): a stored message nobody could read.
    with pytest.raises(JSONError) as info:
        jsoncodec.loads(raw)
    assert jsoncodec.MAX_DEPTH == 128 and "nested deeper" in info.value.reason
    assert info.value.field in ("[0]" * 128, "m" + "[0]" * 127)


# ------------------------------------------------------------------ loads: the boundary


@pytest.mark.parametrize(
    ("accepted", "refused"),
    [
        (f'{{"n": {INT_MAX}}}', f'{{"n": {INT_MAX + 1}}}'),
        (f'{{"n": {INT_MIN}}}', f'{{"n": {INT_MIN - 1}}}'),
        ('{"n": 1000000000000000000}', '{"n": 10000000000000000000}'),  # 19 vs 20 digits
        ('{"s": "123456789012345678901234567890"}', '{"n": 123456789012345678901234567890}'),
        ('{"f": 0.1234567890123456789012345}', '{"f": 1234567890123456789012345e300}'),
        ('{"f": 1e308, "g": -1e-400, "z": -0}', '{"f": 1e309}'),
        ('{"s": "NaN", "t": "Infinity"}', '{"s": NaN}'),
        ('{"e": "\\ud83d\\ude00", "raw": "\U0001f600 \u00e9"}', '{"e": "\\ude00\\ud83d"}'),
        ('{"dup": 1, "dup": 2, "a": [], "b": {}, "c": null}', '{"dup": 1, "dup": NaN}'),
        ("[" * 128 + "]" * 128, "[" * 129 + "]" * 129),
        (
            '{"s": "' + "[" * 500 + '"}',
            '{"s": "' + "[" * 500 + '", "d": ' + "[" * 129 + "]" * 129 + "}",
        ),
    ],
)
def test_accepted_is_read_as_json_reads_it_and_refused_is_not(accepted: str, refused: str) -> None:
    expected = json.loads(accepted)
    for data in (accepted, accepted.encode()):
        value = jsoncodec.loads(data)
        assert value == expected
        assert jsoncodec.loads(jsoncodec.dumps_bytes(value)) == value  # given back exactly
    for data in (refused, refused.encode()):
        with pytest.raises(JSONError):
            jsoncodec.loads(data)


def test_utf8_bom_is_ignored_in_bytes() -> None:
    assert jsoncodec.loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    with pytest.raises(JSONError) as info:
        jsoncodec.loads(b'\xef\xbb\xbf{"a": NaN}')
    assert info.value.field == "a"


# ------------------------------------------------------------------ dumps


def test_fallback_keeps_big_ints_exact_and_refuses_nan() -> None:
    # orjson refuses ints beyond 64 bits, so the standard library encodes these.
    assert jsoncodec.dumps({"y": 2**64}) == '{"y":18446744073709551616}'
    assert jsoncodec.dumps_bytes({"y": 2**64}) == b'{"y":18446744073709551616}'
    # It used to write `NaN` here, which no JSON parser reads.
    value = {"x": float("nan"), "y": 2**64}
    with pytest.raises(ValueError):
        jsoncodec.dumps(value)
    with pytest.raises(ValueError):
        jsoncodec.dumps_bytes(value)


@pytest.mark.parametrize("value", ["\ud800", {"k\udfff": "v"}, ["é", "\ud83d", 2**64]])
def test_lone_surrogates_are_written_as_valid_utf8_escapes(value: object) -> None:
    text = jsoncodec.dumps(value)
    text.encode("utf-8")  # valid UTF-8: a socket can send it
    assert json.loads(text) == value
    raw = jsoncodec.dumps_bytes(value)
    assert json.loads(raw.decode("utf-8")) == value
