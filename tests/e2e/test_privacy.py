"""Encryption at rest (a canary never reaches a file), key rotation, GDPR export and erasure."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from client.sdk import ParleyClient, RestClient, ServerError
from tests.conftest import ROOT, ServerProcess


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_canary_is_in_no_file_but_the_api_returns_it(
    server_factory: type[ServerProcess],
) -> None:
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    canary = "canary-" + uuid.uuid4().hex
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        await rest.create_user("cn-a", "A")
        await rest.create_user("cn-b", "B")
        async with ParleyClient(srv.ws_url, await rest.issue_token("cn-a")) as a:
            text_msg = await a.send_text("cn-b", f"text {canary}", metadata={"note": canary})
            await a.send_custom("cn-b", "card", {"secret": canary})
            await a.edit(text_msg["id"], f"edited {canary}")
            await a.next_event("message.moderated")
        history = await rest.history("cn-a_user_cn-b")
        assert any(canary in (m["text"] or "") for m in history)
        assert any(canary in str(m["data"]) for m in history)
        assert any(canary in str(m["metadata"]) for m in history)
    log = srv.log_path
    srv.stop()  # checkpoint the WAL too; then look at every byte the server left behind
    assert files_containing(srv.data_dir, canary.encode()) == []
    assert log is not None and canary.encode() not in log.read_bytes()
    srv.start()


async def test_key_rotation_keeps_old_messages_readable(
    server_factory: type[ServerProcess],
) -> None:
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        await rest.create_user("kr-a", "A")
        await rest.create_user("kr-b", "B")
        old = await rest.send_message(
            sender="kr-a",
            receiverType="user",
            receiver="kr-b",
            category="custom",
            messageType="n",
            data={"v": "old"},
        )
    srv.stop()
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "keys", "rotate", "--data-dir", str(srv.data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "current key is now" in out.stdout
    srv.start()
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        new = await rest.send_message(
            sender="kr-a",
            receiverType="user",
            receiver="kr-b",
            category="custom",
            messageType="n",
            data={"v": "new"},
        )
        got = {m["id"]: m["data"]["v"] for m in await rest.history("kr-a_user_kr-b")}
        assert got == {old["id"]: "old", new["id"]: "new"}


async def test_gdpr_export_and_erasure(server_factory: type[ServerProcess]) -> None:
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        await rest.create_user("gd-a", "A", metadata={"email": "a@example.org"})
        await rest.create_user("gd-b", "B")
        async with ParleyClient(srv.ws_url, await rest.issue_token("gd-a")) as a:
            await a.send_custom("gd-b", "n", {"mine": 1})
            await a.send_custom("gd-b", "n", {"mine": 2})
        async with RestClient(srv.url, token=await rest.issue_token("gd-a")) as ra:
            await ra.block("gd-b")
        export = await rest.export_user("gd-a")
        assert export["user"]["uid"] == "gd-a" and export["user"]["metadata"] == {
            "email": "a@example.org"
        }
        assert [m["data"] for m in export["messages"]] == [{"mine": 1}, {"mine": 2}]
        assert export["blockedUsers"] == ["gd-b"]
        await rest.delete_user("gd-a", erase=True)
        try:
            await rest.get_user("gd-a")
            raise AssertionError("erased user still there")
        except ServerError as exc:
            assert exc.code == "ERR_NOT_FOUND"
        assert await rest.history("gd-a_user_gd-b") == []
