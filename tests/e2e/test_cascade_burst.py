"""A burst of messages the cascade escalates to the encoder, from several senders at once,
on a real server with the local AI rules and ``aiCascade`` on: the encoder takes them in
micro-batches, and every message gets its own verdict (a clear one delivered once, an insult
among them held), every sender's messages keep their order (ids increase in send order, as
clients sort by id), and nothing is lost or delivered twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client.sdk.ws import ParleyClient
from tests.conftest import World

AI_RULES = ("ai-toxicity", "ai-harmful-content", "ai-scam")
#: Clear texts in other languages than English: the gate never settles them (its lexical
#: stage is English-only), so each goes to the encoder. Shared by the senders (one text in
#: a batch for several messages) and each with its own variant (distinct texts).
CLEAR = [
    "Kannst du mir bitte die Folien von heute Morgen schicken?",
    "Wir treffen uns um drei Uhr im Konferenzraum.",
    "Est-ce que tu peux m'envoyer le rapport avant midi ?",
    "On se voit demain pour le déjeuner, d'accord ?",
    "¿Puedes revisar el documento antes de la reunión?",
    "Das Projekt ist fast fertig, nur noch die Tests fehlen.",
]
INSULT = "you are a brainless moron and nobody wants you here"
SENDERS = 3


@pytest.fixture
def world(fresh_world: World) -> World:
    """A server of its own per test (``fresh_world``): the rules and settings changed here
    stay off the shared one."""
    return fresh_world


async def enable_ai(world: World) -> None:
    for rule_id in AI_RULES:
        body = await world.rest.get_rule(rule_id)
        body = {k: v for k, v in body.items() if k not in ("revision", "createdAt", "updatedAt")}
        await world.rest.update_rule(rule_id, {**body, "enabled": True})
    assert (await world.rest.put_settings({"aiCascade": True}))["aiCascade"] is True


def burst_of(k: int) -> list[str]:
    """Sender k's burst: the shared clear texts, one of its own, and the insult in the middle."""
    own = f"Merci beaucoup pour ton aide, à lundi ! ({k})"
    texts = [*CLEAR, own]
    texts.insert(3, INSULT)
    return texts


async def received(client: ParleyClient, ids: set[int]) -> dict[int, dict[str, Any]]:
    """The ``message`` events of ``ids`` at ``client``, each once (waits for all of them)."""
    got: dict[int, dict[str, Any]] = {}
    while set(got) != ids:
        event = await client.next_event("message", timeout=30)
        mid = event.message["id"]
        assert mid in ids, f"unexpected message {mid}"
        assert mid not in got, f"message {mid} delivered twice"
        got[mid] = event.message
    return got


async def test_a_burst_of_escalated_messages_all_get_their_verdicts_in_order(
    world: World,
) -> None:
    await enable_ai(world)
    pairs = []
    for k in range(SENDERS):
        a, b = await world.user(f"a{k}"), await world.user(f"b{k}")
        pairs.append((await world.connect(a), b, await world.connect(b)))
    # the encoder loads in the background once the rules need it; wait for a first verdict
    first = await pairs[0][0].send_text(pairs[0][1], "Hallo, wie geht es dir heute?")
    await pairs[0][0].next_event(
        "message.moderated", timeout=30, predicate=lambda e: e.message["id"] == first["id"]
    )
    await pairs[0][2].next_event("message", timeout=30)

    async def burst(k: int) -> list[dict[str, Any]]:
        sender, receiver, _ = pairs[k]
        # every send at once: the frames go out back to back, none waits for the one before
        return list(await asyncio.gather(*(sender.send_text(receiver, t) for t in burst_of(k))))

    acks = await asyncio.gather(*(burst(k) for k in range(SENDERS)))
    for k, sent in enumerate(acks):
        sender, _, receiver = pairs[k]
        texts = burst_of(k)
        assert [m["text"] for m in sent] == texts
        ids = [m["id"] for m in sent]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)  # stored in send order
        clear_ids = {m["id"] for m in sent if m["text"] != INSULT}
        # every clear message reaches the receiver once, approved, with its own text
        got = await received(receiver, clear_ids)
        by_id = {m["id"]: m["text"] for m in sent}
        assert all(m["text"] == by_id[mid] for mid, m in got.items())
        assert all(m["moderationStatus"] == "approved" for m in got.values())
        # sorted by id, as clients show them, the receiver reads the sender's order
        assert [got[mid]["text"] for mid in sorted(got)] == [t for t in texts if t != INSULT]
        # and the sender hears each verdict
        verdicts: dict[int, str] = {}
        while len(verdicts) < len(clear_ids):
            event = await sender.next_event("message.moderated", timeout=30)
            verdicts[event.message["id"]] = event.message["moderationStatus"]
        assert verdicts == dict.fromkeys(clear_ids, "approved")
    # the insult in each burst is held for review, not delivered
    insults = {m["id"] for sent in acks for m in sent if m["text"] == INSULT}
    for _ in range(300):
        queue = await world.rest.queue("review")
        held = {i["message"]["id"]: i["ruleId"] for i in queue["items"]}
        if insults <= set(held):
            break
        await asyncio.sleep(0.1)
    assert {held[i] for i in insults} == {"ai-toxicity"}
    for _, _, receiver in pairs:
        await receiver.expect_no_event("message", within=0.3)
