// Parley demo chat client. Plain ES module, no dependencies, no build step.
// Every piece of user-supplied text is rendered with textContent, never innerHTML.

import { $, ApiError, el, request, toast } from "./common.js";

// ------------------------------------------------------------------ small helpers

function api(method, path, { body, apiKey, token } = {}) {
  const headers = {};
  if (apiKey) headers["X-API-Key"] = apiKey;
  if (token) headers.Authorization = `Bearer ${token}`;
  return request(method, path, { body, headers });
}

function showApiError(err) {
  if (err instanceof ApiError) toast(err.code, err.message, err.details);
  else toast("ERROR", String(err && err.message ? err.message : err));
}

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The `sub` claim of a JWT, without verifying it (the server does that). */
function jwtSubject(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(part + "===".slice((part.length + 3) % 4));
    const sub = JSON.parse(json).sub;
    return typeof sub === "string" ? sub : null;
  } catch {
    return null;
  }
}

/** The time of day in a bubble (the day is on the separator above it). */
function formatTime(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function safeUrl(url) {
  if (typeof url !== "string") return null;
  try {
    const u = new URL(url, location.href);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

const ID_RE = /^[A-Za-z0-9_-]{1,100}$/;

/** `<uidA>_user_<uidB>` with the uids sorted by plain string comparison, or `group_<guid>`. */
function conversationId(me, kind, peer) {
  if (kind === "group") return `group_${peer}`;
  const [a, b] = me < peer ? [me, peer] : [peer, me];
  return `${a}_user_${b}`;
}

// ------------------------------------------------------------------ state

const state = {
  token: null,
  me: null, // uid
  user: null, // from auth.ok
  ws: null,
  online: false,
  stopped: true, // true after logout: no reconnects
  reconnectDelay: 1000,
  reconnectTimer: null,
  pingTimer: null,
  seq: 0,
  frames: new Map(), // frame id -> {type, muid?, at}
  convs: new Map(), // cid -> conversation
  active: null, // cid
  receipts: new Map(), // message id -> "delivered" | "read"
  moderation: new Map(), // message id -> {ruleId, ruleName, reason}
  decisions: new Map(), // message id -> statement of reasons (decision) of its disapproval
  appeals: new Map(), // decision id -> "open" | "upheld" | "rejected"
  reactions: new Map(), // message id -> {counts: {emoji: n}, mine: Set<emoji>}
  replyTo: null, // the message the next send replies to (its parentId), or null
  receiptsSent: new Set(), // `${id}:${type}`
  typingIn: new Map(), // cid -> Map(uid -> timer)
  typingOut: { cid: null, timer: null },
  blocked: new Set(),
  inbox: { next: null, loading: false, loaded: false }, // GET /me/conversations paging
  names: new Map(), // uid -> display name, from directory searches
  offlineNoticed: false, // the "offline" notice was shown since the last auth.ok
  lastFrameAt: 0, // Date.now() of the last frame from the server (a silent socket is dead)
  search: { timer: null, seq: 0, results: [] },
  draft: null, // {file, kind, previewUrl}: the attachment chosen in the composer, not sent yet
  linkRefresh: new Map(), // message id -> Date.now() of the last fresh-link fetch
  // message id -> {key, node}: media elements kept across re-renders, so that thumbnails are not
  // downloaded again (the server sends them with no-store) and a playing audio keeps playing.
  mediaNodes: new Map(),
};

function nextFrameId(prefix = "c") {
  state.seq += 1;
  return `${prefix}-${state.seq}`;
}

function newConv(kind, peer, title) {
  return {
    cid: conversationId(state.me, kind, peer),
    kind,
    peer,
    title: title || peer,
    sub: "",
    messages: new Map(), // id -> message
    local: new Map(), // muid -> local (not yet stored) message
    loaded: false,
    loading: false,
    hasMore: false,
    unread: 0,
    last: null, // the newest message we know of (the inbox's lastMessage, then live ones)
    updatedAt: 0, // the inbox's updatedAt (a group with no message: when we joined)
  };
}

function ensureConv(kind, peer, title) {
  const cid = conversationId(state.me, kind, peer);
  let conv = state.convs.get(cid);
  if (!conv) {
    conv = newConv(kind, peer, title || (kind === "user" ? state.names.get(peer) : null));
    state.convs.set(cid, conv);
    renderConvList();
  }
  return conv;
}

/** The conversation list from the server (GET /me/conversations): the same on every device. */
async function loadInbox({ more = false } = {}) {
  if (state.inbox.loading || !state.token || (more && !state.inbox.next)) return;
  state.inbox.loading = true;
  const params = new URLSearchParams({ limit: "50" });
  if (more) params.set("before", state.inbox.next);
  try {
    const res = await api("GET", `/api/v1/me/conversations?${params}`, { token: state.token });
    for (const item of (res && Array.isArray(res.conversations)) ? res.conversations : []) {
      const kind = item.conversationType === "group" ? "group" : "user";
      if (!ID_RE.test(item.with || "")) continue;
      const conv = ensureConv(kind, item.with);
      conv.updatedAt = Number(item.updatedAt) || 0;
      if (item.lastMessage && typeof item.lastMessage.id === "number") noteLast(conv, item.lastMessage);
      // The server counts what is unread; the open conversation is being read right now.
      conv.unread = conv.cid === state.active ? 0 : Math.max(0, Number(item.unreadCount) || 0);
    }
    if (!more || state.inbox.next) state.inbox.next = (res && typeof res.next === "string") ? res.next : null;
    state.inbox.loaded = true;
    // Group names for the list (the inbox names groups by guid); a few at a time, once each.
    const unnamed = Array.from(state.convs.values()).filter((c) => c.kind === "group" && !c.sub && !c.named);
    for (const conv of unnamed.slice(0, 20)) {
      conv.named = true;
      fetchGroupInfo(conv).catch(() => { /* a group we left meanwhile: keep its guid */ });
    }
  } catch (err) {
    showApiError(err);
  } finally {
    state.inbox.loading = false;
  }
  renderConvList();
}

function noteLast(conv, m) {
  if (!conv.last || m.id >= conv.last.id) {
    conv.last = m;
    return true;
  }
  return false;
}

function convOfMessage(m) {
  if (m.receiverType === "group") return ensureConv("group", m.receiver);
  const peer = m.sender === state.me ? m.receiver : m.sender;
  return ensureConv("user", peer);
}

// ------------------------------------------------------------------ WebSocket

function setConnState(kind, text, why = "") {
  $("conn-dot").className = `status-dot ${kind}`;
  $("conn-text").textContent = text;
  $("conn-text").title = why;
}

function wsSend(frame) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !state.online) return false;
  ws.send(JSON.stringify(frame));
  return true;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  if (state.stopped) return;
  if (state.ws) { // never two sockets: the old one is forgotten before its events arrive
    const old = state.ws;
    state.ws = null;
    try { old.close(4000, "reconnecting"); } catch { /* already closing */ }
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  setConnState("connecting", "connecting…");
  let ws;
  try {
    ws = new WebSocket(`${scheme}//${location.host}/ws`);
  } catch (err) {
    toast("ERR_NETWORK", String(err.message || err));
    scheduleReconnect();
    return;
  }
  state.ws = ws;
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({ type: "auth", id: nextFrameId("auth"), token: state.token }));
  });
  ws.addEventListener("message", (event) => {
    if (state.ws !== ws) return; // a socket we gave up on
    state.lastFrameAt = Date.now();
    if (typeof event.data !== "string") return;
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    if (frame && typeof frame === "object") handleFrame(frame);
  });
  ws.addEventListener("close", (event) => {
    if (state.ws !== ws) return;
    state.online = false;
    state.ws = null;
    clearInterval(state.pingTimer);
    if (state.stopped) return;
    if (event.code === 4401 || event.code === 4403) {
      toast(
        event.code === 4401 ? "ERR_AUTH_INVALID" : "ERR_FORBIDDEN",
        event.code === 4401 ? "The server rejected the token; sign in again." : "This user is deleted or banned.",
      );
      logout();
      return;
    }
    scheduleReconnect(`disconnected (${event.code})`);
  });
}

/**
 * Try again after a back-off: 1 s, doubling to 30 s, with jitter so that a restarted server is
 * not hit by every client at once. Sends typed meanwhile wait in `conv.local` and go out again,
 * with their muid, on the next auth.ok.
 */
function scheduleReconnect(why = "disconnected") {
  clearTimeout(state.reconnectTimer);
  const delay = state.reconnectDelay + Math.random() * 500;
  state.reconnectDelay = Math.min(state.reconnectDelay * 2, 30000);
  setConnState("offline", `offline, retry in ${Math.max(1, Math.round(delay / 1000))} s`, why);
  state.reconnectTimer = setTimeout(connect, delay);
}

/** Give up on the current socket (it went silent, or the network came back) and reconnect. */
function dropSocket(why) {
  const ws = state.ws;
  state.ws = null;
  state.online = false;
  clearInterval(state.pingTimer);
  if (ws) { try { ws.close(4000, why); } catch { /* already closing */ } }
  if (!state.stopped) scheduleReconnect(why);
}

/** Every 15 s: a ping; a socket with no frame for 40 s (no pong either) is dead. */
function heartbeat() {
  if (!state.online) return;
  if (Date.now() - state.lastFrameAt > 40000) { dropSocket("no answer from the server"); return; }
  wsSend({ type: "ping" });
}

function handleFrame(f) {
  const pending = f.id ? state.frames.get(f.id) : undefined;
  if (f.id && f.type !== "error") state.frames.delete(f.id);
  switch (f.type) {
    case "auth.ok": return onAuthOk(f.user);
    case "message.sent":
    case "message":
      if (f.message) onMessage(f.message, f.type === "message");
      return;
    case "message.moderated":
      if (f.message) onModerated(f.message, f.moderation, f.decision);
      return;
    case "message.reaction":
      onReaction(f);
      return;
    case "moderation.decision":
      if (f.decision) onDecision(f.decision);
      return;
    case "moderation.appeal":
      onAppealOutcome(f);
      return;
    case "report.outcome":
      toast("", f.outcome === "actioned"
        ? "A message you reported was acted on. Thank you."
        : "A message you reported was reviewed; no action was needed.", null, "info");
      return;
    case "message.edited":
    case "message.deleted":
      if (f.message) upsertMessage(f.message);
      return;
    case "receipt": return onReceipt(f);
    case "typing": return onTyping(f);
    case "message.flagged":
      toast("", "Thanks, the message was reported to the moderators.", null, "info");
      return;
    case "group.member":
      onGroupMember(f);
      return;
    case "error": return onError(f, pending);
    case "pong": return;
    default: return; // unknown frames are ignored: the server may add types
  }
}

function onAuthOk(user) {
  state.online = true;
  state.offlineNoticed = false;
  state.reconnectDelay = 1000;
  state.user = user || null;
  if (user && user.uid) state.me = user.uid;
  $("me").textContent = state.user && state.user.name && state.user.name !== state.me
    ? `${state.user.name} (${state.me})` : state.me || "";
  setConnState("online", "connected");
  clearInterval(state.pingTimer);
  state.pingTimer = setInterval(heartbeat, 15000);
  refreshBlocked();
  loadDecisions(); // the reasons (and appeal links) of this user's blocked messages
  loadInbox(); // the list and its unread counts, as the server has them now
  // Anything we missed while offline: reload the latest page of every loaded conversation.
  for (const conv of state.convs.values()) {
    if (conv.loaded) loadHistory(conv, { refresh: true });
  }
  if (state.active) {
    const conv = state.convs.get(state.active);
    if (conv && !conv.loaded) loadHistory(conv);
  }
  // Resend sends that never got their message.sent (muid keeps this idempotent).
  for (const conv of state.convs.values()) {
    for (const local of conv.local.values()) {
      if (local.status === "sending") sendFrameFor(conv, local);
    }
  }
}

function onError(f, pending) {
  if (f.id) state.frames.delete(f.id);
  const id = typeof f.id === "string" ? f.id : "";
  // Receipts and typing are fire-and-forget; their errors (e.g. a block) are not worth a toast.
  if (id.startsWith("r-") || id.startsWith("t-")) {
    console.debug("parley:", f.code, f.message);
    return;
  }
  if (pending && pending.type === "message.send") {
    for (const conv of state.convs.values()) {
      const local = conv.local.get(pending.muid);
      if (local) {
        local.status = "failed";
        local.error = `${f.code}: ${f.message}`;
        if (conv.cid === state.active) renderMessages();
      }
    }
  }
  let message = f.message || "";
  if (f.code === "ERR_RATE_LIMITED" && f.details && f.details.retryAfterMs) {
    message += ` (retry in ${Math.ceil(f.details.retryAfterMs / 1000)} s)`;
  }
  toast(f.code || "ERROR", message, f.details);
}

function onGroupMember(f) {
  const concernsMe = f.uid === state.me;
  const cid = `group_${f.guid}`;
  if (concernsMe && ["kicked", "banned"].includes(f.action)) {
    toast("", `You were ${f.action} from ${f.guid}${f.by ? ` by ${f.by}` : ""}.`, null, "info");
  }
  const conv = state.convs.get(cid);
  if (conv) fetchGroupInfo(conv).then(() => cid === state.active && renderHeader());
}

// ------------------------------------------------------------------ messages

function isDeliverable(m) {
  return m.moderationStatus === "approved" || m.moderationStatus === "unmoderated";
}

function upsertMessage(m, { render = true } = {}) {
  if (!m || typeof m.id !== "number") return null;
  const conv = convOfMessage(m);
  const existing = conv.messages.get(m.id);
  if (!existing && m.parentId && isDeliverable(m) && m.replyCount === undefined) {
    // A live reply: its parent's count moves (history pages carry the stored count).
    const parent = conv.messages.get(m.parentId);
    if (parent) parent.replyCount = (parent.replyCount || 0) + 1;
  }
  if (!existing || (m.updatedAt || 0) >= (existing.updatedAt || 0)) conv.messages.set(m.id, m);
  if (m.moderation && typeof m.moderation === "object") state.moderation.set(m.id, m.moderation);
  if (m.reactions && typeof m.reactions === "object") {
    state.reactions.set(m.id, { counts: { ...m.reactions }, mine: new Set(m.myReactions || []) });
  }
  noteReceipts(m);
  if (m.muid && m.sender === state.me && conv.local.has(m.muid)) dropLocal(conv, m.muid);
  const moved = noteLast(conv, conv.messages.get(m.id));
  if (render && conv.cid === state.active) renderMessages();
  if (render && moved) renderConvList();
  return conv;
}

/** History gives our own messages `receipts: {delivered, read}`: the ticks survive a reload. */
function noteReceipts(m) {
  const r = m.receipts;
  if (!r || typeof r !== "object" || m.sender !== state.me) return;
  if (Number(r.read) > 0) state.receipts.set(m.id, "read");
  else if (Number(r.delivered) > 0 && state.receipts.get(m.id) !== "read") state.receipts.set(m.id, "delivered");
}

function onMessage(m, live) {
  if (typeof m.id !== "number" || typeof m.sender !== "string" || typeof m.receiver !== "string") return;
  const isNew = !convOfMessage(m).messages.has(m.id);
  const conv = upsertMessage(m);
  if (!conv || !live || m.sender === state.me) return;
  if (isNew) stopTypingIndicator(conv.cid, m.sender);
  const visible = conv.cid === state.active && document.visibilityState === "visible";
  if (!visible) {
    if (isNew) conv.unread += 1;
    sendReceipt(m.id, "delivered");
    renderConvList();
  }
  // When visible, renderMessages() has already sent the read receipt.
}

function onModerated(m, moderation, decision) {
  if (moderation && typeof moderation === "object") state.moderation.set(m.id, moderation);
  if (decision && typeof decision === "object") state.decisions.set(m.id, decision);
  upsertMessage(m);
  if (m.moderationStatus === "disapproved") {
    const reason = blockReason(m.id);
    toast("", `Your message was blocked${reason ? `: ${reason}` : "."}`, null, "info");
  }
}

/** Why a message of ours was blocked, in plain words: the decision's explanation, else the
 *  rule's reason. */
function blockReason(id) {
  const decision = state.decisions.get(id);
  if (decision && decision.explanation) return decision.explanation;
  const mod = state.moderation.get(id);
  return mod ? (mod.reason || mod.ruleName) : null;
}

const MEASURE_WORDS = { mute: "muted", kick: "removed from a group", ban: "banned from a group" };

function onDecision(decision) {
  const what = MEASURE_WORDS[decision.measure] || decision.measure;
  const until = decision.until ? ` until ${new Date(decision.until * 1000).toLocaleString()}` : "";
  toast("", `You were ${what}${until}. ${decision.explanation || ""}`.trim(), null, "info");
}

function onAppealOutcome(f) {
  if (f.decisionId) state.appeals.set(f.decisionId, f.outcome);
  const words = f.outcome === "upheld" ? "Your appeal was upheld" : "Your appeal was rejected";
  toast("", `${words}${f.reason ? `: ${f.reason}` : "."}`, null, "info");
  renderMessages();
}

async function loadDecisions() {
  try {
    const res = await api("GET", "/api/v1/me/decisions", { token: state.token });
    for (const d of (res && res.decisions) || []) {
      if (d.measure === "message_disapproved" && d.messageId && !state.decisions.has(d.messageId)) {
        state.decisions.set(d.messageId, d);
      }
    }
    renderMessages();
  } catch (err) {
    // not fatal: blocked messages then show the rule's reason
  }
}

async function appealDecision(decision) {
  const res = await ask({
    title: "Appeal this decision",
    label: "Why should a moderator look at it again?",
    okText: "Send appeal",
  });
  if (!res) return;
  try {
    await api("POST", `/api/v1/decisions/${encodeURIComponent(decision.decisionId)}/appeal`,
      { token: state.token, body: { note: res.text.trim() } });
    state.appeals.set(decision.decisionId, "open");
    toast("", "Your appeal was sent. A moderator will decide.", null, "info");
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) state.appeals.set(decision.decisionId, "open");
    toast(err.code || "", err.message || "The appeal could not be sent.");
  }
  renderMessages();
}

// ------------------------------------------------------------------ reactions, replies

const QUICK_REACTIONS = ["👍", "❤️", "😂"];

function onReaction(f) {
  if (typeof f.messageId !== "number" || !f.reactions) return;
  const entry = state.reactions.get(f.messageId) || { counts: {}, mine: new Set() };
  entry.counts = { ...f.reactions };
  if (f.uid === state.me) {
    if (f.action === "added") entry.mine.add(f.emoji);
    else entry.mine.delete(f.emoji);
  }
  state.reactions.set(f.messageId, entry);
  if (f.conversationId === state.active) renderMessages();
}

function toggleReaction(m, emoji) {
  const entry = state.reactions.get(m.id);
  const type = entry && entry.mine.has(emoji) ? "reaction.remove" : "reaction.add";
  if (!wsSend({ type, id: nextFrameId("x"), messageId: m.id, emoji })) toast("", "Not connected.");
}

function reactionsRow(m) {
  const entry = state.reactions.get(m.id) || { counts: {}, mine: new Set() };
  const row = el("div", { class: "reactions" });
  const shown = new Set();
  for (const [emoji, n] of Object.entries(entry.counts)) {
    if (!n) continue;
    shown.add(emoji);
    row.append(el("button", {
      type: "button", class: `reaction${entry.mine.has(emoji) ? " mine" : ""}`,
      text: `${emoji} ${n}`, title: entry.mine.has(emoji) ? "Remove your reaction" : "React",
      onclick: () => toggleReaction(m, emoji),
    }));
  }
  for (const emoji of QUICK_REACTIONS) {
    if (shown.has(emoji)) continue;
    row.append(el("button", { type: "button", class: "reaction add", text: emoji,
                              title: `React with ${emoji}`, onclick: () => toggleReaction(m, emoji) }));
  }
  return row;
}

function setReplyTo(m) {
  state.replyTo = m ? { id: m.id, cid: state.active, text: m.text || m.type } : null;
  const bar = $("reply-bar");
  if (!bar) return;
  bar.hidden = !state.replyTo;
  $("reply-text").textContent = state.replyTo ? `Replying to: ${state.replyTo.text.slice(0, 80)}` : "";
  if (m) $("composer-text").focus();
}

function replyLine(m, conv) {
  if (!m.parentId) return null;
  const parent = conv.messages.get(m.parentId);
  const snippet = parent ? (parent.text || parent.type || "").slice(0, 60) : `message ${m.parentId}`;
  return el("div", { class: "reply-to muted small", text: `↳ reply to ${snippet}` });
}

function onReceipt(f) {
  if (typeof f.messageId !== "number") return;
  const current = state.receipts.get(f.messageId);
  if (current === "read") return;
  state.receipts.set(f.messageId, f.receiptType === "read" ? "read" : "delivered");
  if (f.conversationId === state.active) renderMessages();
}

function sendReceipt(messageId, receiptType) {
  const key = `${messageId}:${receiptType}`;
  if (state.receiptsSent.has(key)) return;
  if (receiptType === "delivered" && state.receiptsSent.has(`${messageId}:read`)) return;
  if (wsSend({ type: "receipt", id: nextFrameId("r"), messageId, receiptType })) state.receiptsSent.add(key);
}

function sendFrameFor(conv, local) {
  const id = nextFrameId("c");
  state.frames.set(id, { type: "message.send", muid: local.muid, at: Date.now() });
  const ok = wsSend({
    type: "message.send",
    id,
    muid: local.muid,
    receiverType: conv.kind,
    receiver: conv.peer,
    category: "message",
    messageType: local.media ? local.messageType : "text",
    ...(local.media ? { mediaId: local.media.mediaId } : {}),
    ...(local.media && !local.text.trim() ? {} : { text: local.text }),
    metadata: {},
    tags: [],
    parentId: local.parentId || null,
  });
  if (!ok) state.frames.delete(id); // resent on the next auth.ok
  return ok;
}

function sendMessage(text) {
  const conv = state.convs.get(state.active);
  if (!conv) return;
  const local = { muid: randomId(), text, sender: state.me, status: "sending", createdAt: Date.now() / 1000 };
  if (state.replyTo && state.replyTo.cid === conv.cid) local.parentId = state.replyTo.id;
  setReplyTo(null);
  conv.local.set(local.muid, local);
  if (!sendFrameFor(conv, local)) offlineNotice();
  renderMessages({ toBottom: true });
}

/** Once per disconnection: sends wait in the conversation and go out on reconnect. */
function offlineNotice() {
  if (state.offlineNoticed) return;
  state.offlineNoticed = true;
  toast("", "Offline: messages will be sent when the connection is back.", null, "info");
}

function dropLocal(conv, muid) {
  const local = conv.local.get(muid);
  if (!local) return;
  if (local.xhr) local.xhr.abort();
  if (local.previewUrl) URL.revokeObjectURL(local.previewUrl);
  conv.local.delete(muid);
}

// ------------------------------------------------------------------ media

const MEDIA_TYPES = new Set(["image", "video", "audio", "file"]);
// What the server accepts per kind (docs/protocol.md, Media): anything else goes as a `file`.
const IMAGE_MIME = new Set(["image/jpeg", "image/png", "image/gif", "image/webp", "image/apng"]);

/** The kind we claim for a file; the server checks its bytes and has the last word. */
function kindOf(file) {
  const type = (file.type || "").toLowerCase();
  if (IMAGE_MIME.has(type)) return "image";
  if (type.startsWith("video/")) return "video";
  if (type.startsWith("audio/")) return "audio";
  return "file";
}

/** A small badge with the file's extension ("PDF", "ZIP"), instead of an emoji icon. */
function fileBadge(name, kind) {
  const match = /\.([A-Za-z0-9]{1,5})$/.exec(name || "");
  const label = kind === "audio" ? "♪" : kind === "video" ? "▶" : match ? match[1].toUpperCase() : "FILE";
  return el("span", { class: `file-icon ${kind || ""}`, text: label, "aria-hidden": "true" });
}

function formatSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1048576).toFixed(1)} MB`;
  return `${(n / 1073741824).toFixed(2)} GB`;
}

function formatDuration(seconds) {
  const n = Math.round(Number(seconds));
  if (!Number.isFinite(n) || n <= 0) return "";
  return `${Math.floor(n / 60)}:${String(n % 60).padStart(2, "0")}`;
}

function setDraft(file) {
  clearDraft();
  if (!file) return;
  const kind = kindOf(file);
  const previewUrl = kind === "image" || kind === "video" ? URL.createObjectURL(file) : null;
  state.draft = { file, kind, previewUrl };
  renderDraft();
  if (matchMedia("(min-width: 701px)").matches) $("composer-text").focus();
}

function clearDraft({ keepUrl = false } = {}) {
  const d = state.draft;
  if (d && d.previewUrl && !keepUrl) URL.revokeObjectURL(d.previewUrl);
  state.draft = null;
  $("attach-input").value = "";
  renderDraft();
}

function renderDraft() {
  const box = $("attach-preview");
  const d = state.draft;
  box.hidden = !d;
  if (!d) { box.replaceChildren(); return; }
  let visual;
  if (d.kind === "image") {
    visual = el("img", { class: "attach-thumb", src: d.previewUrl, alt: "" });
    visual.addEventListener("error", () => visual.replaceWith(fileBadge(d.file.name, "file")), { once: true });
  }
  else if (d.kind === "video") visual = el("video", { class: "attach-thumb", src: d.previewUrl, muted: true, preload: "metadata" });
  else visual = fileBadge(d.file.name, d.kind);
  box.replaceChildren(
    visual,
    el("div", { class: "attach-info" },
      el("div", { class: "name", text: d.file.name || "file", title: d.file.name || "" }),
      el("div", { class: "muted small", text: `${d.kind} · ${formatSize(d.file.size)}` })),
    el("button", { type: "button", class: "secondary", text: "Cancel", "aria-label": "Remove the attachment",
      onclick: () => clearDraft() }),
  );
}

/** Human words for an upload refusal (413/415 carry the server's own message and details). */
function uploadErrorText(err, local) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  if (err.status === 413) {
    const limit = err.details && err.details.limit;
    const pixels = err.details && err.details.maxPixels;
    if (pixels) return `Image too large: over ${Number(pixels).toLocaleString()} pixels.`;
    return `File too large (${formatSize(local.file.size)})${limit ? `: the limit for ${local.kind} files is ${formatSize(limit)}` : ""}.`;
  }
  if (err.status === 415) return `This file type is not accepted as ${local.kind}: ${err.message}`;
  if (err.status === 0) {
    return `Upload failed (${err.message}). If the file is big, it may be over the server's size limit.`;
  }
  return `${err.code}: ${err.message}`;
}

/** POST /api/v1/media with upload progress; resolves to the media object, rejects with ApiError. */
function uploadFile(local, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    local.xhr = xhr;
    xhr.open("POST", `/api/v1/media?kind=${encodeURIComponent(local.kind)}`);
    xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      local.xhr = null;
      let body = null;
      try { body = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { body = null; }
      if (xhr.status >= 200 && xhr.status < 300 && body && typeof body.mediaId === "string") resolve(body);
      else reject(new ApiError(xhr.status, body));
    });
    const fail = (what) => () => {
      local.xhr = null;
      reject(new ApiError(0, { code: what === "abort" ? "ERR_ABORTED" : "ERR_NETWORK", message: what === "abort" ? "cancelled" : "connection failed" }));
    };
    xhr.addEventListener("error", fail("error"));
    xhr.addEventListener("abort", fail("abort"));
    const form = new FormData();
    form.append("file", local.file, local.file.name || "file");
    xhr.send(form);
  });
}

async function startUpload(conv, local) {
  local.status = "uploading";
  local.retryable = true;
  local.progress = 0;
  local.error = null;
  renderIfActive(conv);
  try {
    local.media = await uploadFile(local, (p) => {
      local.progress = p;
      const bar = document.querySelector(`[data-muid="${CSS.escape(local.muid)}"] progress`);
      if (bar) bar.value = p;
    });
  } catch (err) {
    if (!conv.local.has(local.muid)) return; // discarded meanwhile
    local.status = "failed";
    local.error = uploadErrorText(err, local);
    local.canSendAsFile = err instanceof ApiError && err.status === 415 && local.kind !== "file";
    // A refusal of the file itself (too large, wrong type) will not change on a retry.
    local.retryable = !(err instanceof ApiError && (err.status === 413 || err.status === 415));
    if (!(err instanceof ApiError && err.code === "ERR_ABORTED")) toast(err.code || "ERROR", local.error, err.details);
    renderIfActive(conv);
    return;
  }
  if (!conv.local.has(local.muid)) return;
  // The server decides what the file really is.
  local.messageType = MEDIA_TYPES.has(local.media.kind) ? local.media.kind : local.kind;
  local.status = "sending";
  if (!sendFrameFor(conv, local)) offlineNotice();
  renderIfActive(conv);
}

function renderIfActive(conv) {
  if (conv.cid === state.active) renderMessages();
}

function sendAttachment(text) {
  const conv = state.convs.get(state.active);
  const d = state.draft;
  if (!conv || !d) return;
  const local = {
    muid: randomId(), text, sender: state.me, status: "uploading", createdAt: Date.now() / 1000,
    file: d.file, kind: d.kind, previewUrl: d.previewUrl, media: null, messageType: d.kind,
  };
  clearDraft({ keepUrl: true }); // the local bubble owns the preview URL now
  conv.local.set(local.muid, local);
  renderMessages({ toBottom: true });
  startUpload(conv, local);
}

/** Fetch a message again for fresh media links (they expire); at most once per 20 s per message. */
async function refreshLinks(m) {
  const last = state.linkRefresh.get(m.id) || 0;
  if (Date.now() - last < 20000 || !state.token) return null;
  state.linkRefresh.set(m.id, Date.now());
  try {
    const res = await api("GET", `/api/v1/messages/${encodeURIComponent(m.id)}`, { token: state.token });
    const fresh = res && res.message;
    if (fresh && fresh.id === m.id) {
      const conv = convOfMessage(fresh);
      conv.messages.set(fresh.id, fresh); // same updatedAt: upsert would keep the stale copy
      renderIfActive(conv);
      return fresh;
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null; // gone, withdrawn or blocked
    console.debug("parley: refreshing links failed", err);
  }
  return null;
}

function linkExpired(att) {
  const exp = Number(att && att.urlExpiresAt);
  return Number.isFinite(exp) && exp > 0 && exp * 1000 < Date.now() + 5000;
}

/** Open the full image/video/audio in the viewer dialog (with fresh links when they expired). */
async function openViewer(m) {
  let att = m.attachment;
  if (linkExpired(att)) {
    const fresh = await refreshLinks(m);
    if (fresh && fresh.attachment) att = fresh.attachment;
  }
  const url = safeUrl(att && att.url);
  if (!url) { toast("", "This file is not available any more.", null, "info"); return; }
  const name = att.name || m.type;
  let media;
  if (m.type === "image") media = el("img", { src: url, alt: name });
  else if (m.type === "video") media = el("video", { src: url, controls: true, autoplay: true, playsInline: true, poster: safeUrl(att.thumbnailUrl) || undefined });
  else media = el("audio", { src: url, controls: true, autoplay: true });
  media.addEventListener("error", () => viewerFailed(m, media, url), { once: true });
  $("viewer-title").textContent = `${name}${att.size ? ` · ${formatSize(att.size)}` : ""}`;
  const dl = $("viewer-download");
  dl.href = url;
  dl.setAttribute("download", name);
  dl.hidden = false;
  $("viewer-body").replaceChildren(media);
  $("viewer").showModal();
}

/** The viewer could not show the file: an expired link (fetch fresh ones) or a format this browser cannot play. */
async function viewerFailed(m, media, url) {
  const say = (text) => $("viewer-body").append(el("p", { class: "muted", text }));
  let status = 0;
  try { status = (await fetch(url, { method: "HEAD", cache: "no-store" })).status; } catch { status = 0; }
  if (!media.isConnected) return;
  if (status >= 200 && status < 300) {
    say(`This browser cannot ${m.type === "image" ? "show" : "play"} this file's format (${(m.attachment && m.attachment.mimeType) || "unknown"}). Use Download.`);
    return;
  }
  state.linkRefresh.delete(m.id); // the link is stale or refused: ask for a fresh one now
  const fresh = await refreshLinks(m);
  const freshUrl = fresh && fresh.attachment && safeUrl(fresh.attachment.url);
  if (freshUrl && freshUrl !== url && media.isConnected) {
    media.addEventListener("error", () => say("Could not load the file."), { once: true });
    media.src = freshUrl;
    $("viewer-download").href = freshUrl;
  } else if (media.isConnected) {
    say("This file is not available (any more).");
  }
}

function closeViewer() {
  const dialog = $("viewer");
  for (const node of $("viewer-body").querySelectorAll("video, audio")) node.pause();
  $("viewer-body").replaceChildren();
  if (dialog.open) dialog.close();
}

/** The attachment part of a message bubble, reused while its links and status are unchanged. */
function attachmentView(m) {
  const att = m.attachment;
  const key = [m.type, m.moderationStatus, att.url, att.thumbnailUrl, att.name].join("\n");
  const cached = state.mediaNodes.get(m.id);
  if (cached && cached.key === key) return cached.node;
  const node = buildAttachmentView(m);
  state.mediaNodes.set(m.id, { key, node });
  return node;
}

/** A thumbnail (click: the viewer), an audio player, or a download link. */
function buildAttachmentView(m) {
  const att = m.attachment;
  const name = att.name || m.type;
  const sizeText = [formatSize(att.size), formatDuration(att.duration)].filter(Boolean).join(" · ");
  if (m.moderationStatus === "disapproved") {
    return el("div", { class: "media-blocked" },
      el("span", { class: "file-name", text: name }),
      el("span", { class: "muted small", text: `${m.type} not shown: blocked by moderation` }));
  }
  const url = safeUrl(att.url);
  const thumb = safeUrl(att.thumbnailUrl) || (m.type === "image" ? url : null);
  const retry = () => { refreshLinks(m); };
  if ((m.type === "image" || m.type === "video") && thumb) {
    const img = el("img", { class: "media-thumb-img", src: thumb, alt: name, loading: "lazy" });
    img.addEventListener("error", retry, { once: true });
    const w = Number(att.width);
    const h = Number(att.height);
    if (w > 0 && h > 0) { // reserve the space, so the list does not jump when it loads
      const scale = Math.min(240 / w, 240 / h, 1);
      img.width = Math.max(1, Math.round(w * scale));
      img.height = Math.max(1, Math.round(h * scale));
    }
    return el("button", { type: "button", class: `media-thumb ${m.type}`, title: `Open ${name}`, onclick: () => openViewer(m) },
      img,
      m.type === "video" ? el("span", { class: "play", text: "▶", "aria-hidden": "true" }) : null,
      m.type === "video" && sizeText ? el("span", { class: "dur", text: sizeText }) : null);
  }
  if (m.type === "audio" && url) {
    const audio = el("audio", { class: "media-audio", src: url, controls: true, preload: "none" });
    audio.addEventListener("error", retry, { once: true });
    return el("div", { class: "media-file" }, audio, el("div", { class: "muted small", text: [name, sizeText].filter(Boolean).join(" · ") }));
  }
  if (m.type === "video" && url) {
    return el("button", { type: "button", class: "media-file as-button", onclick: () => openViewer(m) },
      fileBadge(name, "video"),
      el("span", { class: "file-name", text: name }), el("span", { class: "muted small", text: sizeText }));
  }
  if (url) {
    const link = el("a", { class: "media-file", href: url, download: name, rel: "noopener noreferrer" },
      fileBadge(name, m.type),
      el("span", { class: "file-name", text: name }), el("span", { class: "muted small", text: sizeText }));
    link.addEventListener("click", async (event) => {
      if (!linkExpired(m.attachment)) return;
      event.preventDefault();
      const fresh = await refreshLinks(m);
      const freshUrl = fresh && fresh.attachment && safeUrl(fresh.attachment.url);
      if (freshUrl) { link.href = freshUrl; link.click(); }
    });
    return link;
  }
  // No link for us (the server issues none, e.g. while pending for receivers).
  return el("div", { class: "media-file" },
    fileBadge(name, m.type),
    el("span", { class: "file-name", text: name }),
    el("span", { class: "muted small", text: [m.moderationStatus === "pending" ? "awaiting moderation" : "not available", sizeText].filter(Boolean).join(" · ") }));
}

async function loadHistory(conv, { older = false, refresh = false } = {}) {
  if (conv.loading || !state.token) return;
  conv.loading = true;
  const params = new URLSearchParams({ limit: "50" });
  if (older && conv.messages.size) params.set("before", String(Math.min(...conv.messages.keys())));
  const scroller = $("messages");
  const before = { height: scroller.scrollHeight, top: scroller.scrollTop };
  const known = refresh ? lastId(conv) : 0;
  const path = `/api/v1/conversations/${encodeURIComponent(conv.cid)}/messages`;
  try {
    let res = await api("GET", `${path}?${params}`, { token: state.token });
    let list = (res && Array.isArray(res.messages)) ? res.messages : [];
    for (const m of list) upsertMessage(m, { render: false });
    const more = typeof res.hasMore === "boolean" ? res.hasMore : list.length === 50;
    // After a reconnect: page back until we meet what we had, so that nothing missed while
    // offline is skipped (at most 20 pages; past that, "Load older messages" remains).
    for (let pages = 0; refresh && known && res.hasMore && list.length && list[0].id > known && pages < 20; pages++) {
      params.set("before", String(list[0].id));
      res = await api("GET", `${path}?${params}`, { token: state.token });
      list = (res && Array.isArray(res.messages)) ? res.messages : [];
      for (const m of list) upsertMessage(m, { render: false });
    }
    if (older || !refresh || !conv.loaded) conv.hasMore = more;
    conv.loaded = true;
  } catch (err) {
    if (conv.cid === state.active) showApiError(err);
  } finally {
    conv.loading = false;
  }
  if (conv.cid === state.active) {
    if (older) {
      renderMessages({ keep: before });
    } else {
      renderMessages({ toBottom: !refresh });
    }
  }
  renderConvList();
}

// ------------------------------------------------------------------ typing

function onTyping(f) {
  if (!f.sender || f.sender === state.me) return;
  const cid = f.receiverType === "group" ? `group_${f.receiver}` : conversationId(state.me, "user", f.sender);
  let who = state.typingIn.get(cid);
  if (!who) { who = new Map(); state.typingIn.set(cid, who); }
  clearTimeout(who.get(f.sender));
  if (f.state === "start") {
    who.set(f.sender, setTimeout(() => stopTypingIndicator(cid, f.sender), 8000));
  } else {
    who.delete(f.sender);
  }
  if (cid === state.active) renderTyping();
}

function stopTypingIndicator(cid, uid) {
  const who = state.typingIn.get(cid);
  if (!who || !who.has(uid)) return;
  clearTimeout(who.get(uid));
  who.delete(uid);
  if (cid === state.active) renderTyping();
}

function renderTyping() {
  const who = state.typingIn.get(state.active);
  const names = who ? Array.from(who.keys()) : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  $("typing").textContent = text;
}

function typingFrame(conv, st) {
  wsSend({ type: "typing", id: nextFrameId("t"), receiver: conv.peer, receiverType: conv.kind, state: st });
}

function noteTyping() {
  const conv = state.convs.get(state.active);
  if (!conv) return;
  const out = state.typingOut;
  if (out.cid !== conv.cid) {
    stopTyping();
    out.cid = conv.cid;
    typingFrame(conv, "start");
  }
  clearTimeout(out.timer);
  out.timer = setTimeout(stopTyping, 3000);
}

function stopTyping() {
  const out = state.typingOut;
  clearTimeout(out.timer);
  if (out.cid) {
    const conv = state.convs.get(out.cid);
    if (conv) typingFrame(conv, "end");
  }
  out.cid = null;
}

// ------------------------------------------------------------------ dialog

/** A small modal: resolves {text, choice} or null when cancelled. */
function ask({ title, label, value = "", okText = "OK", choices = null, choiceLabel = "", required = true }) {
  const dialog = $("dialog");
  $("dialog-title").textContent = title;
  $("dialog-text-label").textContent = label;
  const text = $("dialog-text");
  text.value = value;
  text.required = required;
  $("dialog-ok").textContent = okText;
  const selectField = $("dialog-select-field");
  const select = $("dialog-select");
  select.replaceChildren();
  if (choices) {
    selectField.hidden = false;
    $("dialog-select-label").textContent = choiceLabel;
    for (const c of choices) select.append(el("option", { value: c, text: c }));
  } else {
    selectField.hidden = true;
  }
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? { text: text.value, choice: select.value } : null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    text.focus();
  });
}

// ------------------------------------------------------------------ actions

async function editMessage(m) {
  const res = await ask({ title: "Edit message", label: "Text", value: m.text || "", okText: "Save" });
  if (!res || !res.text.trim() || res.text === m.text) return;
  const id = nextFrameId("c");
  state.frames.set(id, { type: "message.edit", at: Date.now() });
  if (!wsSend({ type: "message.edit", id, messageId: m.id, text: res.text })) toast("", "Not connected.");
}

function deleteMessage(m) {
  if (!confirm("Delete this message for everyone?")) return;
  const id = nextFrameId("c");
  state.frames.set(id, { type: "message.delete", at: Date.now() });
  if (!wsSend({ type: "message.delete", id, messageId: m.id })) toast("", "Not connected.");
}

const REPORT_REASONS = ["spam", "harassment", "hate", "sexual content", "violence", "scam", "self-harm", "other"];
/** The report category (PROTOCOL.md) each reason files under. */
const REPORT_CATEGORY = { "spam": "spam", "harassment": "harassment", "hate": "hate",
  "sexual content": "sexual", "violence": "violence", "scam": "spam", "self-harm": "self_harm",
  "other": "other" };

async function reportMessage(m) {
  const res = await ask({
    title: `Report message from ${m.sender}`,
    choices: REPORT_REASONS,
    choiceLabel: "Reason",
    label: "Remarks (optional)",
    required: false,
    okText: "Report",
  });
  if (!res) return;
  const id = nextFrameId("c");
  state.frames.set(id, { type: "message.flag", at: Date.now() });
  const frame = { type: "message.flag", id, messageId: m.id, reason: res.choice,
                  remarks: res.text.trim(), category: REPORT_CATEGORY[res.choice] || "other" };
  if (!wsSend(frame)) {
    toast("", "Not connected.");
  }
}

async function refreshBlocked() {
  try {
    const res = await api("GET", "/api/v1/me/blocked-users", { token: state.token });
    state.blocked = new Set((res && res.uids) || []);
    renderHeader();
  } catch { /* not essential */ }
}

async function toggleBlock(uid) {
  const blocked = state.blocked.has(uid);
  if (!blocked && !confirm(`Block ${uid}? You will no longer exchange messages.`)) return;
  try {
    const res = blocked
      ? await api("DELETE", `/api/v1/me/blocked-users/${encodeURIComponent(uid)}`, { token: state.token })
      : await api("POST", "/api/v1/me/blocked-users", { token: state.token, body: { uids: [uid] } });
    if (res && Array.isArray(res.uids)) state.blocked = new Set(res.uids);
    else if (blocked) state.blocked.delete(uid);
    else state.blocked.add(uid);
    toast("", blocked ? `Unblocked ${uid}.` : `Blocked ${uid}.`, null, "info");
    renderHeader();
    renderMessages();
  } catch (err) {
    showApiError(err);
  }
}

async function fetchGroupInfo(conv) {
  const g = await api("GET", `/api/v1/groups/${encodeURIComponent(conv.peer)}`, { token: state.token });
  conv.title = (g && g.name) || conv.peer;
  const count = g && (g.membersCount ?? (Array.isArray(g.members) ? g.members.length : null));
  conv.sub = [g && g.type, count !== null && count !== undefined ? `${count} members` : null].filter(Boolean).join(" · ");
  renderConvList();
  return g;
}

async function openConversation(kind, peer, { strict = false } = {}) {
  if (!state.me) return;
  if (kind === "user" && peer === state.me) {
    toast("ERR_BAD_REQUEST", "That is you; enter another user's uid.");
    return;
  }
  if (kind === "group") {
    try {
      const conv = ensureConv("group", peer);
      await fetchGroupInfo(conv);
    } catch (err) {
      showApiError(err);
      if (strict) {
        const cid = conversationId(state.me, "group", peer);
        const conv = state.convs.get(cid);
        if (conv && !conv.messages.size && !conv.last) { state.convs.delete(cid); renderConvList(); }
        return;
      }
    }
  }
  const conv = ensureConv(kind, peer);
  if (kind === "user" && state.names.has(peer) && conv.title === peer) conv.title = state.names.get(peer);
  selectConversation(conv.cid);
}

function selectConversation(cid) {
  if (state.active !== cid) { stopTyping(); clearDraft(); }
  state.active = cid;
  const conv = state.convs.get(cid);
  $("chat-view").classList.toggle("has-active", Boolean(conv));
  $("composer").hidden = !conv;
  if (!conv) { renderAll(); return; }
  conv.unread = 0;
  renderAll({ toBottom: true });
  if (!conv.loaded) loadHistory(conv);
  if (conv.kind === "group" && !conv.sub) fetchGroupInfo(conv).then(renderHeader).catch(() => {});
  if (matchMedia("(min-width: 701px)").matches) $("composer-text").focus();
}

// ------------------------------------------------------------------ directory search

/** Look the typed prefix up in the user directory (GET /users?search=) and list the matches. */
async function runSearch() {
  const value = $("open-id").value.trim();
  const seq = ++state.search.seq;
  if (!value || !state.token) { renderSearch([], value); return; }
  if (value.startsWith("#")) { renderSearch([], value); return; }
  const prefix = value.replace(/^@/, "");
  let users = [];
  try {
    const res = await api("GET", `/api/v1/users?${new URLSearchParams({ search: prefix, limit: "8" })}`, { token: state.token });
    users = (res && Array.isArray(res.users)) ? res.users.filter((u) => u && ID_RE.test(u.uid || "") && u.uid !== state.me) : [];
  } catch (err) {
    if (seq === state.search.seq) showApiError(err);
  }
  if (seq !== state.search.seq) return; // a newer keystroke's answer wins
  renderSearch(users, value);
}

function renderSearch(users, value) {
  state.search.results = users;
  for (const u of users) if (typeof u.name === "string" && u.name) state.names.set(u.uid, u.name);
  const box = $("search-results");
  const items = users.map((u) => el("li", {},
    el("button", { type: "button", class: "search-result", "data-uid": u.uid, onclick: () => pickUser(u) },
      el("span", { class: "avatar", text: (u.name || u.uid).slice(0, 1).toUpperCase(), "aria-hidden": "true" }),
      el("span", { class: "conv-main" },
        el("span", { class: "title", text: u.name || u.uid }),
        el("span", { class: "preview", text: `@${u.uid}` })))));
  const typed = value.replace(/^[@#]/, "");
  if (value && ID_RE.test(typed) && (value.startsWith("#") || !users.some((u) => u.uid === typed))) {
    const kind = value.startsWith("#") ? "group" : "user";
    items.push(el("li", {}, el("button", { type: "button", class: "search-result raw",
      onclick: () => { clearSearch(); openConversation(kind, typed, { strict: true }); } },
      el("span", { class: "muted small", text: kind === "group" ? `Open group #${typed}` : `Open a chat with the uid "${typed}"` }))));
  }
  if (value && !value.startsWith("#") && !users.length) {
    items.unshift(el("li", { class: "muted small empty-list", text: "Nobody found. You can find people you share a group with (or everyone, if the server allows it)." }));
  }
  box.replaceChildren(...items);
  box.hidden = !items.length;
}

function pickUser(u) {
  if (typeof u.name === "string" && u.name) state.names.set(u.uid, u.name);
  clearSearch();
  openConversation("user", u.uid);
}

function clearSearch() {
  clearTimeout(state.search.timer);
  state.search.seq += 1;
  state.search.results = [];
  $("open-id").value = "";
  $("search-results").replaceChildren();
  $("search-results").hidden = true;
}

// ------------------------------------------------------------------ rendering

function renderAll(opts) {
  renderConvList();
  renderHeader();
  renderMessages(opts);
  renderTyping();
}

/** When a conversation last moved: its newest message, else (a group) when we joined. */
function activityOf(conv) {
  return conv.last ? Number(conv.last.sentAt) || 0 : conv.updatedAt;
}

/** One line for the inbox: what the newest message says, as its reader would see it. */
function previewText(m) {
  if (!m) return "No messages yet";
  const who = m.sender === state.me ? "You: " : "";
  if (m.deletedAt) return `${who}message deleted`;
  if (m.sender === state.me && m.moderationStatus === "disapproved") return `${who}blocked by moderation`;
  let text;
  if (m.category && m.category !== "message") text = `[${m.type}]`;
  else if (MEDIA_TYPES.has(m.type)) text = m.text || (m.attachment && m.attachment.name) || `[${m.type}]`;
  else text = m.text || "";
  if (MEDIA_TYPES.has(m.type) && m.category === "message") text = `${m.type === "image" ? "Photo" : m.type === "file" ? "File" : m.type[0].toUpperCase() + m.type.slice(1)}: ${text}`;
  return who + text.replace(/\s+/g, " ").slice(0, 120);
}

/** A short time for the list: 14:05 today, "Yesterday", then "Mar 3" (and the year if not this one). */
function shortTime(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], d.getFullYear() === now.getFullYear()
    ? { month: "short", day: "numeric" } : { year: "numeric", month: "short", day: "numeric" });
}

function renderConvList() {
  const list = $("conv-list");
  const items = Array.from(state.convs.values())
    .sort((a, b) => activityOf(b) - activityOf(a) || lastId(b) - lastId(a) || a.title.localeCompare(b.title));
  list.replaceChildren(...items.map((conv) => {
    const when = activityOf(conv);
    return el("li", { class: conv.cid === state.active ? "active" : "", "data-cid": conv.cid },
      el("button", { type: "button", onclick: () => selectConversation(conv.cid) },
        el("span", { class: "avatar", text: conv.kind === "group" ? "#" : (conv.title || conv.peer).slice(0, 1).toUpperCase(), "aria-hidden": "true" }),
        el("span", { class: "conv-main" },
          el("span", { class: "conv-top" },
            el("span", { class: "title", text: conv.kind === "group" ? `# ${conv.title}` : conv.title, title: conv.cid }),
            el("span", { class: "time", text: shortTime(when), title: when ? new Date(when * 1000).toLocaleString() : "" })),
          el("span", { class: "conv-bottom" },
            el("span", { class: "preview", text: previewText(conv.last) }),
            conv.unread ? el("span", { class: "unread", text: conv.unread > 99 ? "99+" : String(conv.unread), "aria-label": `${conv.unread} unread` }) : null)),
      ));
  }));
  if (state.inbox.next) {
    list.append(el("li", { class: "more" }, el("button", { type: "button", class: "secondary", text: "More conversations",
      onclick: () => loadInbox({ more: true }) })));
  }
  if (!items.length) {
    list.append(el("li", { class: "muted small empty-list" },
      state.inbox.loaded ? "No conversations yet. Search for someone above to start one." : "Loading conversations…"));
  }
}

function lastId(conv) {
  let max = 0;
  for (const id of conv.messages.keys()) if (id > max) max = id;
  return max;
}

function renderHeader() {
  const conv = state.convs.get(state.active);
  $("conv-title").textContent = conv ? (conv.kind === "group" ? `# ${conv.title}` : conv.title) : "No conversation open";
  $("conv-sub").textContent = !conv ? "" : conv.kind === "group" ? conv.sub || conv.peer
    : conv.title !== conv.peer ? `@${conv.peer}` : "";
  const btn = $("block-btn");
  if (conv && conv.kind === "user") {
    btn.hidden = false;
    btn.textContent = state.blocked.has(conv.peer) ? "Unblock" : "Block";
    btn.onclick = () => toggleBlock(conv.peer);
  } else {
    btn.hidden = true;
    btn.onclick = null;
  }
}

function messageBody(m) {
  if (m.deletedAt) return el("div", { class: "body", text: "This message was deleted." });
  if (m.category === "custom" || (m.category && m.category !== "message")) {
    let data = "";
    try { data = JSON.stringify(m.data); } catch { data = String(m.data); }
    return el("div", { class: "body custom", text: `[${m.type}] ${data ?? ""}` });
  }
  const body = el("div", { class: "body" });
  const att = m.attachment;
  if (att && typeof att === "object") {
    body.classList.add("has-media");
    body.append(attachmentView(m));
    if (m.text) body.append(el("div", { class: "caption", text: m.text }));
  } else if (MEDIA_TYPES.has(m.type)) {
    body.classList.add("has-media");
    body.append(el("span", { class: "muted", text: `[${m.type}]` }));
    if (m.text) body.append(el("div", { class: "caption", text: m.text }));
  } else {
    body.textContent = m.text ?? "";
  }
  return body;
}

function statusBadge(status, m) {
  if (status === "pending") {
    const media = m && MEDIA_TYPES.has(m.type);
    return el("span", { class: "badge pending", text: media ? "pending review" : "pending",
      title: media ? "Held for moderation: the receivers see it once approved" : "Held for moderation" });
  }
  if (status === "disapproved") return el("span", { class: "badge disapproved", text: "blocked" });
  return null;
}

function renderMessage(m, conv) {
  const mine = m.sender === state.me;
  const status = m.moderationStatus;
  const classes = ["msg"];
  if (mine) classes.push("mine");
  if (status === "pending") classes.push("pending");
  if (status === "disapproved") classes.push("disapproved");
  if (m.deletedAt) classes.push("deleted");

  const meta = el("div", { class: "meta" },
    !mine || conv.kind === "group" ? el("span", { class: "sender", text: mine ? "you" : m.sender }) : null,
    el("span", { text: formatTime(m.sentAt), title: m.sentAt ? new Date(m.sentAt * 1000).toLocaleString() : "" }),
    m.editedAt && !m.deletedAt ? el("span", { text: "edited", title: new Date(m.editedAt * 1000).toLocaleString() }) : null,
    statusBadge(status, m),
  );

  const node = el("div", { class: classes.join(" "), "data-id": String(m.id) },
    meta, replyLine(m, conv), messageBody(m));

  if (status === "disapproved" && !m.deletedAt) {
    const reason = mine ? blockReason(m.id) : null;
    node.append(el("div", { class: "reason", text: reason ? `Blocked: ${reason}` : "Blocked by moderation." }));
    const decision = mine ? state.decisions.get(m.id) : null;
    if (decision && decision.decisionId) {
      const appeal = state.appeals.get(decision.decisionId);
      if (appeal) {
        const words = { open: "Appeal sent: a moderator will decide.", upheld: "Appeal upheld.",
                        rejected: "Appeal rejected." }[appeal] || "";
        node.append(el("div", { class: "appeal muted small", text: words }));
      } else if (!decision.appealUntil || decision.appealUntil * 1000 > Date.now()) {
        node.append(el("button", { type: "button", class: "link appeal-button", text: "Appeal",
                                   onclick: () => appealDecision(decision) }));
      }
    }
  }

  const live = isDeliverable(m) && !m.deletedAt;
  if (live) {
    node.append(reactionsRow(m));
    if (m.replyCount) {
      node.append(el("div", { class: "reply-count muted small",
                              text: `${m.replyCount} ${m.replyCount === 1 ? "reply" : "replies"}` }));
    }
  }
  const actions = el("div", { class: "actions" });
  if (live) {
    actions.append(el("button", { type: "button", class: "link", text: "Reply", onclick: () => setReplyTo(m) }));
  }
  if (!m.deletedAt) {
    if (mine) {
      if (m.category === "message" && (m.type === "text" || (MEDIA_TYPES.has(m.type) && m.attachment))) {
        actions.append(el("button", { type: "button", class: "link", text: "Edit", onclick: () => editMessage(m) }));
      }
      actions.append(el("button", { type: "button", class: "link", text: "Delete", onclick: () => deleteMessage(m) }));
    } else {
      actions.append(el("button", { type: "button", class: "link", text: "Report", onclick: () => reportMessage(m) }));
      if (conv.kind === "group") {
        actions.append(el("button", {
          type: "button", class: "link",
          text: state.blocked.has(m.sender) ? "Unblock" : "Block",
          onclick: () => toggleBlock(m.sender),
        }));
      }
    }
  }
  if (mine && isDeliverable(m) && !m.deletedAt) {
    const receipt = state.receipts.get(m.id);
    if (receipt === "read") actions.append(el("span", { class: "ticks read", text: "✓✓", title: "Read" }));
    else if (receipt === "delivered") actions.append(el("span", { class: "ticks", text: "✓", title: "Delivered" }));
  }
  if (actions.childNodes.length) node.append(actions);
  return node;
}

function localAttachmentView(local) {
  const name = local.file.name || "file";
  if (local.previewUrl && local.kind === "image" && !local.undecodable) {
    const img = el("img", { class: "media-thumb-img", src: local.previewUrl, alt: name });
    img.addEventListener("error", () => { local.undecodable = true; renderMessages(); }, { once: true });
    return el("div", { class: "media-thumb" }, img);
  }
  return el("div", { class: "media-file" },
    fileBadge(name, local.kind),
    el("span", { class: "file-name", text: name }),
    el("span", { class: "muted small", text: formatSize(local.file.size) }));
}

function renderLocal(local) {
  const label = local.status === "failed" ? "not sent"
    : local.status === "uploading" ? "uploading…" : "sending…";
  const body = el("div", { class: "body" });
  if (local.file) {
    body.append(localAttachmentView(local));
    if (local.status === "uploading") {
      body.append(el("progress", { class: "upload-progress", max: 1, value: local.progress || 0, "aria-label": "Upload progress" }));
    }
    if (local.text.trim()) body.append(el("div", { class: "caption", text: local.text }));
  } else {
    body.textContent = local.text;
  }
  const node = el("div", { class: `msg mine ${local.status === "failed" ? "failed" : "sending"}`, "data-muid": local.muid },
    el("div", { class: "meta" }, el("span", { text: label })),
    body,
  );
  const current = () => state.convs.get(state.active);
  const actions = el("div", { class: "actions" });
  if (local.status === "uploading") {
    actions.append(el("button", {
      type: "button", class: "link", text: "Cancel",
      onclick: () => { const conv = current(); if (conv) dropLocal(conv, local.muid); renderMessages(); },
    }));
  }
  if (local.status === "failed") {
    node.append(el("div", { class: "reason", text: local.error || "failed" }));
    if (local.retryable !== false) actions.append(el("button", {
      type: "button", class: "link", text: "Retry",
      onclick: () => {
        const conv = current();
        if (!conv) return;
        if (local.file && !local.media) { startUpload(conv, local); return; }
        local.status = "sending";
        local.muid = local.muid || randomId();
        sendFrameFor(conv, local);
        renderMessages();
      },
    }));
    if (local.canSendAsFile) {
      actions.append(el("button", {
        type: "button", class: "link", text: "Send as a file",
        onclick: () => {
          const conv = current();
          if (!conv) return;
          local.kind = "file";
          local.canSendAsFile = false;
          startUpload(conv, local);
        },
      }));
    }
    actions.append(el("button", {
      type: "button", class: "link", text: "Discard",
      onclick: () => { const conv = current(); if (conv) dropLocal(conv, local.muid); renderMessages(); },
    }));
  }
  if (actions.childNodes.length) node.append(actions);
  return node;
}

/**
 * Re-render the open conversation. `toBottom` scrolls to the newest message; `keep` ({height, top})
 * keeps the viewport still after older messages were prepended; otherwise we stick to the bottom
 * only if the user was already there.
 */
function renderMessages({ toBottom = false, keep = null } = {}) {
  const box = $("messages");
  const conv = state.convs.get(state.active);
  if (!conv) {
    box.replaceChildren(el("div", { class: "empty", text: "Pick a conversation, or search for someone to start one." }));
    return;
  }
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
  const sorted = Array.from(conv.messages.values()).sort((a, b) => a.id - b.id);
  const nodes = [];
  if (conv.hasMore) {
    nodes.push(el("button", {
      type: "button", class: "secondary load-older", text: conv.loading ? "Loading…" : "Load older messages",
      onclick: () => loadHistory(conv, { older: true }),
    }));
  }
  // A separator where the day changes; a message that follows its sender's previous one
  // within 5 minutes joins its group (no repeated name, tighter spacing).
  let prev = null;
  const place = (node, sender, at) => {
    const day = dayKey(at);
    if (!prev || prev.day !== day) {
      nodes.push(el("div", { class: "day-sep", role: "separator", text: dayLabel(at) }));
      prev = null;
    }
    if (prev && prev.sender === sender && at - prev.at < 300) node.classList.add("cont");
    nodes.push(node);
    prev = { day, sender, at };
  };
  for (const m of sorted) place(renderMessage(m, conv), m.sender, Number(m.sentAt) || 0);
  for (const local of conv.local.values()) place(renderLocal(local), state.me, Math.floor(local.createdAt));
  if (!nodes.length) {
    nodes.push(el("div", { class: "empty", text: conv.loaded ? "No messages yet. Say hello!" : "Loading…" }));
  }
  box.replaceChildren(...nodes);
  if (keep) box.scrollTop = box.scrollHeight - keep.height + keep.top;
  else if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
  markRead(conv, sorted);
}

function dayKey(seconds) {
  return new Date(seconds * 1000).toDateString();
}

function dayLabel(seconds) {
  const d = new Date(seconds * 1000);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return "Today";
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

/** Send `read` receipts for received, deliverable messages now on screen (newest 30 at most). */
function markRead(conv, sorted) {
  if (document.visibilityState !== "visible" || !state.online) return;
  const unread = sorted.filter((m) => m.sender !== state.me && !m.deletedAt && isDeliverable(m)
    && !state.receiptsSent.has(`${m.id}:read`));
  for (const m of unread.slice(-30)) sendReceipt(m.id, "read");
  if (conv.unread) { conv.unread = 0; renderConvList(); }
}

// ------------------------------------------------------------------ login / logout

function start(token) {
  state.token = token;
  state.me = jwtSubject(token);
  state.stopped = false;
  state.reconnectDelay = 1000;
  try { sessionStorage.setItem("parley.token", token); } catch { /* ignore */ }
  $("login-view").hidden = true;
  $("chat-view").hidden = false;
  $("logout").hidden = false;
  $("me").textContent = state.me || "";
  state.inbox = { next: null, loading: false, loaded: false };
  renderAll();
  connect();
}

function logout() {
  state.stopped = true;
  clearDraft();
  closeViewer();
  for (const conv of state.convs.values()) for (const muid of Array.from(conv.local.keys())) dropLocal(conv, muid);
  stopTyping();
  clearTimeout(state.reconnectTimer);
  clearInterval(state.pingTimer);
  const ws = state.ws;
  state.ws = null;
  state.online = false;
  if (ws) ws.close(1000, "logout");
  try { sessionStorage.removeItem("parley.token"); } catch { /* ignore */ }
  Object.assign(state, { token: null, me: null, user: null, active: null });
  state.inbox = { next: null, loading: false, loaded: false };
  state.names.clear();
  clearSearch();
  state.convs.clear();
  state.receipts.clear();
  state.mediaNodes.clear();
  state.linkRefresh.clear();
  state.moderation.clear();
  state.receiptsSent.clear();
  state.typingIn.clear();
  state.blocked.clear();
  state.decisions.clear();
  state.appeals.clear();
  state.frames.clear();
  $("login-view").hidden = false;
  $("chat-view").hidden = true;
  $("chat-view").classList.remove("has-active");
  $("logout").hidden = true;
  $("me").textContent = "";
  setConnState("", "not connected");
}

function init() {
  $("mint-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const apiKey = $("api-key").value.trim();
    const uid = $("login-uid").value.trim();
    if (!ID_RE.test(uid)) { toast("ERR_BAD_REQUEST", "A uid is 1-100 characters of A-Z a-z 0-9 _ -"); return; }
    const button = event.submitter || event.target.querySelector("button");
    button.disabled = true;
    try {
      const res = await api("POST", `/api/v1/users/${encodeURIComponent(uid)}/tokens`, { apiKey, body: {} });
      if (!res || typeof res.token !== "string") throw new ApiError(500, { code: "ERR_INTERNAL", message: "no token in the answer" });
      $("api-key").value = "";
      start(res.token);
    } catch (err) {
      showApiError(err);
    } finally {
      button.disabled = false;
    }
  });

  $("jwt-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("jwt").value.trim().replace(/^Bearer\s+/i, "");
    if (!token) return;
    $("jwt").value = "";
    start(token);
  });

  $("logout").addEventListener("click", logout);

  $("open-id").addEventListener("input", () => {
    clearTimeout(state.search.timer);
    state.search.timer = setTimeout(runSearch, 200);
  });
  $("open-id").addEventListener("keydown", (event) => {
    if (event.key === "Escape") clearSearch();
    if (event.key === "ArrowDown") {
      const first = $("search-results").querySelector("button");
      if (first) { event.preventDefault(); first.focus(); }
    }
  });
  $("search-results").addEventListener("keydown", (event) => {
    const buttons = Array.from($("search-results").querySelectorAll("button"));
    const at = buttons.indexOf(document.activeElement);
    if (event.key === "Escape") { clearSearch(); $("open-id").focus(); return; }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    event.preventDefault();
    const next = at + (event.key === "ArrowDown" ? 1 : -1);
    if (next < 0) $("open-id").focus();
    else if (buttons[next]) buttons[next].focus();
  });
  $("open-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("open-id").value.trim();
    const typed = value.replace(/^[@#]/, "");
    const results = state.search.results;
    // Enter: the user whose uid was typed, the only result, or (a fallback) the id itself.
    const hit = results.find((u) => u.uid === typed) || (results.length === 1 ? results[0] : null);
    if (hit && !value.startsWith("#")) { pickUser(hit); return; }
    if (!ID_RE.test(typed)) {
      toast("ERR_BAD_REQUEST", "Pick someone from the list, or type a uid (or #group id): 1-100 characters of A-Z a-z 0-9 _ -");
      return;
    }
    clearSearch();
    openConversation(value.startsWith("#") ? "group" : "user", typed, { strict: true });
  });
  window.addEventListener("online", () => {
    // The network is back: try now rather than at the end of the back-off.
    if (!state.stopped && !state.online) { state.reconnectDelay = 1000; connect(); }
  });

  $("back").addEventListener("click", () => selectConversation(null));

  const text = $("composer-text");
  text.addEventListener("input", () => {
    text.style.height = "auto";
    text.style.height = `${Math.min(text.scrollHeight, 160)}px`;
    if (text.value.trim()) noteTyping();
    else stopTyping();
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = text.value;
    if (!value.trim() && !state.draft) return;
    stopTyping();
    if (state.draft) sendAttachment(value);
    else sendMessage(value);
    text.value = "";
    text.style.height = "auto";
  });

  // Attachments: the button, drag and drop onto the conversation, and pasting a file.
  $("reply-cancel").addEventListener("click", () => setReplyTo(null));
  $("attach-btn").addEventListener("click", () => $("attach-input").click());
  if (matchMedia("(max-width: 700px)").matches) text.placeholder = "Message";
  $("attach-input").addEventListener("change", (event) => {
    const file = event.target.files && event.target.files[0];
    if (file) setDraft(file);
  });
  text.addEventListener("paste", (event) => {
    const files = event.clipboardData && event.clipboardData.files;
    if (files && files.length) {
      event.preventDefault();
      setDraft(files[0]);
    }
  });
  const pane = document.querySelector(".conversation");
  const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  let dragDepth = 0;
  pane.addEventListener("dragenter", (event) => {
    if (!hasFiles(event) || !state.active) return;
    dragDepth += 1;
    $("drop-hint").hidden = false;
  });
  pane.addEventListener("dragover", (event) => {
    if (!hasFiles(event) || !state.active) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  pane.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) $("drop-hint").hidden = true;
  });
  pane.addEventListener("drop", (event) => {
    dragDepth = 0;
    $("drop-hint").hidden = true;
    if (!hasFiles(event) || !state.active) return;
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) setDraft(file);
  });

  $("viewer-close").addEventListener("click", closeViewer);
  $("viewer").addEventListener("close", closeViewer);
  $("viewer").addEventListener("click", (event) => { if (event.target === $("viewer")) closeViewer(); });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.active) renderMessages();
  });

  // Forget frame ids that never got an answer.
  setInterval(() => {
    const cutoff = Date.now() - 120000;
    for (const [id, f] of state.frames) if (f.at < cutoff && f.type !== "message.send") state.frames.delete(id);
  }, 60000);

  let saved = null;
  try { saved = sessionStorage.getItem("parley.token"); } catch { saved = null; }
  if (saved) start(saved);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
