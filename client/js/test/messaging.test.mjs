// Messaging over a real server: sends and verdicts, idempotency by muid, edits, deletes,
// receipts, typing, reports, typed errors, history paging, blocking, groups.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { ParleyError, RestClient, userConversationId } from "../dist/index.js";
import { admin, closeAll, collect, connect, eventually, makeUser, sleep, URL_ } from "./helpers.mjs";

after(closeAll);

async function pair() {
  const a = await makeUser("alice");
  const b = await makeUser("bob");
  return { a, b, ca: await connect(a.token), cb: await connect(b.token) };
}

test("send -> message.sent (durable), verdict approved, delivered to the receiver", async () => {
  const { b, ca, cb } = await pair();
  const verdict = ca.waitFor("message.moderated");
  const delivered = cb.waitFor("message");
  const sent = await ca.sendText(b.uid, "see you at the station at noon", { metadata: { k: 1 }, tags: ["t"] });
  assert.ok(Number.isInteger(sent.id) && sent.id > 0);
  assert.equal(sent.type, "text");
  assert.equal(sent.receiver, b.uid);
  assert.equal(sent.conversationId, userConversationId(ca.user.uid, b.uid));
  assert.ok(["pending", "approved"].includes(sent.moderationStatus), sent.moderationStatus);
  assert.deepEqual(sent.metadata, { k: 1 });
  const moderated = await verdict;
  assert.equal(moderated.message.id, sent.id);
  assert.equal(moderated.message.moderationStatus, "approved");
  assert.equal(moderated.moderation, undefined);
  const got = await delivered;
  assert.equal(got.message.id, sent.id);
  assert.equal(got.message.text, "see you at the station at noon");
  assert.equal(ca.pendingSends().length, 0);
});

test("a profane message: message.moderated disapproved with the rule, never delivered", async () => {
  const { b, ca, cb } = await pair();
  const received = collect(cb, "message");
  const verdicts = [];
  ca.onMessageModerated((message, frame) => verdicts.push({ message, frame }));
  const sent = await ca.sendText(b.uid, "you are a fucking idiot");
  assert.equal(sent.moderationStatus, "pending");
  await eventually(() => verdicts.length > 0, "the verdict");
  const [{ message, frame }] = verdicts;
  assert.equal(message.id, sent.id);
  assert.equal(message.moderationStatus, "disapproved");
  assert.ok(frame.moderation.ruleId, JSON.stringify(frame));
  assert.ok(frame.moderation.reason);
  await sleep(400);
  assert.equal(verdicts.length, 1, "exactly one verdict");
  assert.deepEqual(received, []);
  // The receiver's history does not have it; the sender's does, disapproved.
  const bobHistory = await cb.rest.history(sent.conversationId);
  assert.ok(bobHistory.every((m) => m.id !== sent.id));
  const mine = (await ca.rest.history(sent.conversationId)).find((m) => m.id === sent.id);
  assert.equal(mine.moderationStatus, "disapproved");
});

test("a custom message is unmoderated and delivered at once", async () => {
  const { b, ca, cb } = await pair();
  const got = cb.waitFor("message");
  const sent = await ca.sendCustom(b.uid, "poll", { q: "lunch?", options: ["a", "b"] });
  assert.equal(sent.category, "custom");
  assert.equal(sent.moderationStatus, "unmoderated");
  assert.deepEqual((await got).message.data, { q: "lunch?", options: ["a", "b"] });
});

test("idempotent retry by muid: the same muid gives the stored message, delivered once", async () => {
  const { a, b, ca, cb } = await pair();
  const received = collect(cb, "message");
  const muid = "retry-" + Date.now();
  const first = await ca.sendCustom(b.uid, "note", { n: 1 }, { muid });
  const again = await ca.sendCustom(b.uid, "note", { n: 2 }, { muid });
  assert.equal(again.id, first.id);
  assert.equal(again.muid, muid);
  assert.deepEqual(again.data, { n: 1 }, "the stored message, not the retry's body");
  // Two sends of one muid in flight at once share one outcome.
  const muid2 = muid + "-b";
  const [x, y] = await Promise.all([
    ca.sendCustom(b.uid, "note", { n: 3 }, { muid: muid2 }),
    ca.sendCustom(b.uid, "note", { n: 3 }, { muid: muid2 }),
  ]);
  assert.equal(x.id, y.id);
  // Over REST too.
  const rest = new RestClient({ baseUrl: URL_, token: a.token });
  const viaRest = await rest.sendMessage({ receiver: b.uid, receiverType: "user", category: "custom", messageType: "note", data: { n: 9 }, muid });
  assert.equal(viaRest.id, first.id);
  await eventually(() => received.length >= 2, "two deliveries");
  await sleep(300);
  assert.deepEqual(received.map((f) => f.message.id).sort(), [first.id, x.id].sort());
});

test("edit, delete, receipts, typing and a report, with their events", async () => {
  const { a, b, ca, cb } = await pair();
  const sent = await ca.sendCustom(b.uid, "note", { v: 1 });
  await cb.waitFor("message", (f) => f.message.id === sent.id);

  // Receipts: no reply on success; the sender gets `receipt`.
  const receipt = ca.waitFor("receipt", (f) => f.receiptType === "read");
  cb.markDelivered(sent.id);
  cb.markRead(sent.id);
  const r = await receipt;
  assert.equal(r.messageId, sent.id);
  assert.equal(r.uid, b.uid);
  assert.equal(r.conversationId, sent.conversationId);

  // Typing goes to the receiver.
  const typing = cb.waitFor("typing");
  ca.typing(b.uid, "start");
  const t = await typing;
  assert.equal(t.sender, a.uid);
  assert.equal(t.state, "start");

  // Edit a text message: the editor gets the reply, the receiver `message.edited` once approved.
  const text = await ca.sendText(b.uid, "first version");
  await cb.waitFor("message", (f) => f.message.id === text.id);
  const editedForBob = cb.waitFor("message.edited", (f) => f.message.id === text.id);
  const edited = await ca.editMessage(text.id, "second version");
  assert.equal(edited.id, text.id);
  assert.equal(edited.text, "second version");
  assert.ok(edited.editedAt > 0);
  assert.equal((await editedForBob).message.text, "second version");

  // Report (flag) as the receiver.
  const flagged = await cb.flag(text.id, "spam", "looks like spam");
  assert.equal(flagged.type, "message.flagged");
  assert.equal(flagged.messageId, text.id);
  assert.equal(flagged.report.reporter, b.uid);
  await assert.rejects(cb.flag(text.id, "spam again"), (e) => e instanceof ParleyError && e.code === "ERR_CONFLICT");

  // Delete: the tombstone, and `message.deleted` to the receiver.
  const deletedForBob = cb.waitFor("message.deleted", (f) => f.message.id === text.id);
  const tomb = await ca.deleteMessage(text.id);
  assert.ok(tomb.deletedAt > 0);
  assert.equal(tomb.text, null);
  assert.equal((await deletedForBob).message.deletedAt, tomb.deletedAt);
});

test("error frames become typed ParleyErrors on the call that caused them", async () => {
  const { a, b, ca, cb } = await pair();
  await assert.rejects(ca.sendText("nobody-" + b.uid, "hi"), (e) => {
    assert.ok(e instanceof ParleyError, String(e));
    assert.equal(e.code, "ERR_NOT_FOUND");
    assert.equal(e.frameType, "message.send");
    assert.equal(e.status, undefined);
    assert.equal(typeof e.message, "string");
    assert.equal(typeof e.details, "object");
    return true;
  });
  assert.equal(ca.pendingSends().length, 0, "a refused send leaves the outbox");
  const sent = await ca.sendCustom(b.uid, "note", {});
  await assert.rejects(cb.editMessage(sent.id, "not mine"), (e) => e.code === "ERR_FORBIDDEN");
  await assert.rejects(ca.deleteMessage(2 ** 40), (e) => e.code === "ERR_NOT_FOUND");
  await assert.rejects(ca.request({ type: "no.such.frame" }), (e) => e.code === "ERR_UNKNOWN_TYPE");
  await assert.rejects(ca.sendText(b.uid, "   "), (e) => e.code === "ERR_BAD_REQUEST" && typeof e.details === "object");
  // A receipt has no reply: its refusal comes as an `error` event naming the frame.
  const error = ca.waitFor("error");
  ca.markRead(sent.id); // one's own message
  const e = await error;
  assert.ok(e instanceof ParleyError);
  assert.equal(e.code, "ERR_BAD_REQUEST");
  assert.equal(e.frameType, "receipt");
  assert.equal(ca.state, "open", "a bad frame leaves the connection open");
  void a;
});

test("history: pages oldest first, backwards with before, hasMore, no duplicates", async () => {
  const { b, ca } = await pair();
  const ids = [];
  for (let i = 0; i < 7; i += 1) ids.push((await ca.sendCustom(b.uid, "n", { i })).id);
  const cid = userConversationId(ca.user.uid, b.uid);
  const first = await ca.rest.historyPage(cid, { limit: 3 });
  assert.deepEqual(first.messages.map((m) => m.id), ids.slice(4));
  assert.equal(first.hasMore, true);
  const second = await ca.rest.historyPage(cid, { limit: 3, before: first.messages[0].id });
  assert.deepEqual(second.messages.map((m) => m.id), ids.slice(1, 4));
  const all = [];
  for await (const page of ca.rest.historyPages(cid, { pageSize: 2 })) all.unshift(...page.messages);
  assert.deepEqual(all.map((m) => m.id), ids);
  assert.deepEqual(all.map((m) => m.data.i), [0, 1, 2, 3, 4, 5, 6]);
  await assert.rejects(ca.rest.historyPage(cid, { limit: 1000 }), (e) => e.status === 400 && e.code === "ERR_BAD_REQUEST");
  const stranger = await makeUser("stranger");
  const rs = new RestClient({ baseUrl: URL_, token: stranger.token });
  await assert.rejects(rs.history(cid), (e) => e.status === 403);
});

test("blocking: a block refuses sends both ways with ERR_BLOCKED, and is lifted", async () => {
  const { a, b, ca, cb } = await pair();
  assert.deepEqual(await cb.rest.block(a.uid), [a.uid]);
  assert.deepEqual(await cb.rest.blockedUsers(), [a.uid]);
  await assert.rejects(ca.sendText(b.uid, "hello?"), (e) => e.code === "ERR_BLOCKED");
  await assert.rejects(cb.sendCustom(a.uid, "n", {}), (e) => e.code === "ERR_BLOCKED");
  assert.deepEqual(await cb.rest.unblock(a.uid), []);
  const sent = await ca.sendCustom(b.uid, "n", {});
  assert.equal(sent.receiver, b.uid);
});

test("groups: create, add a member (group.member), send to the group, receive", async () => {
  const { a, b, ca, cb } = await pair();
  const guid = "g-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
  const group = await ca.rest.createGroup({ guid, name: "Test group", type: "private" });
  assert.equal(group.owner, a.uid);
  const joined = cb.waitFor("group.member", (f) => f.guid === guid);
  const after = await admin().addMember(guid, b.uid);
  assert.ok(after.members.some((m) => m.uid === b.uid));
  const member = await joined;
  assert.equal(member.uid, b.uid);
  assert.equal(member.action, "joined");
  const got = cb.waitFor("message", (f) => f.message.receiver === guid);
  const sent = await ca.sendCustom(guid, "note", { hi: 1 }, { receiverType: "group" });
  assert.equal(sent.conversationId, "group_" + guid);
  assert.equal((await got).message.id, sent.id);
  const left = ca.waitFor("group.member", (f) => f.action === "kicked" || f.action === "left");
  await ca.rest.kick(guid, b.uid);
  assert.equal((await left).uid, b.uid);
});
