/** Helpers with no state: ids, URLs, conversation ids. */

let counter = 0;

interface CryptoLike {
  randomUUID?: () => string;
  getRandomValues?: <T extends ArrayBufferView | null>(array: T) => T;
}

/**
 * A new client-unique message id (`muid`): 32 hex characters from the platform's crypto when
 * there is one (browsers, React Native with a polyfill, Node >= 19), else from the time, a
 * counter and Math.random (Node 18, where `globalThis.crypto` is not set by default).
 */
export function newMuid(): string {
  const c = (globalThis as { crypto?: CryptoLike }).crypto;
  if (c !== undefined && typeof c.randomUUID === "function") {
    return c.randomUUID().replace(/-/g, "");
  }
  if (c !== undefined && typeof c.getRandomValues === "function") {
    const bytes = c.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  counter = (counter + 1) % 0x100000;
  let random = "";
  while (random.length < 19) random += Math.random().toString(16).slice(2);
  return (
    Date.now().toString(16).padStart(12, "0").slice(-12) +
    counter.toString(16).padStart(5, "0") +
    random.slice(0, 15)
  );
}

/**
 * The WebSocket URL of a server: `ws(s)://...` is kept as is; `http(s)://host[:port]` becomes
 * `ws(s)://host[:port]/ws` (its path kept when it has one).
 */
export function toWebSocketUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  else if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(`not an http(s) or ws(s) URL: ${url}`);
  }
  if (u.pathname === "" || u.pathname === "/") u.pathname = "/ws";
  return u.toString();
}

/** The HTTP base URL of a server from its WebSocket URL (`wss://h/ws` -> `https://h`). */
export function toHttpBaseUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  let path = u.pathname.replace(/\/+$/, "");
  if (path.endsWith("/ws")) path = path.slice(0, -3);
  return `${u.protocol}//${u.host}${path}`;
}

/** The id of the 1:1 conversation between two users: `<uidA>_user_<uidB>`, uids sorted. */
export function userConversationId(uidA: string, uidB: string): string {
  const [a, b] = uidA < uidB ? [uidA, uidB] : [uidB, uidA];
  return `${a}_user_${b}`;
}

/** The id of a group's conversation: `group_<guid>`. */
export function groupConversationId(guid: string): string {
  return `group_${guid}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
