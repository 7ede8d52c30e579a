// Shared setup for the SDK's tests: a real Parley server, named by the environment.
//
//   PARLEY_URL        the server's base URL (http://127.0.0.1:<port>)
//   PARLEY_API_KEY    its API key
//   PARLEY_RESTART_URL, PARLEY_RESTART_API_KEY, PARLEY_CONTROL_DIR
//                     a second server that the driver (tests/e2e/test_js_sdk.py) restarts
//                     when asked (reconnect.test.mjs)
//
// The tests import the built package (dist/), the way an app would.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import WS from "ws";

import { ParleyClient, RestClient } from "../dist/index.js";

export const URL_ = requireEnv("PARLEY_URL");
export const API_KEY = requireEnv("PARLEY_API_KEY");

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run these tests through tests/e2e/test_js_sdk.py, or set ` +
        "PARLEY_URL and PARLEY_API_KEY to a running server (parley serve --insecure-http ...)",
    );
  }
  return value;
}

/**
 * The WebSocket the tests use: the `ws` package (a devDependency), so that they run the same
 * on Node 18, 20 and 22. Every instance is recorded so a test can cut one abruptly.
 */
export class TestWebSocket extends WS {
  static instances = [];

  constructor(url, protocols) {
    super(url, protocols);
    /** When set, the next frame of this type is swallowed; `then` says what follows. */
    this.swallow = undefined;
    this.swallowed = [];
    TestWebSocket.instances.push(this);
  }

  get onmessage() {
    return super.onmessage;
  }

  set onmessage(handler) {
    if (typeof handler !== "function") {
      super.onmessage = handler;
      return;
    }
    super.onmessage = (event) => {
      const s = this.swallow;
      if (s !== undefined && typeof event.data === "string" && JSON.parse(event.data).type === s.type) {
        this.swallow = undefined;
        this.swallowed.push(JSON.parse(event.data));
        if (s.then === "terminate") this.terminate(); // as if the network died: no close frame
        return;
      }
      handler(event);
    };
  }
}

export function unique(prefix) {
  return `${prefix}-${randomUUID().replace(/-/g, "").slice(0, 10)}`;
}

export function admin(url = URL_, apiKey = API_KEY) {
  return new RestClient({ baseUrl: url, apiKey });
}

/** A new user on the server; returns its uid and a token. */
export async function makeUser(prefix = "u", { url = URL_, apiKey = API_KEY, role = "user" } = {}) {
  const rest = admin(url, apiKey);
  const uid = unique(prefix);
  const user = await rest.createUser({ uid, name: uid, role });
  assert.equal(user.uid, uid);
  const issued = await rest.issueToken(uid);
  return { uid, token: issued.token };
}

const opened = [];

/** A connected ParleyClient for `token`, closed by `closeAll()`. */
export async function connect(token, options = {}) {
  const client = new ParleyClient({
    url: options.url ?? URL_,
    token,
    WebSocket: TestWebSocket,
    reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
    ...options,
  });
  opened.push(client);
  await client.connect();
  return client;
}

export function closeAll() {
  for (const client of opened.splice(0)) client.close();
}

/** Every event of `type` that `client` receives from now on. */
export function collect(client, type) {
  const seen = [];
  client.on(type, (payload) => seen.push(payload));
  return seen;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Wait until `check()` is truthy (polling), or fail with `what`. */
export async function eventually(check, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
