"""An acknowledged message survives kill -9, exactly once, readable; pending ones get moderated.

On both backends: ``make test`` runs tests/e2e again with ``PARLEY_TEST_BACKEND=postgres``, where
the killed server's data is in PostgreSQL (an acknowledgement means PostgreSQL committed)."""

from __future__ import annotations

import asyncio
import contextlib

from client.sdk import ParleyClient, RestClient, ServerError
from tests.conftest import ServerProcess


async def test_acked_messages_survive_sigkill_mid_burst(
    server_factory: type[ServerProcess],
) -> None:
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    senders = [f"dur-s{i}" for i in range(4)]
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        for uid in [*senders, "dur-sink"]:
            await rest.create_user(uid, uid)
        tokens = {uid: await rest.issue_token(uid) for uid in senders}
    acked: dict[str, dict[str, object]] = {}
    stop = asyncio.Event()

    async def burst(uid: str) -> None:
        client = ParleyClient(srv.ws_url, tokens[uid])
        await client.connect()
        i = 0
        try:
            while not stop.is_set():
                muid = f"{uid}-{i}"
                text = f"durable {muid}"
                try:
                    if i % 2:
                        msg = await client.send_text("dur-sink", text, muid=muid, timeout=5)
                    else:
                        msg = await client.send_custom(
                            "dur-sink", "n", {"t": text}, muid=muid, timeout=5
                        )
                except (TimeoutError, ServerError, OSError):
                    return  # the server died under us: this one was never acknowledged
                acked[muid] = msg
                i += 1
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    tasks = [asyncio.create_task(burst(uid)) for uid in senders]
    while len(acked) < 200:
        await asyncio.sleep(0.01)
    srv.kill9()
    stop.set()
    await asyncio.gather(*tasks)
    assert len(acked) >= 200

    srv.start()
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        stored: list[dict[str, object]] = []
        before = None
        for uid in senders:
            cid = f"{min(uid, 'dur-sink')}_user_{max(uid, 'dur-sink')}"
            before = None
            while True:
                page = await rest.history(cid, before=before, limit=100)
                stored.extend(page)
                if len(page) < 100:
                    break
                before = int(page[0]["id"])  # type: ignore[call-overload]
        by_muid: dict[str, list[dict[str, object]]] = {}
        for m in stored:
            by_muid.setdefault(str(m["muid"]), []).append(m)
        for muid, msg in acked.items():
            assert len(by_muid.get(muid, [])) == 1, (
                f"{muid} stored {len(by_muid.get(muid, []))} times"
            )
            got = by_muid[muid][0]
            assert got["id"] == msg["id"]
            text = got["text"] if got["type"] == "text" else got["data"]["t"]  # type: ignore[index]
            assert text == f"durable {muid}"
        # Pending text messages left by the crash are moderated after the restart.
        for _ in range(100):
            pending = [
                m
                for m in await rest.history("dur-s1_user_dur-sink", limit=100)
                if m["moderationStatus"] == "pending"
            ]
            if not pending:
                break
            await asyncio.sleep(0.05)
        assert not pending
