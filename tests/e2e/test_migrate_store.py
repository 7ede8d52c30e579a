"""``parley migrate-store`` on a real data dir: an embedded (SQLite) server is used, stopped,
its database copied into an empty PostgreSQL database, and a server on PostgreSQL with the
same data dir serves everything as it was: messages (sealed content opens), verdicts, groups,
blocks, rules, the inbox, the audit chain; new ids continue past the old ones. A second run
and a run without a URL are refused with a clear message and change nothing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from client.sdk import ServerError
from tests.conftest import ROOT, ServerProcess, World, free_port, unique, world_on
from tests.e2e.test_moderation_flow import word_rule
from tests.pg import cluster


def parley(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def history(world: World, uid: str, conversation: str) -> list[dict[str, Any]]:
    async with world.user_rest(await world.token(uid)) as rest:
        return await rest.history(conversation, limit=100)


async def test_sqlite_data_dir_moves_to_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    api_key = "test-key-" + uuid.uuid4().hex[:8]
    before: dict[str, Any] = {}
    embedded = ServerProcess(data_dir=data_dir, port=free_port(), api_key=api_key)
    embedded.start()
    try:
        async with world_on(embedded) as w:
            alice, bob, carol = await w.user("alice"), await w.user("bob"), await w.user("carol")
            guid = unique("g")
            await w.rest.create_group(guid, "Moved", owner=alice)
            await w.rest.add_member(guid, bob)
            word = "zq" + uuid.uuid4().hex[:8]
            before["rule"] = await word_rule(w, word, ["block"])
            a, b = await w.connect(alice), await w.connect(bob)
            hello = await a.send_text(bob, "hello from SQLite")
            await b.next_event("message", predicate=lambda e: e.message["id"] == hello["id"])
            blocked = await a.send_text(bob, f"this says {word}")
            got = await a.next_event(
                "message.moderated", predicate=lambda e: e.message["id"] == blocked["id"]
            )
            assert got.message["moderationStatus"] == "disapproved"
            in_group = await b.send_custom(guid, "note", {"n": 1}, receiver_type="group")
            async with w.user_rest(await w.token(carol)) as rc:
                await rc.block(alice)
            before.update(
                alice=alice, bob=bob, carol=carol, guid=guid, hello=hello, blocked=blocked,
                in_group=in_group, pair=await history(w, bob, hello["conversationId"]),
                mine=await history(w, alice, hello["conversationId"]),
                audit=(await w.rest.audit())["entries"],
            )  # fmt: skip
    finally:
        embedded.stop()

    refused = parley("migrate-store", "--data-dir", str(data_dir))
    assert refused.returncode == 2 and "needs --database-url" in refused.stderr

    url = cluster().database(str(tmp_path / "target"))
    moved = parley("migrate-store", "--data-dir", str(data_dir), "--database-url", url)
    assert moved.returncode == 0, moved.stderr
    assert "messages" in moved.stdout and "copied" in moved.stdout
    again = parley("migrate-store", "--data-dir", str(data_dir), "--database-url", url)
    assert again.returncode == 2 and "already holds Parley data" in again.stderr
    verify = parley("audit", "verify", "--data-dir", str(data_dir), "--database-url", url)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    on_pg = ServerProcess(
        data_dir=data_dir, port=free_port(), api_key=api_key, args=["--database-url", url]
    )
    on_pg.start()
    try:
        async with world_on(on_pg) as w:
            alice, bob, carol = before["alice"], before["bob"], before["carol"]
            hello = before["hello"]
            assert await history(w, bob, hello["conversationId"]) == before["pair"]
            assert await history(w, alice, hello["conversationId"]) == before["mine"]
            group = await history(w, bob, f"group_{before['guid']}")
            assert [m["id"] for m in group] == [before["in_group"]["id"]]
            assert (await w.rest.get_rule(before["rule"]))["id"] == before["rule"]
            assert (await w.rest.audit())["entries"] == before["audit"]
            async with w.user_rest(await w.token(bob)) as rb:
                inbox = (await rb.conversations())["conversations"]
            assert {c["with"] for c in inbox} >= {alice, before["guid"]}
            # The block holds; new messages get ids past the copied ones.
            c = await w.connect(carol)
            try:
                await c.send_custom(alice, "x", {})
                raise AssertionError("carol's block did not move")
            except ServerError as exc:
                assert exc.code == "ERR_BLOCKED"
            a = await w.connect(alice)
            new = await a.send_text(bob, "hello from PostgreSQL")
            assert new["id"] > before["in_group"]["id"] > hello["id"]
            assert new["moderationStatus"] == "pending"
    finally:
        on_pg.stop()
