"""Two server processes on one PostgreSQL database and one Redis (``--redis-url``): one
deployment. Runs on every ``make test`` (PostgreSQL and Redis are started by the tests:
``tests/pg.py``, ``tests/redis_server.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from client.sdk import ParleyClient, ServerError
from tests.conftest import ServerProcess, World, free_port, unique, world_on
from tests.e2e.test_moderation_flow import word_rule
from tests.pg import cluster
from tests.redis_server import RedisServer, redis_server


@contextlib.contextmanager
def two_processes(
    root: Path, redis_url: str, rate_limit: str = "0"
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Processes A and B: same database, same Redis, same API key, same data dir secrets."""
    data_dir = root / "d"
    database = cluster().database(str(data_dir.resolve()))
    api_key = "test-key-" + uuid.uuid4().hex[:8]
    args = ["--rate-limit", rate_limit, "--database-url", database, "--redis-url", redis_url]
    servers: list[ServerProcess] = []
    try:
        for _ in range(2):  # B starts on the data dir A made: the same JWT secret and keys
            srv = ServerProcess(data_dir=data_dir, port=free_port(), api_key=api_key, args=args)
            srv.start()
            servers.append(srv)
        yield servers[0], servers[1]
    finally:
        for srv in servers:
            srv.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with two_processes(tmp_path_factory.mktemp("two"), redis_server().url(0)) as servers:
        yield servers


@pytest.fixture
async def worlds(
    pair: tuple[ServerProcess, ServerProcess],
) -> AsyncIterator[tuple[World, World]]:
    async with world_on(pair[0]) as a, world_on(pair[1]) as b:
        yield a, b


async def test_one_to_one_across_processes_arrives_exactly_once(
    worlds: tuple[World, World],
) -> None:
    wa, wb = worlds
    alice, bob = await wa.user("alice"), await wa.user("bob")
    a = await wa.connect(alice)
    b = await wb.connect(bob)
    alice_on_b = await wb.connect(alice)
    await asyncio.sleep(0.2)  # presence reaches Redis
    sent = await a.send_text(bob, "hello from A")
    got = await b.next_event("message")
    assert got.message["id"] == sent["id"] and got.message["text"] == "hello from A"
    # The verdict reaches the sender's connection on the other process too.
    verdict = await alice_on_b.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == sent["id"]
    )
    assert verdict.message["moderationStatus"] == "approved"
    mine = await alice_on_b.next_event("message")
    assert mine.message["id"] == sent["id"]
    await b.expect_no_event("message", within=0.4)
    await alice_on_b.expect_no_event("message", "message.moderated", within=0.1)
    # And back, unmoderated and immediate.
    back = await b.send_custom(alice, "ping", {"n": 1})
    assert (await a.next_event("message")).message["id"] == back["id"]
    await a.expect_no_event("message", within=0.3)


async def test_typing_crosses_processes(worlds: tuple[World, World]) -> None:
    wa, wb = worlds
    alice, bob = await wa.user("alice"), await wa.user("bob")
    a = await wa.connect(alice)
    b = await wb.connect(bob)
    await asyncio.sleep(0.2)
    await a.typing(bob)
    typing = await b.next_event("typing")
    assert typing.data["sender"] == alice and typing.data["state"] == "start"


async def test_blocked_verdict_reaches_sender_on_other_process(
    worlds: tuple[World, World],
) -> None:
    wa, wb = worlds
    alice, bob = await wa.user("alice"), await wa.user("bob")
    a = await wa.connect(alice)
    alice_on_b = await wb.connect(alice)
    b = await wb.connect(bob)
    await asyncio.sleep(0.2)
    sent = await a.send_text(bob, "you are a fucking idiot")
    verdict = await alice_on_b.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == sent["id"]
    )
    assert verdict.message["moderationStatus"] == "disapproved"
    await b.expect_no_event("message", within=0.4)


async def test_group_message_reaches_each_member_once(worlds: tuple[World, World]) -> None:
    wa, wb = worlds
    owner, m1, m2, m3 = [await wa.user(p) for p in ("own", "ma", "mb", "mc")]
    guid = unique("g")
    async with wa.user_rest(await wa.token(owner)) as o:
        await o.create_group(guid, "G", type="private")
        for m in (m1, m2, m3):
            await o.add_member(guid, m)
    sender = await wa.connect(owner)
    sender_on_b = await wb.connect(owner)
    on_a = await wa.connect(m1)
    on_b = [await wb.connect(m2), await wb.connect(m3), await wb.connect(m3)]
    await asyncio.sleep(0.2)
    sent = await sender.send_custom(guid, "ping", {"n": 1}, receiver_type="group")
    for c in (on_a, *on_b, sender_on_b):
        got = await c.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
        assert got.message["receiver"] == guid
    for c in (on_a, *on_b, sender_on_b):
        await c.expect_no_event("message", within=0.2)
    await sender.expect_no_event("message", within=0.1)


async def test_member_added_on_a_sends_through_b_within_a_second(
    worlds: tuple[World, World],
) -> None:
    wa, wb = worlds
    owner, old, new = await wa.user("own"), await wa.user("old"), await wa.user("new")
    guid = unique("g")
    async with wa.user_rest(await wa.token(owner)) as o:
        await o.create_group(guid, "G", type="private")
        await o.add_member(guid, old)
    old_on_b = await wb.connect(old)
    new_on_b = await wb.connect(new)
    await old_on_b.send_custom(guid, "warm", {}, receiver_type="group")  # B caches the members
    with pytest.raises(ServerError):
        await new_on_b.send_custom(guid, "x", {}, receiver_type="group")
    async with wa.user_rest(await wa.token(owner)) as o:
        await o.add_member(guid, new)
    added = time.monotonic()
    while True:
        try:
            await new_on_b.send_custom(guid, "hi", {}, receiver_type="group")
            break
        except ServerError:
            assert time.monotonic() - added < 1.0, "B still refuses the new member after 1 s"
            await asyncio.sleep(0.05)


async def test_ban_on_a_disconnects_on_b(worlds: tuple[World, World]) -> None:
    wa, wb = worlds
    uid = await wa.user("banned")
    token = await wb.token(uid)
    on_b = await wb.connect(uid)
    on_a = await wa.connect(uid)
    await wb.rest.get_user(uid)  # B caches the user
    await asyncio.sleep(0.2)
    await wa.rest.update_user(uid, banned=True)
    assert await on_b.wait_closed() == 4403
    assert await on_a.wait_closed() == 4403
    # B's user cache was invalidated: a new connection there is refused.
    with pytest.raises(ServerError) as info:
        await ParleyClient(wb.server.ws_url, token).connect()
    assert info.value.code == "ERR_FORBIDDEN" and info.value.details["closeCode"] == 4403


async def test_rule_added_on_a_applies_on_b_within_a_second(
    worlds: tuple[World, World],
) -> None:
    wa, wb = worlds
    alice, bob = await wa.user("alice"), await wa.user("bob")
    on_b = await wb.connect(alice)
    word = "zq" + uuid.uuid4().hex[:8]
    rule_id = await word_rule(wa, word, ["block"])
    added = time.monotonic()
    try:
        while True:
            sent_id = (await on_b.send_text(bob, f"say {word}"))["id"]
            verdict = await on_b.next_event(
                "message.moderated", predicate=lambda e, i=sent_id: e.message["id"] == i
            )
            if verdict.message["moderationStatus"] == "disapproved":
                break
            assert time.monotonic() - added < 1.0, "B still ignores the rule after 1 s"
            await asyncio.sleep(0.05)
    finally:
        await wa.rest.delete_rule(rule_id)


async def test_mute_on_a_applies_on_b_within_a_second(worlds: tuple[World, World]) -> None:
    wa, wb = worlds
    alice, bob = await wa.user("alice"), await wa.user("bob")
    on_b = await wb.connect(alice)
    await on_b.send_custom(bob, "n", {})  # B has loaded its restrictions
    await wa.rest.restrict(alice, "mute", reason="test")
    added = time.monotonic()
    while True:
        try:
            await on_b.send_custom(bob, "n", {})
        except ServerError as err:
            assert err.code == "ERR_MUTED"
            break
        assert time.monotonic() - added < 1.0, "B still lets a muted user send after 1 s"
        await asyncio.sleep(0.05)


async def status_of(conn: ParleyClient, sent: dict[str, object]) -> str:
    """The verdict ``conn`` hears for the message ``sent``."""
    verdict = await conn.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == sent["id"]
    )
    return str(verdict.message["moderationStatus"])


SPAM = "win a free cruise for two today, just reply with your card number"


async def test_spam_sent_alternately_through_both_processes_is_caught(
    worlds: tuple[World, World],
) -> None:
    """The default spam rule (the same text to 3 conversations in 10 minutes) counts the
    sender's messages stored through either process: each process reads the sender's recent
    messages from the database on every send, whatever it keeps in memory."""
    wa, wb = worlds
    spammer = await wa.user("spammer")
    peers = [await wa.user(f"peer{i}") for i in range(4)]
    on_a, on_b = await wa.connect(spammer), await wb.connect(spammer)
    first = await on_a.send_text(peers[0], SPAM)
    assert await status_of(on_a, first) == "approved"
    second = await on_b.send_text(peers[1], SPAM)
    assert await status_of(on_b, second) == "approved"
    third = await on_a.send_text(peers[2], SPAM)  # A stored the first, B the second
    assert await status_of(on_a, third) == "disapproved"
    fourth = await on_b.send_text(peers[3], SPAM)
    assert await status_of(on_b, fourth) == "disapproved"


async def test_an_edit_through_one_process_counts_on_the_other(
    worlds: tuple[World, World],
) -> None:
    """A keeps the sender's messages it has read, opened; a message edited through B since is
    read again, so A judges with the edited text, not the kept one."""
    wa, wb = worlds
    spammer = await wa.user("spammer")
    peers = [await wa.user(f"peer{i}") for i in range(4)]
    on_a, on_b = await wa.connect(spammer), await wb.connect(spammer)
    first = await on_a.send_text(peers[0], SPAM)
    assert await status_of(on_a, first) == "approved"
    second = await on_b.send_text(peers[1], "see you at the station at noon, bring the map")
    assert await status_of(on_b, second) == "approved"
    innocent = await on_a.send_text(peers[2], "and the umbrella, it is going to rain later")
    assert await status_of(on_a, innocent) == "approved"  # A has read (and kept) the second
    edited = await on_b.edit(second["id"], SPAM)
    assert edited["text"] == SPAM and await status_of(on_b, edited) == "approved"
    third = await on_a.send_text(peers[3], SPAM)  # the first, the edited second, this one
    assert await status_of(on_a, third) == "disapproved"


def test_data_dirs_share_secrets(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    assert a.data_dir == b.data_dir and Path(a.data_dir, "secrets.json").exists()


async def test_redis_going_away_and_coming_back(tmp_path: Path) -> None:
    """Without Redis each process serves its own connections; when Redis is back (empty: it
    keeps nothing), the processes announce their connections again and deliver across."""
    redis = RedisServer()
    redis.start()
    try:
        with two_processes(tmp_path, redis.url(3)) as (sa, sb):
            async with world_on(sa) as wa, world_on(sb) as wb:
                alice, bob, carol = [await wa.user(p) for p in ("alice", "bob", "carol")]
                a, c = await wa.connect(alice), await wa.connect(carol)
                b = await wb.connect(bob)
                guid = unique("g")
                await wa.rest.create_group(guid, "G", type="private", owner=alice)
                with pytest.raises(ServerError):  # B caches the members: bob is not one
                    await b.send_custom(guid, "n", {}, receiver_type="group")
                await asyncio.sleep(0.2)
                await a.send_custom(bob, "n", {"i": 0})
                await b.next_event("message")
                redis.halt()
                await wa.rest.add_member(guid, bob)  # B cannot hear of it now
                # Local delivery and acknowledgements go on.
                sent = await a.send_custom(carol, "n", {"i": 1})
                assert (await c.next_event("message")).message["id"] == sent["id"]
                await a.send_custom(bob, "n", {"i": 2})  # stored; not delivered live
                await asyncio.sleep(0.5)
                assert sa.proc is not None and sa.proc.poll() is None
                assert sb.proc is not None and sb.proc.poll() is None
                redis.start()
                deadline = time.monotonic() + 10
                while True:
                    sent = await a.send_custom(bob, "n", {"i": 3})
                    try:
                        got = await b.next_event(
                            "message",
                            predicate=lambda e, i=sent["id"]: e.message["id"] == i,
                            timeout=0.5,
                        )
                        break
                    except TimeoutError:
                        assert time.monotonic() < deadline, "no delivery across after Redis"
                assert got.message["data"] == {"i": 3}
                # The invalidation B missed: every cache was dropped on reconnecting.
                await b.send_custom(guid, "n", {}, receiver_type="group")
    finally:
        redis.stop()


async def test_rate_limit_is_shared_by_the_processes(tmp_path: Path) -> None:
    """One bucket per user in Redis: reconnecting to the other process does not double it."""
    with two_processes(tmp_path, redis_server().url(4), rate_limit="1") as (sa, sb):
        async with world_on(sa) as wa, world_on(sb) as wb:
            alice, bob = await wa.user("alice"), await wa.user("bob")
            a, b = await wa.connect(alice), await wb.connect(alice)
            await a.send_custom(bob, "n", {})  # the one token of the burst
            with pytest.raises(ServerError) as info:
                await b.send_custom(bob, "n", {})
            assert info.value.code == "ERR_RATE_LIMITED"
            await asyncio.sleep(1.1)
            await b.send_custom(bob, "n", {})


def test_processes_started_together_on_an_empty_database_all_come_up(tmp_path: Path) -> None:
    """Every process of a deployment seeds the default lists and rules into an empty database;
    started at the same moment, a process whose create met the other's row (an existing id or
    a unique violation) failed its start-up ("Application startup failed", 2 of 9 tries
    before the fix). Now each comes up, and every default is stored once."""
    pg = cluster()
    data_dir = tmp_path / "d"
    api_key = "test-key-" + uuid.uuid4().hex[:8]
    warm = ServerProcess(  # makes the data dir's secrets, as a first deployment would
        data_dir=data_dir,
        port=free_port(),
        api_key=api_key,
        args=["--rate-limit", "0", "--database-url", pg.database(str(tmp_path / "warm"))],
    )
    warm.start()
    warm.stop()
    for attempt in range(4):
        database = pg.database(str(tmp_path / f"empty-{attempt}"))
        servers = [
            ServerProcess(
                data_dir=data_dir,
                port=free_port(),
                api_key=api_key,
                args=["--rate-limit", "0", "--database-url", database],
            )
            for _ in range(2)
        ]
        failed: list[str] = []

        def start(srv: ServerProcess, failed: list[str] = failed) -> None:
            try:
                srv.start(timeout=60)
            except RuntimeError as exc:
                failed.append(str(exc)[-800:])

        threads = [threading.Thread(target=start, args=(srv,)) for srv in servers]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            for srv in servers:
                srv.stop()
        assert failed == []
        name = database.rsplit("/", 1)[1]
        counts = pg.psql("SELECT count(*), count(DISTINCT id) FROM rules", database=name)
        rules, distinct = (int(x) for x in counts.strip().split("|"))
        assert rules == distinct and rules >= 20
        revisions = pg.psql("SELECT count(*) FROM rule_revisions WHERE revision > 1", database=name)
        assert revisions.strip() == "0"  # no default stored twice
