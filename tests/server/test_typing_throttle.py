"""The typing throttle with a clock the test moves (no sleeping)."""

from __future__ import annotations

from server.ratelimit import TypingThrottle


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_repeated_state_is_coalesced_until_the_refresh() -> None:
    clock = Clock()
    throttle = TypingThrottle(refresh=3.0, per_second=5.0, clock=clock)
    assert throttle.admit("a", "user:b", "start")
    assert not throttle.admit("a", "user:b", "start")
    clock.t += 2.9
    assert not throttle.admit("a", "user:b", "start")
    clock.t += 0.2
    assert throttle.admit("a", "user:b", "start")  # a refresh after 3 s
    assert throttle.admit("a", "user:b", "end")  # a change of state passes at once
    assert not throttle.admit("a", "user:b", "end")  # and "end" is never repeated
    clock.t += 60
    assert not throttle.admit("a", "user:b", "end")


def test_targets_are_apart_but_the_sender_is_capped() -> None:
    clock = Clock()
    throttle = TypingThrottle(refresh=3.0, per_second=5.0, clock=clock)
    passed = sum(throttle.admit("a", f"user:{i}", "start") for i in range(100))
    assert passed == 10  # the burst: twice the rate
    assert throttle.admit("b", "user:0", "start")  # another sender has its own budget
    clock.t += 1.0
    assert sum(throttle.admit("a", f"user:x{i}", "start") for i in range(100)) == 5


def test_memory_stays_bounded() -> None:
    clock = Clock()
    throttle = TypingThrottle(per_second=1e9, clock=clock, max_entries=1000)
    for i in range(5000):
        throttle.admit(f"s{i}", "g", "start")
        clock.t += 0.001
    assert len(throttle._last) <= 1000
