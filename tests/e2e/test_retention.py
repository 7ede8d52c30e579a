"""Retention end to end (issue 15 item 7): periods per app and per group, holds, the job, on a
real server.

Messages older than their conversation's period are deleted with their uploads; a group with
its own period of 0 and a held conversation keep theirs; newer messages stay. On SQLite the
sealed bytes of every deleted message (read from the database file before the job) are then
in none of the files under the data dir, WAL included, and the upload's encrypted file is
gone. Only admins and the API key set any of it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from client.sdk import ServerError
from tests.conftest import ServerProcess, unique, world_on
from tests.e2e.test_image_hashes import encode
from tests.pg import BACKEND

PERIOD = 3
UPLOAD_TTL = 2


@pytest.fixture(scope="module")
def retention_server(server_factory: Any) -> ServerProcess:
    srv: ServerProcess = server_factory(
        "--rate-limit", "0", "--retention-interval", "0", "--upload-ttl", str(UPLOAD_TTL)
    )
    return srv


def sealed_bodies(data_dir: Path, ids: list[int]) -> dict[int, bytes]:
    """The stored (encrypted) body of each message, read from the SQLite file itself."""
    conn = sqlite3.connect(f"file:{data_dir / 'parley.db'}?mode=ro", uri=True)
    try:
        marks = ", ".join("?" * len(ids))
        rows = conn.execute(f"SELECT id, body FROM messages WHERE id IN ({marks})", ids)
        return {int(i): bytes(b) for i, b in rows}
    finally:
        conn.close()


def checkpoint(data_dir: Path) -> None:
    """Copy the WAL into the database file and empty it, as the retention job does."""
    conn = sqlite3.connect(data_dir / "parley.db", timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


def files_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())


async def test_expired_messages_and_their_media_are_deleted_for_good(
    retention_server: ServerProcess,
) -> None:
    async with world_on(retention_server) as w:
        alice, bob, carol = await w.user("ra"), await w.user("rb"), await w.user("rc")
        short, forever = unique("short"), unique("forever")
        for guid in (short, forever):
            await w.rest.create_group(guid, guid, owner=alice)
            await w.rest.add_member(guid, bob)
        a = await w.connect(alice)
        async with w.user_rest(await w.token(alice)) as rest_a:
            upload = await rest_a.upload(encode(Image.new("RGB", (64, 48), "red")), name="r.png")
        old = [
            await a.send_text(bob, "old words to bob"),
            await a.send_text(short, "old words in the group", receiver_type="group"),
            await a.send_message(
                {"receiver": bob, "receiverType": "user", "category": "message",
                 "messageType": "image", "mediaId": upload["mediaId"]}
            ),
        ]  # fmt: skip
        kept = [
            await a.send_text(forever, "old but kept forever", receiver_type="group"),
            await a.send_text(carol, "old but on legal hold"),
        ]
        blob = w.server.data_dir / "media" / upload["mediaId"][1:3] / upload["mediaId"]
        assert blob.exists()
        before = (
            sealed_bodies(w.server.data_dir, [m["id"] for m in old]) if BACKEND == "sqlite" else {}
        )
        await asyncio.sleep(PERIOD + 1.5)
        new = await a.send_text(bob, "new words to bob")

        async with httpx.AsyncClient(
            base_url=w.server.url + "/api/v1", headers={"X-API-Key": w.server.api_key}
        ) as api:
            put = await api.put("/retention", json={"retentionSeconds": PERIOD})
            assert put.status_code == 200 and put.json()["retentionSeconds"] == PERIOD
            own = await api.put(f"/groups/{forever}/retention", json={"retentionSeconds": 0})
            assert own.json() == {"groupId": forever, "retentionSeconds": 0}
            hold = await api.post(
                "/retention/holds", json={"uids": [carol, alice], "reason": "case 41"}
            )
            assert hold.status_code == 201, hold.text
            assert hold.json()["conversation"] == {"type": "user", "uids": sorted([alice, carol])}
            ran = await api.post("/retention/run")
            assert ran.status_code == 200, ran.text
            assert ran.json()["messages"] == len(old) and ran.json()["media"] == 1
            policy = (await api.get("/retention")).json()
            assert policy["lastRun"] == ran.json()
            assert policy["groups"] == [{"groupId": forever, "retentionSeconds": 0}]
            assert [h["holdId"] for h in policy["holds"]] == [hold.json()["holdId"]]
            again = await api.post("/retention/run")
            assert again.json()["messages"] == 0

        async with w.user_rest(await w.token(alice)) as rest_a:
            for message in old:
                with pytest.raises(ServerError) as err:
                    await rest_a.get_message(message["id"])
                assert err.value.status == 404
            for message in [*kept, new]:
                assert (await rest_a.get_message(message["id"]))["id"] == message["id"]
            with pytest.raises(ServerError) as err:
                await rest_a.media(upload["mediaId"])
            assert err.value.status == 404
            inbox = (await rest_a.conversations())["conversations"]
            heads = {c["with"]: (c["lastMessage"] or {}).get("id") for c in inbox}
            assert heads[bob] == new["id"] and heads[short] is None
            assert heads[forever] == kept[0]["id"] and heads[carol] == kept[1]["id"]
        assert not blob.exists()
        entries = (await w.rest.audit())["entries"]
        runs = [e for e in entries if e["action"] == "retention.run"]
        assert runs and runs[-1]["details"]["messages"] == len(old)
        assert any(e["action"] == "retention.hold" for e in entries)

        if BACKEND == "sqlite":
            # Nothing of the deleted messages is left in the files: not in free pages of the
            # database, not in the WAL.
            assert len(before) == len(old)
            everything = files_bytes(w.server.data_dir)
            for mid, body in before.items():
                assert body not in everything, f"message {mid} survives in the files"
            # And after a run, a message its sender deletes is gone from the files too once
            # checkpointed (freed space is zeroed on every write, not only in a run).
            [erased] = sealed_bodies(w.server.data_dir, [new["id"]]).values()
            await a.delete(new["id"])
            checkpoint(w.server.data_dir)
            assert erased not in files_bytes(w.server.data_dir), "a deleted message survives"


async def test_only_admins_set_retention_and_bad_input_is_refused(
    retention_server: ServerProcess,
) -> None:
    async with world_on(retention_server) as w:
        mod = await w.user("rm", role="moderator")
        async with w.user_rest(await w.token(mod)) as rest:
            for method, path, body in (
                ("GET", "/retention", None),
                ("PUT", "/retention", {"retentionSeconds": 5}),
                ("POST", "/retention/run", None),
                ("POST", "/retention/holds", {"groupId": "g"}),
            ):
                with pytest.raises(ServerError) as err:
                    await rest.request(method, path, json=body)
                assert err.value.status == 403, path
        async with httpx.AsyncClient(
            base_url=w.server.url + "/api/v1", headers={"X-API-Key": w.server.api_key}
        ) as api:
            for body in ({"retentionSeconds": -1}, {"retentionSeconds": "30"}, {}):
                bad = await api.put("/retention", json=body)
                assert (
                    bad.status_code == 400 and bad.json()["details"]["field"] == "retentionSeconds"
                )
            assert (
                await api.put("/groups/nope/retention", json={"retentionSeconds": 1})
            ).status_code == 404
            for body in ({}, {"uids": ["a"]}, {"uids": ["a", "a"]}, {"groupId": "g", "uids": ["a", "b"]},
                         {"uids": ["a", "b"], "kind": "forever"}):  # fmt: skip
                assert (await api.post("/retention/holds", json=body)).status_code == 400, body
            assert (await api.delete("/retention/holds/h_0123456789abcdef")).status_code == 404


async def test_uploads_never_sent_are_deleted_after_their_ttl(
    retention_server: ServerProcess,
) -> None:
    """Whatever the periods: an upload no message carries goes once its time is up (rows and
    files), one that was sent stays."""
    async with world_on(retention_server) as w:
        # No period: only the upload TTL deletes anything here (the module's server is shared).
        await w.rest.request("PUT", "/retention", json={"retentionSeconds": 0})
        alice, bob = await w.user("ua"), await w.user("ub")
        a = await w.connect(alice)
        async with w.user_rest(await w.token(alice)) as rest_a:
            unsent = await rest_a.upload(encode(Image.new("RGB", (32, 32), "blue")), name="u.png")
            sent = await rest_a.upload(encode(Image.new("RGB", (32, 32), "green")), name="s.png")
        await a.send_message(
            {"receiver": bob, "receiverType": "user", "category": "message",
             "messageType": "image", "mediaId": sent["mediaId"]}
        )  # fmt: skip
        files = {
            m["mediaId"]: w.server.data_dir / "media" / m["mediaId"][1:3] / m["mediaId"]
            for m in (unsent, sent)
        }
        assert all(f.exists() for f in files.values())
        await asyncio.sleep(UPLOAD_TTL + 1.5)
        async with httpx.AsyncClient(
            base_url=w.server.url + "/api/v1", headers={"X-API-Key": w.server.api_key}
        ) as api:
            ran = (await api.post("/retention/run")).json()
        assert ran["unsentUploads"] >= 1
        assert not files[unsent["mediaId"]].exists() and files[sent["mediaId"]].exists()
        async with w.user_rest(await w.token(alice)) as rest_a:
            with pytest.raises(ServerError) as err:
                await rest_a.media(unsent["mediaId"])
            assert err.value.status == 404
            assert (await rest_a.media(sent["mediaId"]))["mediaId"] == sent["mediaId"]
            # Sending it now is refused plainly: the upload is gone.
            with pytest.raises(ServerError) as err:
                await a.send_message(
                    {"receiver": bob, "receiverType": "user", "category": "message",
                     "messageType": "image", "mediaId": unsent["mediaId"]}
                )  # fmt: skip
            assert err.value.code == "ERR_NOT_FOUND"
