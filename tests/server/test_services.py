"""The chat services in process: real SQLite on a temporary path, an in-process hub with
recording connections, a fake clock and a fake moderation gate; no HTTP, no sleeping.

Covers what the end-to-end tests cannot pin down cheaply: verdicts are conditional on the
message's rev and status and idempotent, a disapproval withdraws a shown message, the rate
limit follows the injected clock, events go to the sink given at construction, and the
caches and locks stay bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from moderation.types import Action, Match, Verdict, VerdictStatus
from server.auth import API_KEY_PRINCIPAL, Secrets, TokenAuthority
from server.crypto import KeyRing
from server.errors import RateLimited
from server.hub import Connection, LocalHub
from server.models import Message, Moderation, Scope, Status, User
from server.protocol import SendMessage
from server.ratelimit import RateLimiter
from server.services.blocks import BlockService
from server.services.cache import LRU, KeyedLocks
from server.services.fanout import Fanout
from server.services.groups import GroupService
from server.services.messaging import MessagingService
from server.services.users import UserService
from server.services.verdicts import VerdictService
from server.storage.sqlite import SqliteStorage
from server.storage.types import Audit, NewMessage

T0 = 1_764_000_000


class FakeClock:
    """Wall and monotonic time that move only when told."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def now(self) -> int:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += int(seconds)


@dataclass
class RecordingEvents:
    events: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        self.events.append((event, data))


@dataclass
class HoldingGate:
    """Covers every message when ``moderate``; keeps what is submitted."""

    moderate: bool = True
    submitted: list[Message] = field(default_factory=list)

    def covers(self, category: str, message_type: str, *, caption: bool = False) -> bool:
        return self.moderate

    async def submit(self, message: Message, verdict: Verdict | None = None) -> None:
        self.submitted.append(message)

    async def judge_inline(self, new: NewMessage) -> Verdict | None:
        return None


@dataclass
class World:
    clock: FakeClock
    hub: LocalHub
    events: RecordingEvents
    gate: HoldingGate
    users: UserService
    blocks: BlockService
    groups: GroupService
    messaging: MessagingService
    verdicts: VerdictService
    conns: dict[str, Connection] = field(default_factory=dict)

    def connect(self, uid: str) -> Connection:
        conn = Connection(uid, queue_size=100, close=lambda code, reason: None)
        self.hub.register(conn)
        self.conns[uid] = conn
        return conn

    def frames(self, uid: str) -> list[dict[str, Any]]:
        """Every frame queued for ``uid`` since the last call."""
        queue = self.conns[uid].queue
        out = []
        while not queue.empty():
            out.append(json.loads(queue.get_nowait()))
        return out

    def types(self, uid: str) -> list[str]:
        return [f["type"] for f in self.frames(uid)]

    async def user(self, uid: str) -> User:
        return await self.users.create_user(
            API_KEY_PRINCIPAL, uid=uid, name=uid, role="user", tags=(), metadata={}
        )

    async def send(self, sender: User, receiver: str, text: str, kind: str = "user") -> Message:
        cmd = SendMessage(None, receiver, kind, "message", "text", text, None, {}, (), None, None)
        return await self.messaging.post_message(sender, cmd)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    storage = SqliteStorage(tmp_path / "parley.db", KeyRing.generate(), synchronous="NORMAL")
    await storage.open()
    clock, hub, events, gate = FakeClock(), LocalHub(), RecordingEvents(), HoldingGate()
    tokens = TokenAuthority(Secrets("k", "s" * 32), audience="a", issuer="i", ttl=60)
    users = UserService(storage.chat, hub, tokens, events=events, clock=clock)
    blocks = BlockService(storage.chat, users, clock=clock)
    groups = GroupService(storage.chat, users, hub, events=events, clock=clock)
    fanout = Fanout(hub, groups, blocks)
    verdicts = VerdictService(
        storage.messages, storage.audit, hub, fanout, groups, blocks, clock=clock
    )
    messaging = MessagingService(
        storage.messages,
        storage.moderation,
        hub,
        users,
        blocks,
        groups,
        fanout,
        gate=gate,
        events=events,
        rate_limiter=RateLimiter(1, 2, clock=clock.monotonic),
        clock=clock,
    )
    try:
        yield World(clock, hub, events, gate, users, blocks, groups, messaging, verdicts)
    finally:
        await storage.close()


# ------------------------------------------------------------------------ verdicts


async def test_a_verdict_applies_once_and_delivers(world: World) -> None:
    alice, _ = await world.user("alice"), await world.user("bob")
    world.connect("alice"), world.connect("bob")
    held = await world.send(alice, "bob", "hello")
    assert held.status is Status.PENDING and world.gate.submitted == [held]
    assert world.types("bob") == []  # held: nothing reaches the receiver
    world.frames("alice")

    approved = await world.verdicts.apply_verdict(held, Status.APPROVED, None, audit=None)
    assert approved is not None and approved.status is Status.APPROVED
    assert world.types("alice") == ["message.moderated"]
    assert world.types("bob") == ["message"]

    # The same verdict again (a retried job) finds the message moved on: nothing happens.
    again = await world.verdicts.apply_verdict(held, Status.APPROVED, None, audit=None)
    assert again is None
    assert world.types("alice") == [] and world.types("bob") == []


async def test_a_verdict_on_an_edited_message_does_not_apply(world: World) -> None:
    alice, _ = await world.user("alice"), await world.user("bob")
    world.connect("bob")
    held = await world.send(alice, "bob", "first")
    world.clock.advance(1)
    edited = await world.messaging.edit_message(alice, held.id, "second")
    assert edited.rev != held.rev
    stale = await world.verdicts.apply_verdict(held, Status.APPROVED, None, audit=None)
    assert stale is None and world.types("bob") == []
    fresh = await world.verdicts.apply_verdict(edited, Status.APPROVED, None, audit=None)
    assert fresh is not None and fresh.text == "second"
    assert world.types("bob") == ["message"]


async def test_disapproving_a_shown_message_withdraws_it(world: World) -> None:
    world.gate.moderate = False
    alice, _ = await world.user("alice"), await world.user("bob")
    world.connect("bob")
    shown = await world.send(alice, "bob", "visible")
    assert shown.status is Status.UNMODERATED and world.types("bob") == ["message"]
    reason = Moderation("manual", "Moderator decision", "no")
    audit = Audit("mod", "message.disapproved", str(shown.id), {})
    gone = await world.verdicts.apply_verdict(shown, Status.DISAPPROVED, reason, audit=audit)
    assert gone is not None and gone.status is Status.DISAPPROVED
    (frame,) = world.frames("bob")
    assert frame["type"] == "message.deleted" and frame["message"]["text"] is None


def _verdict(*actions: Action) -> Verdict:
    match = Match("r1", "rule", 3, "matched", 1.0, actions)
    return Verdict(VerdictStatus.DISAPPROVED, (match,), actions, ())


async def test_rule_side_actions_ban_and_block(world: World) -> None:
    world.gate.moderate = False
    alice, bob = await world.user("alice"), await world.user("bob")
    await world.groups.create_group(
        API_KEY_PRINCIPAL, guid="g", name="g", type_="public", tags=(), owner="alice"
    )
    await world.groups.add_member(API_KEY_PRINCIPAL, "g", "bob", Scope.PARTICIPANT)
    in_group = await world.send(bob, "g", "spam", kind="group")
    await world.verdicts.apply_rule_actions(in_group, _verdict(Action.BAN))
    assert "bob" not in await world.groups.members("g")
    assert await world.groups.is_banned("g", "bob")
    assert world.events.events[-1] == (
        "user.banned",
        {"uid": "bob", "guid": "g", "reason": "matched", "by": "moderation:r1@3"},
    )
    direct = await world.send(bob, "alice", "spam")
    # A kick of a 1:1 message does nothing; block_user blocks the sender for the receiver.
    await world.verdicts.apply_rule_actions(direct, _verdict(Action.KICK, Action.BLOCK_USER))
    assert await world.blocks.is_blocked_between(alice.uid, bob.uid)


# ------------------------------------------------------------------------ rate limits


async def test_the_rate_limit_follows_the_injected_clock(world: World) -> None:
    world.gate.moderate = False
    alice, _ = await world.user("alice"), await world.user("bob")
    await world.send(alice, "bob", "1")
    await world.send(alice, "bob", "2")  # the burst of 2
    with pytest.raises(RateLimited) as info:
        await world.send(alice, "bob", "3")
    assert info.value.retry_after_ms > 0
    world.clock.advance(1.0)  # one token back, no sleeping
    await world.send(alice, "bob", "3")


# ------------------------------------------------------------------------ events


async def test_bans_and_reports_go_to_the_event_sink(world: World) -> None:
    world.gate.moderate = False
    alice, bob = await world.user("alice"), await world.user("bob")
    await world.groups.create_group(
        API_KEY_PRINCIPAL, guid="g", name="g", type_="public", tags=(), owner="alice"
    )
    await world.groups.add_member(API_KEY_PRINCIPAL, "g", "bob", Scope.PARTICIPANT)
    sent = await world.send(alice, "g", "hi", kind="group")
    ack = await world.messaging.report_message(bob, sent.id, "spam", "")
    await world.groups.ban(API_KEY_PRINCIPAL, "g", "bob", "rude")
    await world.users.update_user(API_KEY_PRINCIPAL, "alice", {"banned": True})
    names = [event for event, _ in world.events.events]
    assert names == ["message.reported", "user.banned", "user.banned"]
    assert world.events.events[0][1] == {"report": ack["report"]}
    assert world.events.events[1][1]["guid"] == "g"
    assert world.events.events[2][1]["guid"] is None


# ------------------------------------------------------------------------ bounds


def test_the_lru_keeps_the_most_recently_used() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and len(cache) == 2


async def test_group_locks_are_dropped_when_nobody_holds_them() -> None:
    locks = KeyedLocks()
    order: list[int] = []

    async def hold(n: int) -> None:
        async with locks.hold("g"):
            order.append(n)
            await asyncio.sleep(0)

    await asyncio.gather(*(hold(n) for n in range(3)))
    assert order == [0, 1, 2] and len(locks) == 0
