// Authentication: the token as the first frame, refusals as typed errors, and the API key.

import assert from "node:assert/strict";
import { after, test } from "node:test";

import { ParleyClient, ParleyConnectionError, ParleyError, RestClient } from "../dist/index.js";
import { API_KEY, closeAll, connect, makeUser, TestWebSocket, URL_ } from "./helpers.mjs";

after(closeAll);

test("auth ok: the first frame carries the token, auth.ok gives the user", async () => {
  const { uid, token } = await makeUser("auth");
  const states = [];
  const client = new ParleyClient({ url: URL_, token, WebSocket: TestWebSocket });
  client.onConnectionStateChange((s) => states.push(s));
  const connected = client.waitFor("connected");
  const user = await client.connect();
  assert.equal(user.uid, uid);
  assert.equal(user.role, "user");
  assert.equal(client.state, "open");
  assert.equal(client.user.uid, uid);
  assert.deepEqual(await connected, { user, reconnected: false });
  assert.ok((await client.ping()) >= 0);
  // A later auth frame with a fresh token keeps the connection (token refresh).
  const fresh = await admin().issueToken(uid);
  assert.equal((await client.refreshToken(fresh.token)).uid, uid);
  client.close();
  assert.equal(client.state, "closed");
  assert.deepEqual(states, ["connecting", "open", "closed"]);
});

test("auth with a token function, and the http URL turned into /ws", async () => {
  const { uid, token } = await makeUser("authfn");
  let calls = 0;
  const client = await connect(async () => {
    calls += 1;
    return token;
  }, { url: URL_ });
  assert.equal(client.url, URL_.replace(/^http/, "ws") + "/ws");
  assert.equal(client.user.uid, uid);
  assert.equal(calls, 1);
});

test("a bad token: ParleyError ERR_AUTH_INVALID with close code 4401, and no reconnect", async () => {
  const client = new ParleyClient({ url: URL_, token: "not-a-jwt", WebSocket: TestWebSocket });
  const reconnecting = [];
  client.on("reconnecting", (e) => reconnecting.push(e));
  await assert.rejects(client.connect(), (error) => {
    assert.ok(error instanceof ParleyError, String(error));
    assert.equal(error.code, "ERR_AUTH_INVALID");
    assert.equal(error.closeCode, 4401);
    assert.equal(typeof error.message, "string");
    assert.equal(typeof error.details, "object");
    assert.equal(error.status, undefined);
    return true;
  });
  assert.equal(client.state, "idle");
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(reconnecting, []);
  client.close();
});

test("a deleted user: ParleyError ERR_FORBIDDEN with close code 4403", async () => {
  const { uid, token } = await makeUser("gone");
  await admin().deleteUser(uid);
  const client = new ParleyClient({ url: URL_, token, WebSocket: TestWebSocket });
  await assert.rejects(client.connect(), (error) => {
    assert.ok(error instanceof ParleyError);
    assert.equal(error.code, "ERR_FORBIDDEN");
    assert.equal(error.closeCode, 4403);
    return true;
  });
  client.close();
});

test("no server there: ParleyConnectionError", async () => {
  const client = new ParleyClient({ url: "ws://127.0.0.1:9/ws", token: "t", WebSocket: TestWebSocket });
  await assert.rejects(client.connect(), ParleyConnectionError);
  client.close();
});

test("requests on a client that is not connected are refused at once", async () => {
  const client = new ParleyClient({ url: URL_, token: "t", WebSocket: TestWebSocket });
  await assert.rejects(client.editMessage(1, "x"), ParleyConnectionError);
  assert.throws(() => client.typing("bob"), ParleyConnectionError);
  client.close();
});

test("REST: the API key creates users and issues tokens; a wrong key is a 401 ParleyError", async () => {
  const rest = admin();
  const { uid } = await makeUser("rest");
  const user = await rest.getUser(uid);
  assert.equal(user.uid, uid);
  const issued = await rest.issueToken(uid, { ttl: 60 });
  assert.equal(issued.uid, uid);
  assert.ok(issued.expiresAt > Date.now() / 1000);
  const updated = await rest.updateUser(uid, { name: "Renamed", tags: ["t1"] });
  assert.equal(updated.name, "Renamed");

  const wrong = new RestClient({ baseUrl: URL_, apiKey: "wrong-key" });
  await assert.rejects(wrong.getUser(uid), (error) => {
    assert.ok(error instanceof ParleyError);
    assert.equal(error.status, 401);
    assert.equal(error.code, "ERR_AUTH_INVALID");
    return true;
  });
  await assert.rejects(rest.getUser("nobody-" + uid), (error) => {
    assert.ok(error instanceof ParleyError);
    assert.equal(error.status, 404);
    assert.equal(error.code, "ERR_NOT_FOUND");
    return true;
  });
  await assert.rejects(rest.createUser({ uid }), (error) => error.status === 409 && error.code === "ERR_CONFLICT");
});

test("the platform's own WebSocket, where there is one (Node >= 22, browsers)", { skip: typeof globalThis.WebSocket !== "function" && "no global WebSocket on this Node" }, async () => {
  const { uid, token } = await makeUser("native");
  const client = new ParleyClient({ url: URL_, token });
  try {
    assert.equal((await client.connect()).uid, uid);
    const sent = await client.sendCustom(uid, "note", { n: 1 });
    assert.equal(sent.sender, uid);
  } finally {
    client.close();
  }
});

function admin() {
  return new RestClient({ baseUrl: URL_, apiKey: API_KEY });
}
