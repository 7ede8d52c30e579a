// Reactions and thread replies over a real server: react/unreact with message.reaction to
// the other side, counts in history, REST helpers, replies with parentId and thread pages.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { ParleyError } from "../dist/index.js";
import { closeAll, connect, makeUser } from "./helpers.mjs";

after(closeAll);

test("react, unreact: the other side gets message.reaction; history counts them", async () => {
  const a = await makeUser("alice");
  const b = await makeUser("bob");
  const ca = await connect(a.token);
  const cb = await connect(b.token);
  const delivered = cb.waitFor("message");
  const sent = await ca.sendCustom(b.uid, "note", { n: 1 });
  await delivered;

  const seen = ca.waitFor("message.reaction");
  const reply = await cb.react(sent.id, "👍");
  assert.equal(reply.type, "message.reaction");
  assert.deepEqual(reply.reactions, { "👍": 1 });
  const pushed = await seen;
  assert.equal(pushed.uid, b.uid);
  assert.equal(pushed.action, "added");
  assert.equal(pushed.messageId, sent.id);

  const [mine] = (await cb.rest.history(sent.conversationId)).filter((m) => m.id === sent.id);
  assert.deepEqual(mine.reactions, { "👍": 1 });
  assert.deepEqual(mine.myReactions, ["👍"]);
  assert.deepEqual(await ca.rest.reactions(sent.id), [{ emoji: "👍", count: 1, uids: [b.uid] }]);

  const removed = ca.waitFor("message.reaction", (f) => f.action === "removed");
  const viaRest = await cb.rest.unreact(sent.id, "👍");
  assert.deepEqual(viaRest.reactions, {});
  assert.deepEqual((await removed).reactions, {});

  await assert.rejects(cb.react(sent.id, "not an emoji"), (error) => {
    assert.ok(error instanceof ParleyError);
    assert.equal(error.code, "ERR_BAD_REQUEST");
    return true;
  });
});

test("replies carry parentId; the parent counts them; the thread pages them", async () => {
  const a = await makeUser("alice");
  const b = await makeUser("bob");
  const ca = await connect(a.token);
  const cb = await connect(b.token);
  const got = cb.waitFor("message");
  const root = await ca.sendCustom(b.uid, "note", { n: 2 });
  const parent = (await got).message;
  const answer = ca.waitFor("message", (f) => f.message.parentId === root.id);
  const reply = await cb.replyText(parent, "count me in");
  assert.equal(reply.parentId, root.id);
  assert.equal(reply.receiver, a.uid);
  await answer;
  const page = await ca.rest.thread(root.id);
  assert.equal(page.parent.id, root.id);
  assert.equal(page.parent.replyCount, 1);
  assert.deepEqual(page.messages.map((m) => m.id), [reply.id]);
  assert.equal(page.hasMore, false);
  await assert.rejects(cb.sendText(a.uid, "stray", { parentId: 2 ** 40 }), (error) => {
    assert.equal(error.code, "ERR_NOT_FOUND");
    return true;
  });
});

test("offline push endpoints: the server refuses a URL off its gateways", async () => {
  // The shared test server has no --push-gateways: registration says push is off.
  const a = await makeUser("alice");
  const ca = await connect(a.token);
  await assert.rejects(ca.rest.registerPush("https://ntfy.example/up/x"), (error) => {
    assert.ok(error instanceof ParleyError);
    assert.equal(error.status, 403);
    return true;
  });
  assert.deepEqual(await ca.rest.pushEndpoints(), []);
});
