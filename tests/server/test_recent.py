"""The store's in-memory recent indexes answer exactly what the database would."""

from __future__ import annotations

import random
from pathlib import Path

from server.crypto import KeyRing
from server.models import Message, Moderation, Status
from server.storage.sqlite import SqliteStorage
from server.storage.sqlite.recent import RecentIndex
from server.storage.types import NewMessage

T0 = 1_764_000_000


def msg(i: int, key: str = "c", sent_at: int = T0) -> Message:
    return Message(i, f"m{i}", key, "a", "b", "user", "message", "text", "t", None, {}, (),
                   None, sent_at, sent_at, Status.APPROVED)  # fmt: skip


def by_conv() -> RecentIndex:
    return RecentIndex(lambda m: m.conversation_id, per_key=4, max_keys=2)


def test_no_entry_is_a_miss_and_add_never_creates_one() -> None:
    index = by_conv()
    index.add(msg(1))
    assert index.newest("c", lambda m: True, limit=1) is None


def test_installed_entry_answers_and_grows() -> None:
    index = by_conv()
    index.install("c", index.generation("c"), [msg(1), msg(2)], complete=True)
    index.add(msg(3))
    assert [m.id for m in index.newest("c", lambda m: True, limit=5) or []] == [1, 2, 3]
    assert [m.id for m in index.newest("c", lambda m: m.id < 3, limit=1) or []] == [2]


def test_trimmed_entry_cannot_answer_short() -> None:
    index = by_conv()
    index.install("c", index.generation("c"), [msg(1)], complete=True)
    for i in range(2, 7):
        index.add(msg(i))  # keeps 3..6, no longer reaches the start
    assert [m.id for m in index.newest("c", lambda m: True, limit=2) or []] == [5, 6]
    assert index.newest("c", lambda m: m.id < 4, limit=2) is None


def test_a_load_that_raced_with_a_commit_is_not_kept() -> None:
    index = by_conv()
    generation = index.generation("c")
    index.add(msg(9))  # committed while the load was reading
    index.install("c", generation, [msg(1)], complete=True)
    assert index.newest("c", lambda m: True, limit=1) is None


def test_reaches_and_lru() -> None:
    index = by_conv()
    index.install("c", index.generation("c"), [msg(1, sent_at=T0 - 900)], complete=False)
    index.add(msg(2, sent_at=T0))
    recent = index.newest(
        "c", lambda m: m.sent_at >= T0 - 600, limit=10, reaches=lambda m: m.sent_at < T0 - 600
    )
    assert [m.id for m in recent or []] == [2]
    for key in ("d", "e"):
        index.install(key, index.generation(key), [msg(5, key)], complete=True)
    assert index.newest("c", lambda m: True, limit=1) is None  # evicted, least recently used


async def test_store_answers_match_a_cold_store(tmp_path: Path) -> None:
    rng = random.Random(7)
    ring = KeyRing.generate()
    path = tmp_path / "db.sqlite"
    warm_storage = SqliteStorage(path, ring, synchronous="NORMAL")
    warm = warm_storage.chat
    await warm_storage.open()
    try:
        stored: list[Message] = []
        convs, senders = ["c1", "c2", "c3"], ["s1", "s2"]
        for i in range(300):
            new = NewMessage(
                muid=f"m{i}", conversation_id=rng.choice(convs), sender=rng.choice(senders),
                receiver="r", receiver_type="user", category="message", type="text",
                text=f"text {i}", data=None, metadata={}, tags=(), parent_id=None,
                attachment=None, status=Status.PENDING, at=T0 + i // 10,
            )  # fmt: skip
            message, _ = await warm.insert_message(new)
            stored.append(message)
            if i % 3 == 0:  # decide some earlier pending message, delete or edit others
                target = rng.choice(stored)
                fresh = await warm.get_message(target.id)
                assert fresh is not None
                roll = rng.random()
                if roll < 0.5 and fresh.status is Status.PENDING:
                    await warm.set_status(fresh, Status.APPROVED, None, T0 + i, None)
                elif roll < 0.7 and fresh.status is Status.PENDING:
                    why = Moderation("r", "R", "x")
                    await warm.set_status(fresh, Status.DISAPPROVED, why, T0 + i, None)
                elif roll < 0.8 and not fresh.deleted_at:
                    await warm.mark_deleted(fresh, T0 + i)
                elif roll < 0.9 and not fresh.deleted_at:
                    await warm.update_content(fresh, status=Status.APPROVED, at=T0 + i)
            if i % 7 == 0:  # ask the questions moderation asks, warming the indexes
                before = rng.choice(stored).id + 1
                await warm.recent(rng.choice(convs), before=before, limit=5)
                await warm.recent_of_sender(rng.choice(senders), since=T0 + i // 10 - 5, limit=50)
        cold_storage = SqliteStorage(path, ring, synchronous="NORMAL")
        cold = cold_storage.chat
        await cold_storage.open()
        try:
            for cid in convs:
                for before in (stored[-1].id + 1, stored[150].id, stored[-20].id):
                    for limit in (1, 5, 10):
                        w = await warm.recent(cid, before=before, limit=limit)
                        c = await cold.recent(cid, before=before, limit=limit)
                        assert w == c, (cid, before, limit)
            for sender in senders:
                for since in (T0, T0 + 25, T0 + 29):
                    w = await warm.recent_of_sender(sender, since=since, limit=50)
                    c = await cold.recent_of_sender(sender, since=since, limit=50)
                    assert w == c, (sender, since)
            recent = warm_storage.recent
            assert recent.by_conversation.hits > 0 and recent.by_sender.hits > 0
        finally:
            await cold_storage.close()
    finally:
        await warm_storage.close()


def test_total_messages_are_bounded() -> None:
    index = RecentIndex(lambda m: m.conversation_id, per_key=4, max_keys=100, max_messages=6)
    for key in ("a", "b", "c"):
        index.install(key, index.generation(key), [msg(1, key), msg(2, key)], complete=True)
    assert len(index) == 6
    index.add(msg(3, "c"))  # 7 > 6: the least recently used key goes
    assert len(index) == 5 and index.newest("a", lambda m: True, limit=1) is None
    assert [m.id for m in index.newest("c", lambda m: True, limit=5) or []] == [1, 2, 3]
