"""The load test's plan and its checks, fed frames by hand: a duplicate, a leak, a missing
delivery and a history that disagrees must each turn its verification red."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest

from client.loadtest.plan import Options, PlanError, build_plan, parse_mix, png
from client.loadtest.tracker import Tracker, percentiles


def small_plan(**kw: Any) -> Any:
    return build_plan(Options(users=4, groups=1, group_size=3, messages=40, prefix="t", **kw))


def test_plan_is_seeded_and_deals_every_kind() -> None:
    a, b = small_plan(), small_plan()
    assert a == b
    kinds = {m.kind for m in a.messages}
    assert kinds == {"direct", "group", "media"}
    assert len({m.muid for m in a.messages}) == 40
    for m in a.messages:
        assert m.sender not in m.receivers
        if m.kind == "group":
            assert set(m.receivers) == set(a.groups[m.receiver]) - {m.sender}
        else:
            assert m.receivers == (m.receiver,)
        assert m.blocked == m.text.endswith(" shit")
        assert not (m.kind == "media" and m.blocked)


def test_plan_blocked_share_and_expected_counts() -> None:
    plan = small_plan(blocked_share=1.0, mix=(("direct", 1.0),))
    assert all(m.blocked for m in plan.messages)
    assert plan.expected()["blocked"] == 40
    assert plan.expected()["deliveries"] == 0
    clean = small_plan(blocked_share=0.0, mix=(("group", 1.0),))
    # u0..u2 form the group of 3 (two receivers each); u3 is in no group and sends 1:1
    assert clean.expected()["deliveries"] == 30 * 2 + 10
    assert clean.expected()["kind_direct"] == 10


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (Options(users=1), "at least 2 users"),
        (Options(users=3, groups=1, group_size=4), "group size"),
        (Options(blocked_share=1.5), "fraction"),
        (Options(blocked_share=0.5, block_word=" "), "block word"),
    ],
)
def test_plan_refuses_nonsense(opts: Options, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        build_plan(opts)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("direct=60,group=30,media=10", True),
        ("direct=1", True),
        ("direct=0,group=0", False),
        ("voice=10", False),
        ("direct", False),
        ("direct=x", False),
        ("direct=-1", False),
        ("direct=nan", False),
    ],
)
def test_parse_mix(text: str, ok: bool) -> None:
    if ok:
        assert parse_mix(text)
    else:
        with pytest.raises(PlanError):
            parse_mix(text)


def test_png_is_a_valid_image() -> None:
    data = png(5, size=4)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert struct.unpack(">II", data[16:24]) == (4, 4)
    body = data[12 : 12 + 4 + length]
    assert struct.unpack(">I", data[16 + length : 20 + length])[0] == zlib.crc32(body)
    assert png(5) != png(6)


def test_percentiles_nearest_rank() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentiles(values) == {"n": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([])["p50"] is None


# ---------------------------------------------------------------- the tracker's verdicts


def msg(m: Any, status: str, mid: int) -> dict[str, Any]:
    return {"id": mid, "muid": m.muid, "sender": m.sender, "moderationStatus": status}


def run_clean(plan: Any) -> Tracker:
    """Feed the frames a faithful server sends: ack, verdict, one delivery per receiver."""
    t = Tracker(plan.messages)
    for i, m in enumerate(plan.messages):
        t.sending(m.muid, 1.0)
        t.on_frame(
            m.sender,
            {"type": "message.sent", "id": m.muid, "message": msg(m, "pending", i + 1)},
            1.01,
        )
        status = "disapproved" if m.blocked else "approved"
        t.on_frame(m.sender, {"type": "message.moderated", "message": msg(m, status, i + 1)}, 1.02)
        if not m.blocked:
            for uid in m.receivers:
                t.on_frame(uid, {"type": "message", "message": msg(m, status, i + 1)}, 1.03)
    return t


def stored(plan: Any) -> list[dict[str, Any]]:
    return [
        msg(m, "disapproved" if m.blocked else "approved", i + 1)
        for i, m in enumerate(plan.messages)
    ]


def test_a_faithful_run_verifies() -> None:
    plan = small_plan(blocked_share=0.3)
    t = run_clean(plan)
    t.check_stored(stored(plan))
    s = t.summary()
    v = s["verification"]
    assert v["exactly_once"] and v["no_blocked_delivered"] and v["history_matches"]
    assert s["sent"] == s["acked"] == s["completed"] == 40
    assert s["delivered"] == plan.expected()["deliveries"]
    assert s["blocked"] == s["blocked_as_planned"] == plan.expected()["blocked"] > 0
    assert s["send_to_ack_ms"]["p50"] == pytest.approx(10.0)
    assert s["send_to_delivery_ms"]["n"] == s["delivered"]


def test_a_duplicate_delivery_is_caught() -> None:
    plan = small_plan(blocked_share=0.0)
    t = run_clean(plan)
    m = plan.messages[3]
    t.on_frame(m.receivers[0], {"type": "message", "message": msg(m, "approved", 4)}, 2.0)
    v = t.verification()
    assert not v["exactly_once"] and v["duplicate_deliveries"] == 1
    assert v["no_blocked_delivered"]


def test_a_blocked_message_reaching_anyone_is_caught() -> None:
    plan = small_plan(blocked_share=0.5)
    t = run_clean(plan)
    m = next(m for m in plan.messages if m.blocked)
    t.on_frame(m.receivers[0], {"type": "message", "message": msg(m, "approved", 99)}, 2.0)
    v = t.verification()
    assert not v["no_blocked_delivered"]
    assert v["leaked_deliveries"] == 1 and v["leaked_muids"] == [m.muid]


def test_a_missing_or_misdirected_delivery_is_caught() -> None:
    plan = small_plan(blocked_share=0.0, mix=(("direct", 1.0),))
    t = Tracker(plan.messages)
    m = plan.messages[0]
    t.sending(m.muid, 1.0)
    t.on_frame(
        m.sender, {"type": "message.sent", "id": m.muid, "message": msg(m, "unmoderated", 1)}, 1.1
    )
    stranger = next(u for u in plan.users if u not in (m.sender, m.receiver))
    t.on_frame(stranger, {"type": "message", "message": msg(m, "unmoderated", 1)}, 1.2)
    v = t.verification()
    assert v["missing_deliveries"] == 1 and v["unexpected_deliveries"] == 1
    assert not v["exactly_once"]
    assert t.summary()["incomplete"] == 1


def test_history_that_disagrees_is_caught() -> None:
    plan = small_plan(blocked_share=0.3)
    t = run_clean(plan)
    rows = stored(plan)
    rows.append(dict(rows[0], id=1000))  # the same muid stored twice
    del rows[1]  # an acked message the server does not have
    rows[2] = dict(rows[2], moderationStatus="pending")
    t.check_stored(rows)
    st = t.verification()["stored"]
    assert st["duplicates"] == 1 and st["missing"] == 1 and st["status_mismatch"] == 1
    assert t.verification()["history_matches"] is False


def test_refusals_and_foreign_frames() -> None:
    plan = small_plan()
    t = Tracker(plan.messages)
    m = plan.messages[0]
    t.sending(m.muid, 1.0)
    t.failed(m.muid, "ERR_BLOCKED", 1.1)
    t.on_frame(m.sender, {"type": "message", "message": {"muid": "other", "id": 5}}, 1.2)
    s = t.summary()
    assert s["errors"] == 1 and s["errors_by_code"] == {"ERR_BLOCKED": 1}
    assert s["counters"]["foreign_frames"] == 1
    t.check_stored([msg(m, "approved", 1)])
    assert t.verification()["stored"]["stored_despite_refusal"] == 1


def test_live_counters_follow_the_frames() -> None:
    plan = small_plan(blocked_share=0.3)
    t = run_clean(plan)
    want = plan.expected()
    assert t.live() == {"delivered": want["deliveries"], "blocked": want["blocked"], "errors": 0}
