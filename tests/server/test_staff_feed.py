"""The dashboards' live feed and claims (``server/services/staff_feed.py``) on a fake clock, and
the live counters' arithmetic (``server/services/live_counters.py``)."""

from __future__ import annotations

import math

import pytest

from server.errors import Conflict
from server.metrics import Metrics
from server.services.live_counters import Snapshot, frame, quantile, take_snapshot
from server.services.staff_feed import StaffFeed
from tests.server.test_services import FakeClock


def drain(feed: StaffFeed, sub: object) -> list[dict[str, object]]:
    out = []
    queue = sub.queue  # type: ignore[attr-defined]
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_held_events_become_held_frames_and_others_are_ignored() -> None:
    feed = StaffFeed(clock=FakeClock())
    sub = feed.subscribe("operator:a")
    feed.emit("message.review_required", {"message": {"id": 7}, "ruleId": "r", "reason": "bad"})
    feed.emit("message.flagged", {"message": {"id": 8}})
    feed.emit("message.reported", {"report": {"messageId": 9}})
    feed.emit("user.banned", {"uid": "x"})
    frames = drain(feed, sub)
    assert [f["type"] for f in frames] == ["held", "held", "changed"]
    assert frames[0]["item"]["state"] == "review"  # type: ignore[index]
    assert frames[0]["item"]["moderation"]["reason"] == "bad"  # type: ignore[index]
    assert frames[1]["item"]["state"] == "flagged"  # type: ignore[index]
    assert frames[2] == {"type": "changed", "state": "reported"}


def test_a_claim_stops_other_claimants_and_deciders_until_it_ends() -> None:
    clock = FakeClock()
    feed = StaffFeed(clock=clock, claim_ttl=60)
    assert feed.claim(1, "operator:a") is None
    assert feed.claim(1, "operator:a") is None  # renewing one's own
    assert feed.claim(1, "operator:b") == "operator:a"
    feed.check(1, "operator:a")
    with pytest.raises(Conflict) as err:
        feed.check(1, "operator:b")
    assert err.value.details == {"messageId": 1, "claimedBy": "operator:a"}
    feed.release(1, "operator:b")  # not theirs: nothing happens
    assert feed.holder(1) == "operator:a"
    clock.advance(60)
    assert feed.holder(1) is None  # expired
    assert feed.claim(1, "operator:b") is None
    feed.decided(1, "approved", "operator:b")
    assert feed.claims() == []


def test_closing_the_last_dashboard_releases_its_claims() -> None:
    feed = StaffFeed(clock=FakeClock())
    first, second = feed.subscribe("operator:a"), feed.subscribe("operator:a")
    watcher = feed.subscribe("operator:w")
    feed.claim(5, "operator:a")
    feed.unsubscribe(first)
    assert feed.holder(5) == "operator:a"  # another tab of theirs is still open
    feed.unsubscribe(second)
    assert feed.holder(5) is None
    assert [f["type"] for f in drain(feed, watcher)] == ["claimed", "released"]


def test_a_dashboard_that_falls_behind_is_marked_and_others_keep_receiving() -> None:
    feed = StaffFeed(clock=FakeClock())
    slow, fast = feed.subscribe("operator:s"), feed.subscribe("operator:f")
    for i in range(600):
        feed.publish({"type": "x", "n": i})
        if not fast.queue.empty():
            fast.queue.get_nowait()
    assert slow.overflowed and not fast.overflowed


BOUNDS = (0.005, 0.01, 0.05, math.inf)


def hist(*counts: float) -> tuple[tuple[float, float], ...]:
    return tuple(zip(BOUNDS, counts, strict=True))


@pytest.mark.parametrize(
    ("before", "after", "q", "expected"),
    [
        (hist(0, 0, 0, 0), hist(0, 0, 0, 0), 0.5, None),  # nothing observed
        (hist(0, 0, 0, 0), hist(10, 10, 10, 10), 0.99, 0.005),
        (hist(0, 0, 0, 0), hist(5, 9, 10, 10), 0.5, 0.005),
        (hist(0, 0, 0, 0), hist(5, 9, 10, 10), 0.99, 0.05),
        (hist(100, 100, 100, 100), hist(100, 105, 110, 110), 0.5, 0.01),  # only the interval
        (hist(0, 0, 0, 0), hist(0, 0, 0, 4), 0.5, math.inf),
    ],
)
def test_latency_quantile_over_an_interval(
    before: tuple[tuple[float, float], ...],
    after: tuple[tuple[float, float], ...],
    q: float,
    expected: float | None,
) -> None:
    assert quantile(before, after, q) == expected


def test_counters_frame_rates_and_milliseconds() -> None:
    before = Snapshot(10.0, 100, 4, (("profanity", 3.0),), hist(0, 0, 0, 0))
    after = Snapshot(12.0, 130, 10, (("profanity", 5.0), ("scam", 4.0)), hist(5, 9, 10, 10))
    got = frame(before, after, {"review": 2, "flagged": 0, "reported": 1})
    assert got == {
        "type": "counters",
        "messagesPerSecond": 15.0,
        "blockedPerSecond": 3.0,
        "blockedByRule": [{"ruleId": "scam", "count": 4}, {"ruleId": "profanity", "count": 2}],
        "verdictP50Ms": 5.0,
        "verdictP99Ms": 50.0,
        "open": {"review": 2, "flagged": 0, "reported": 1},
    }


def test_snapshot_reads_the_process_metrics() -> None:
    metrics = Metrics()
    metrics.messages.labels("approved").inc(3)
    metrics.messages.labels("pending").inc(2)
    metrics.verdicts.labels("disapproved").inc()
    metrics.verdicts.labels("approved").inc(4)
    metrics.moderation_latency.observe(0.003)
    metrics.blocked_by_rule.labels("profanity").inc(2)
    snap = take_snapshot(metrics, 1.0)
    assert (snap.messages, snap.blocked) == (5, 1)
    assert snap.by_rule == (("profanity", 2.0),)
    assert quantile((), snap.latency, 0.5) == 0.005


def test_a_group_moderator_hears_of_their_groups_items_only() -> None:
    feed = StaffFeed(clock=FakeClock())
    limited = feed.subscribe("operator:g", frozenset({"lobby"}))
    everyone = feed.subscribe("operator:e")
    for receiver, kind in (("lobby", "group"), ("other", "group"), ("bob", "user")):
        feed.emit(
            "message.review_required",
            {"message": {"id": 1, "receiver": receiver, "receiverType": kind}},
        )
    feed.emit("message.reported", {"report": {}})
    feed.decided(1, "approved", "operator:e")
    got = drain(feed, limited)
    assert [f["type"] for f in got] == ["held", "decided"]
    assert got[0]["item"]["message"]["receiver"] == "lobby"  # type: ignore[index]
    assert len(drain(feed, everyone)) == 5
