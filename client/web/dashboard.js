// Parley moderator dashboard. Plain ES module, no dependencies, no build step.
// Every value that came from the server is rendered with textContent, never innerHTML.

import { $, ApiError, el, request, toast } from "./common.js";

// ------------------------------------------------------------------ helpers

const info = (message) => toast("", message, null, "info");

// The signed-in operator ({name, role, ...}) and the CSRF token of the session. The session
// itself is an HttpOnly cookie this script never sees; the API key never comes here.
let me = null;
let csrf = null;
const LEVEL = { viewer: 1, moderator: 2, admin: 3 };

/** Whether the signed-in operator has `role` or a higher one. */
function can(role) {
  return Boolean(me) && (LEVEL[me.role] || 0) >= LEVEL[role];
}

async function api(method, path, body) {
  const headers = method === "GET" || !csrf ? {} : { "X-CSRF-Token": csrf };
  try {
    return await request(method, `/api/v1${path}`, { body, headers });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && me) {
      // The session ended (expired, signed out elsewhere, password changed): sign in again.
      toast(err.code, err.message, err.details);
      signedOut();
    }
    throw err;
  }
}

function showError(err) {
  if (err instanceof ApiError) {
    if (err.status !== 401) toast(err.code, err.message, err.details);
  } else {
    toast("ERROR", String(err && err.message ? err.message : err));
  }
}

function fmtTime(seconds) {
  if (!seconds) return "—";
  return new Date(seconds * 1000).toLocaleString();
}

function pretty(value) {
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

function confidenceBar(value) {
  const v = Math.max(0, Math.min(1, Number(value) || 0));
  const bar = el("div", { class: `bar ${v >= 0.8 ? "high" : v >= 0.5 ? "mid" : ""}`, title: v.toFixed(3), role: "meter",
    "aria-valuemin": "0", "aria-valuemax": "1", "aria-valuenow": v.toFixed(3) });
  const fill = el("span");
  fill.style.width = `${(v * 100).toFixed(1)}%`;
  bar.append(fill);
  return bar;
}

function statusBadge(status) {
  return el("span", { class: `badge ${status || ""}`, text: status || "?" });
}

// ------------------------------------------------------------------ tabs

const loaders = {
  queue: () => loadQueue(),
  rules: () => loadRules(),
  lists: () => loadLists(),
  tryout: () => $("tryout-text").focus(),
  appeals: () => loadAppeals(),
  terms: () => loadTerms(),
  audit: () => loadAudit(),
  operators: () => loadOperators(),
  account: () => renderAccount(),
};
let currentTab = "queue";

function showTab(name) {
  currentTab = name;
  for (const button of document.querySelectorAll(".tabs [data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const tab of Object.keys(loaders)) $(`tab-${tab}`).hidden = tab !== name;
  try { sessionStorage.setItem("parley.tab", name); } catch { /* ignore */ }
  loaders[name]();
}

// ------------------------------------------------------------------ review queue

/** Items decided in this page's lifetime (here or, through the live feed, elsewhere). */
const decidedIds = new Set();

async function loadQueue() {
  const state = $("queue-state").value;
  const box = $("queue-items");
  try {
    const res = await api("GET", `/moderation/queue?state=${encodeURIComponent(state)}`);
    // A reload that was under way while an item was decided must not bring it back.
    const items = ((res && Array.isArray(res.items)) ? res.items : [])
      .filter((item) => state === "disapproved" || !decidedIds.has(String((item.message || {}).id)));
    $("queue-count").textContent = `${items.length} item${items.length === 1 ? "" : "s"}`;
    // A reload (the live socket reconnecting, Refresh) keeps the moderator's place: the
    // focused card, the selection and the open details of the items still there.
    const focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("#queue-items .card") : null;
    const keepFocus = focused ? focused.dataset.messageId : null;
    const picked = new Set([...box.querySelectorAll(".card")]
      .filter((c) => c.querySelector(".pick:checked")).map((c) => c.dataset.messageId));
    const cards = items.map((item) => queueCard(item, state));
    box.replaceChildren(...cards);
    if (!items.length) box.append(el("p", { class: "muted", text: `Nothing in "${state}".` }));
    for (const c of cards) {
      const pick = c.querySelector(".pick");
      if (pick && picked.has(c.dataset.messageId)) pick.checked = true;
      if (c.dataset.messageId === keepFocus) c.focus();
    }
    updateBulk();
    refreshClaims();
  } catch (err) {
    showError(err);
  }
}

function queueCard(item, state) {
  const m = item.message || {};
  const mod = item.moderation || m.moderation || null;
  const card = el("article", { class: "card", "data-message-id": String(m.id), tabindex: "0" });
  card.dataset.ruleId = item.ruleId || "";
  card.append(el("div", { class: "meta" },
    el("strong", { text: `#${m.id}` }),
    el("span", { class: "badge claim", hidden: true }),
    el("span", { text: `${m.sender} → ${m.receiverType === "group" ? "#" : "@"}${m.receiver}` }),
    el("span", { text: `${m.category || "message"}/${m.type || "?"}` }),
    statusBadge(m.moderationStatus),
    el("span", { text: fmtTime(m.sentAt), title: "sent" }),
    m.editedAt ? el("span", { text: "edited" }) : null,
    m.deletedAt ? el("span", { class: "badge bad", text: "deleted" }) : null,
  ));

  let content = m.text;
  if (content === null || content === undefined) {
    if (m.attachment) content = `[${m.type}] ${m.attachment.name || m.attachment.mediaId || ""}`;
    else if (m.data !== undefined && m.data !== null) content = pretty(m.data);
    else content = "";
  }
  if (m.attachment && typeof m.attachment === "object") {
    card.append(mediaPreview(m));
    if (m.text) card.append(el("div", { class: "text", text: m.text }));
  } else {
    card.append(el("div", { class: "text", text: content }));
  }

  const why = [];
  if (item.ruleId) why.push(`rule: ${item.ruleId}`);
  if (mod && (mod.ruleName || mod.ruleId)) why.push(`decided by: ${mod.ruleName || mod.ruleId}`);
  if (mod && mod.reason) why.push(`reason: ${mod.reason}`);
  if (item.at) why.push(`queued: ${fmtTime(item.at)}`);
  if (why.length) card.append(el("div", { class: "meta", text: why.join(" · ") }));

  if (Array.isArray(item.reports) && item.reports.length) {
    card.append(el("ul", { class: "reports" }, item.reports.map((r) => el("li", {},
      el("strong", { text: r.reporter || r.uid || "?" }),
      `: ${r.reason || ""}`,
      r.remarks ? ` — ${r.remarks}` : "",
      el("span", { class: "muted", text: ` (${fmtTime(r.at)})` }),
    ))));
  }

  const details = el("div", { class: "card-detail", hidden: true });
  const more = el("button", { type: "button", class: "secondary", text: "Details", "data-role": "details",
    onclick: () => toggleDetails(card, m, details) });
  card.append(el("div", { class: "row" }, more), details);
  if (!can("moderator")) return card; // viewers read the queue; they do not decide

  const pick = el("input", { type: "checkbox", class: "pick", "aria-label": `select #${m.id}` });
  pick.addEventListener("change", updateBulk);
  card.querySelector(".meta").prepend(pick);

  const reason = el("input", { placeholder: "reason (optional, kept in the audit log)", "aria-label": "Reason" });
  const decide = async (verdict, buttons) => {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
      const res = await api("POST", `/moderation/messages/${encodeURIComponent(m.id)}/${verdict}`, body);
      const status = res && res.message ? res.message.moderationStatus : verdict + "d";
      info(`Message #${m.id}: ${status}.`);
      decidedIds.add(String(m.id));
      const next = card.nextElementSibling;
      card.remove();
      countCards();
      updateBulk();
      if (next && next.classList.contains("card")) next.focus();
    } catch (err) {
      showError(err);
      buttons.forEach((b) => { b.disabled = false; });
      refreshClaims();
    }
  };
  const approve = el("button", { type: "button", class: "ok", text: "Approve" });
  const disapprove = el("button", { type: "button", class: "danger", text: "Disapprove" });
  const claim = el("button", { type: "button", class: "secondary", text: "Claim", "data-role": "claim" });
  const buttons = [approve, disapprove, claim];
  approve.addEventListener("click", () => decide("approve", buttons));
  disapprove.addEventListener("click", () => decide("disapprove", buttons));
  approve.dataset.role = "approve";
  disapprove.dataset.role = "disapprove";
  claim.addEventListener("click", () => {
    const mine = claims.get(String(m.id)) === myActor();
    live.send({ type: mine ? "release" : "claim", messageId: m.id });
  });
  if (m.moderationStatus === "disapproved" && state === "disapproved") disapprove.disabled = true;
  card.append(el("div", { class: "decide" }, reason, claim, approve, disapprove));
  return card;
}

// ------------------------------------------------------------------ review card details

async function toggleDetails(card, m, box) {
  if (!box.hidden) { box.hidden = true; return; }
  box.hidden = false;
  box.replaceChildren(el("p", { class: "muted small", text: "Loading…" }));
  try {
    const q = card.dataset.ruleId ? `?ruleId=${encodeURIComponent(card.dataset.ruleId)}` : "";
    const res = await api("GET", `/moderation/messages/${encodeURIComponent(m.id)}/card${q}`);
    box.replaceChildren(...renderDetails(res, m));
  } catch (err) {
    box.replaceChildren(el("p", { class: "muted small", text: err.message || String(err) }));
  }
}

function renderDetails(res, m) {
  const out = [];
  const context = Array.isArray(res.context) ? res.context : [];
  out.push(el("h3", { text: "Conversation before it" }));
  out.push(context.length
    ? el("ol", { class: "context" }, context.map((c) => el("li", {},
      el("strong", { text: `${c.sender}: ` }), c.text ?? `[${c.type}]`,
      el("span", { class: "muted small", text: ` ${fmtTime(c.sentAt)} · ${c.moderationStatus}` }))))
    : el("p", { class: "muted small", text: "Nothing earlier." }));

  const sender = res.sender || {};
  const hist = res.history || {};
  const decisions = Array.isArray(hist.decisions) ? hist.decisions : [];
  const restrictions = Array.isArray(hist.restrictions) ? hist.restrictions : [];
  out.push(el("h3", { text: `Sender: ${sender.name || m.sender} (${m.sender})` }));
  out.push(el("p", { class: "small", text: [
    `role ${sender.role || "?"}`, `since ${fmtTime(sender.createdAt)}`,
    `${decisions.length} earlier decision${decisions.length === 1 ? "" : "s"}`,
    `${restrictions.filter((r) => !r.liftedAt).length} active restriction(s)`,
    sender.banned ? "banned" : null].filter(Boolean).join(" · ") }));
  if (decisions.length) {
    out.push(el("ul", { class: "history" }, decisions.slice(0, 10).map((d) => el("li", { class: "small" },
      `${fmtTime(d.at)} · ${d.measure || d.kind || "decision"}`,
      d.details && d.details.reason ? ` · ${d.details.reason}` : "",
      d.appeal ? ` · appeal ${d.appeal.state}` : ""))));
  }
  const reports = Array.isArray(res.reports) ? res.reports : [];
  if (reports.length) {
    out.push(el("h3", { text: `Reports (${reports.length})` }));
    out.push(el("ul", { class: "reports" }, reports.map((r) => el("li", { class: "small" },
      `${r.reporter || r.uid || "?"}: ${r.reason || ""}${r.remarks ? ` — ${r.remarks}` : ""}`))));
  }

  out.push(el("h3", { text: "Why it is here" }));
  if (res.rule) {
    out.push(el("p", { class: "small" }, el("strong", { text: res.rule.name || res.rule.id }),
      ` (${res.rule.id}, revision ${res.rule.revision ?? "?"}): actions ${(res.rule.actions || []).join(", ")}`));
    out.push(el("ul", { class: "small" }, (res.rule.conditions || []).map((c) => el("li", { text: describeCondition(c) }))));
  } else if (m.moderation && m.moderation.reason) {
    out.push(el("p", { class: "small", text: m.moderation.reason }));
  }
  const detections = (Array.isArray(res.detections) ? res.detections : [])
    .filter((d) => (d.confidence || 0) > 0).sort((a, b) => (b.confidence || 0) - (a.confidence || 0)).slice(0, 8);
  if (detections.length) {
    out.push(el("p", { class: "muted small", text: "Detectors on this text now (score per category):" }));
    out.push(el("table", { class: "detections" }, el("tbody", {}, detections.map((d) => el("tr", { title: d.reason || "" },
      el("td", { text: d.detector }), el("td", { text: d.category }),
      el("td", { text: Number(d.confidence).toFixed(3) }), el("td", {}, confidenceBar(d.confidence)))))));
  }

  if (can("moderator")) {
    const restrict = async (kind, seconds, label) => {
      const reason = prompt(`${label} ${m.sender}: reason (shown to them in the statement of reasons)`, "");
      if (reason === null) return;
      const until = seconds ? Math.floor(Date.now() / 1000) + seconds : 0;
      try {
        await api("POST", `/users/${encodeURIComponent(m.sender)}/restrictions`, { kind, until, reason });
        info(`${label}: ${m.sender}.`);
      } catch (err) {
        showError(err);
      }
    };
    out.push(el("div", { class: "row gap-top-sm" },
      el("button", { type: "button", class: "secondary", text: "Mute 24 h", onclick: () => restrict("mute", 86400, "Muted for 24 h") }),
      el("button", { type: "button", class: "danger", text: "Shadow-ban", onclick: () => restrict("shadow_ban", 0, "Shadow-banned") })));
  }
  return out;
}

// ------------------------------------------------------------------ bulk and keyboard

function selectedCards() {
  return [...$("queue-items").querySelectorAll(".card")].filter((c) => c.querySelector(".pick:checked"));
}

function updateBulk() {
  const n = selectedCards().length;
  $("bulk-approve").disabled = n === 0;
  $("bulk-disapprove").disabled = n === 0;
  $("bulk-approve").textContent = n ? `Approve ${n}` : "Approve selected";
  $("bulk-disapprove").textContent = n ? `Disapprove ${n}` : "Disapprove selected";
}

async function bulk(verdict) {
  const cards = selectedCards();
  if (!cards.length || !confirm(`${verdict === "approve" ? "Approve" : "Disapprove"} ${cards.length} message(s)?`)) return;
  let done = 0;
  for (const card of cards) {
    try {
      await api("POST", `/moderation/messages/${encodeURIComponent(card.dataset.messageId)}/${verdict}`, {});
      decidedIds.add(card.dataset.messageId);
      card.remove();
      done += 1;
    } catch (err) {
      showError(err); // claimed by someone else, or changed meanwhile: it stays
    }
  }
  info(`${done} of ${cards.length} ${verdict}d.`);
  countCards();
  updateBulk();
  $("queue-select-all").checked = false;
}

function onKey(event) {
  if (currentTab !== "queue" || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
  const cards = [...$("queue-items").querySelectorAll(".card")];
  if (!cards.length) return;
  const current = cards.indexOf(document.activeElement && document.activeElement.closest(".card"));
  const press = (role) => {
    const card = cards[current];
    const button = card && card.querySelector(`button[data-role="${role}"]`);
    if (button && !button.disabled) button.click();
  };
  switch (event.key) {
    case "j": cards[Math.min(cards.length - 1, current + 1)].focus(); break;
    case "k": cards[Math.max(0, current < 0 ? 0 : current - 1)].focus(); break;
    case "a": press("approve"); break;
    case "d": press("disapprove"); break;
    case "c": press("claim"); break;
    case "o": press("details"); break;
    case "x": {
      const pick = current >= 0 && cards[current].querySelector(".pick");
      if (pick) { pick.checked = !pick.checked; updateBulk(); }
      break;
    }
    default: return;
  }
  event.preventDefault();
}

function formatSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}

/** A root-relative or same-origin http(s) media link, else null (never javascript: and the like). */
function mediaUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const u = new URL(value, location.href);
    return (u.protocol === "http:" || u.protocol === "https:") && u.origin === location.origin ? u.href : null;
  } catch {
    return null;
  }
}

/**
 * The attachment of a media message in a review card: the image, or the video's poster frame
 * and player, or the audio player, or the file's link. The server signs media links for user
 * sessions only: through the API key an attachment has no `url`, so the card says so and shows
 * what is known (name, type, size) instead of a broken image.
 */
function mediaPreview(m) {
  const att = m.attachment;
  const box = el("div", { class: "media-preview" });
  const name = att.name || att.mediaId || m.type;
  const facts = [name, att.mimeType, formatSize(att.size),
    att.width && att.height ? `${att.width}×${att.height}` : null,
    att.duration ? `${Math.round(att.duration)} s` : null].filter(Boolean).join(" · ");
  const url = mediaUrl(att.url);
  const thumb = mediaUrl(att.thumbnailUrl);
  if (!url && !thumb) {
    box.append(el("div", { class: "media-nopreview" },
      el("div", { text: `[${m.type}] ${facts}` }),
      el("div", { class: "muted small", text: "Preview needs a user session: the server signs media links for users, not for the API key." })));
    return box;
  }
  const broken = (node) => node.addEventListener("error", () => {
    node.replaceWith(el("div", { class: "media-nopreview muted small", text: "The preview could not be loaded (the link may have expired): refresh the queue." }));
  }, { once: true });
  if (m.type === "image") {
    const img = el("img", { src: thumb || url, alt: name, loading: "lazy" });
    broken(img);
    box.append(img);
  } else if (m.type === "video") {
    if (url) {
      const video = el("video", { src: url, controls: true, preload: "metadata", poster: thumb || undefined });
      broken(video);
      box.append(video);
    } else {
      const poster = el("img", { src: thumb, alt: `${name} (poster frame)`, loading: "lazy" });
      broken(poster);
      box.append(poster);
    }
  } else if (m.type === "audio" && url) {
    box.append(el("audio", { src: url, controls: true, preload: "none" }));
  }
  box.append(el("div", { class: "muted small" },
    url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: m.type === "file" ? "download" : "open full size" }) : null,
    url ? " · " : null,
    facts));
  return box;
}


// ------------------------------------------------------------------ rules

let rules = [];
let ruleEditing = null; // null: new rule; otherwise the rule id

const RULE_TEMPLATE = {
  id: "my-rule",
  name: "My rule",
  description: "",
  enabled: false,
  filters: {
    sender: { uids: [], roles: [], tags: [], nameContains: null, createdAfter: null, createdBefore: null },
    receiver: { types: ["user", "group"], ids: [], tags: [], groupTypes: [], nameContains: null, createdAfter: null, createdBefore: null },
  },
  match: "any",
  conditions: [{ kind: "keywords", messageTypes: ["text"], listId: "profanity-en" }],
  actions: ["block"],
};

async function loadRules() {
  try {
    if (!lists.length) {
      const known = await api("GET", "/moderation/lists");
      lists = (known && Array.isArray(known.lists)) ? known.lists : [];
    }
    const res = await api("GET", "/moderation/rules");
    rules = (res && Array.isArray(res.rules)) ? res.rules : Array.isArray(res) ? res : [];
    renderRules();
  } catch (err) {
    showError(err);
  }
}

function describeCondition(c) {
  if (!c || typeof c !== "object") return "?";
  const bits = [c.kind];
  if (c.listId) bits.push(`list=${c.listId}`);
  if (Array.isArray(c.categories) && c.categories.length) bits.push(c.categories.join("/"));
  if (c.threshold !== undefined && c.threshold !== null) bits.push(`≥ ${c.threshold}`);
  if (Array.isArray(c.messageTypes) && c.messageTypes.length) bits.push(`[${c.messageTypes.join(",")}]`);
  return bits.join(" ");
}

function renderRules() {
  const body = $("rules-body");
  body.replaceChildren(...rules.map((rule) => {
    const toggle = el("input", { type: "checkbox", "aria-label": `enable ${rule.id}` });
    toggle.checked = Boolean(rule.enabled);
    toggle.disabled = !can("admin");
    toggle.addEventListener("change", () => toggleRule(rule, toggle));
    const conditions = Array.isArray(rule.conditions) ? rule.conditions : [];
    return el("tr", {},
      el("td", {}, toggle),
      el("td", {},
        el("div", { text: rule.name || rule.id }),
        el("div", { class: "muted small", text: rule.id }),
        rule.description ? el("div", { class: "muted small", text: rule.description }) : null),
      el("td", {},
        conditions.length > 1 ? el("div", { class: "muted small", text: `match ${rule.match || "any"}` }) : null,
        conditions.map((c) => el("div", { class: "small", text: describeCondition(c) }))),
      el("td", { text: Array.isArray(rule.actions) ? rule.actions.join(", ") : "" }),
      el("td", { text: rule.revision ?? "" }),
      el("td", {}, el("div", { class: "row" },
        can("admin") ? el("button", { type: "button", class: "secondary", text: "Edit", onclick: () => editRule(rule) }) : null,
        el("button", { type: "button", class: "secondary", text: "Revisions", onclick: () => showRevisions(rule) }),
        can("admin") ? el("button", { type: "button", class: "danger", text: "Delete", onclick: () => deleteRule(rule) }) : null,
      )),
    );
  }));
  if (!rules.length) body.append(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No rules." })));
}

async function toggleRule(rule, checkbox) {
  checkbox.disabled = true;
  try {
    const updated = await api("PUT", `/moderation/rules/${encodeURIComponent(rule.id)}`, { ...rule, enabled: checkbox.checked });
    replaceRule(updated && updated.id ? updated : { ...rule, enabled: checkbox.checked });
    info(`${rule.name || rule.id} ${checkbox.checked ? "enabled" : "disabled"}.`);
  } catch (err) {
    checkbox.checked = !checkbox.checked;
    showError(err);
  } finally {
    checkbox.disabled = false;
  }
}

function replaceRule(updated) {
  const i = rules.findIndex((r) => r.id === updated.id);
  if (i >= 0) rules[i] = updated;
  else rules.push(updated);
  renderRules();
}

// ------------------------------------------------------------------ rule editor (form + JSON)

const CONDITION_KINDS = ["keywords", "patterns", "phone", "email", "toxicity", "sentiment",
  "similarity", "spam", "scam", "image", "video", "image_hash", "openai", "custom_api"];
const LIST_KINDS_FOR = { keywords: "keywords", patterns: "patterns", similarity: "sentences", image_hash: "image_hashes" };
const ACTIONS = ["block", "review", "flag", "kick", "ban", "block_user"];
const MESSAGE_TYPES = ["text", "custom", "image", "video", "audio", "file"];
const CONDITION_FIELDS = ["kind", "messageTypes", "listId", "threshold", "categories", "contextWindow"];
let ruleView = "form";

const csv = (value) => (Array.isArray(value) ? value.join(", ") : "");
const fromCsv = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);

/** A labelled input whose `data-path` is the field path the server names in its errors. */
function field(label, path, input) {
  input.dataset.path = path;
  input.id = `rf-${path.replace(/[^A-Za-z0-9]+/g, "-")}`;
  return el("div", { class: "field" }, el("label", { for: input.id, text: label }), input,
    el("div", { class: "field-error small", "data-error-for": path }));
}

function checks(name, options, chosen, path) {
  const box = el("div", { class: "checks", "data-path": path, role: "group", "aria-label": name });
  for (const option of options) {
    const input = el("input", { type: "checkbox", value: option });
    input.checked = (chosen || []).includes(option);
    box.append(el("label", { class: "inline" }, input, ` ${option}`));
  }
  return box;
}

function checked(box) {
  return [...box.querySelectorAll("input:checked")].map((i) => i.value);
}

function filterBlock(side, f) {
  f = f || {};
  const p = `filters.${side}`;
  const parts = [el("h3", { text: side === "sender" ? "Sender filter" : "Receiver filter" })];
  if (side === "sender") {
    parts.push(field("uids (comma-separated)", `${p}.uids`, el("input", { value: csv(f.uids) })));
    parts.push(el("div", { class: "field" }, el("span", { class: "small", text: "roles" }),
      checks("roles", ["user", "moderator", "admin"], f.roles, `${p}.roles`),
      el("div", { class: "field-error small", "data-error-for": `${p}.roles` })));
  } else {
    parts.push(el("div", { class: "field" }, el("span", { class: "small", text: "receiver types" }),
      checks("types", ["user", "group"], f.types, `${p}.types`),
      el("div", { class: "field-error small", "data-error-for": `${p}.types` })));
    parts.push(field("ids (comma-separated)", `${p}.ids`, el("input", { value: csv(f.ids) })));
    parts.push(el("div", { class: "field" }, el("span", { class: "small", text: "group types" }),
      checks("group types", ["public", "private"], f.groupTypes, `${p}.groupTypes`),
      el("div", { class: "field-error small", "data-error-for": `${p}.groupTypes` })));
  }
  parts.push(field("tags (comma-separated)", `${p}.tags`, el("input", { value: csv(f.tags) })));
  parts.push(field("name contains", `${p}.nameContains`, el("input", { value: f.nameContains || "" })));
  parts.push(field("created after (Unix seconds)", `${p}.createdAfter`, el("input", { inputmode: "numeric", value: f.createdAfter ?? "" })));
  parts.push(field("created before (Unix seconds)", `${p}.createdBefore`, el("input", { inputmode: "numeric", value: f.createdBefore ?? "" })));
  return el("fieldset", { class: "filter", "data-side": side }, ...parts);
}

function conditionBlock(c, i) {
  const p = `conditions[${i}]`;
  const kind = el("select", {}, CONDITION_KINDS.map((k) => el("option", { value: k, text: k })));
  kind.value = c.kind || "keywords";
  const listSelect = el("select", {}, el("option", { value: "", text: "—" }),
    lists.map((l) => el("option", { value: l.id, text: `${l.name || l.id} (${l.kind})` })));
  listSelect.value = c.listId || "";
  const extra = {};
  for (const [key, value] of Object.entries(c)) if (!CONDITION_FIELDS.includes(key)) extra[key] = value;
  const params = el("textarea", { class: "code", rows: "2", spellcheck: "false" });
  params.value = Object.keys(extra).length ? JSON.stringify(extra) : "";
  const block = el("fieldset", { class: "condition", "data-index": String(i) },
    el("legend", { text: `Condition ${i + 1}` }),
    field("kind", `${p}.kind`, kind),
    el("div", { class: "field" }, el("span", { class: "small", text: "message types" }),
      checks("message types", MESSAGE_TYPES, c.messageTypes || ["text"], `${p}.messageTypes`),
      el("div", { class: "field-error small", "data-error-for": `${p}.messageTypes` })),
    field("list", `${p}.listId`, listSelect),
    field("threshold (0..1, empty: the detector's default)", `${p}.threshold`, el("input", { inputmode: "decimal", value: c.threshold ?? "" })),
    field("categories (comma-separated)", `${p}.categories`, el("input", { value: csv(c.categories) })),
    field("context window (messages)", `${p}.contextWindow`, el("input", { inputmode: "numeric", value: c.contextWindow ?? "" })),
    field("other parameters of this kind (JSON object)", `${p}`, params),
    el("button", { type: "button", class: "secondary", text: "Remove condition", onclick: () => {
      const rule = ruleFromForm(); rule.conditions.splice(i, 1); fillRuleForm(rule); } }),
  );
  const showList = () => { listSelect.closest(".field").hidden = !(kind.value in LIST_KINDS_FOR); };
  kind.addEventListener("change", showList);
  showList();
  return block;
}

function fillRuleForm(rule) {
  const form = $("rule-form");
  const filters = rule.filters || {};
  form.replaceChildren(
    field("id", "id", el("input", { value: rule.id || "", readOnly: ruleEditing !== null })),
    field("name", "name", el("input", { value: rule.name || "" })),
    field("description", "description", el("input", { value: rule.description || "" })),
    el("label", { class: "inline" }, el("input", { type: "checkbox", "data-path": "enabled", checked: rule.enabled !== false }), " enabled"),
    el("div", { class: "field" }, el("span", { class: "small", text: "actions" }),
      checks("actions", ACTIONS, rule.actions || [], "actions"),
      el("div", { class: "field-error small", "data-error-for": "actions" })),
    field("match", "match", (() => { const m = el("select", {}, el("option", { value: "any", text: "any condition" }), el("option", { value: "all", text: "all conditions" })); m.value = rule.match || "any"; return m; })()),
    filterBlock("sender", filters.sender),
    filterBlock("receiver", filters.receiver),
    el("h3", { text: "Conditions" }),
    el("div", { class: "field-error small", "data-error-for": "conditions" }),
    ...(rule.conditions || []).map((c, i) => conditionBlock(c, i)),
    el("button", { type: "button", class: "secondary", text: "Add condition", onclick: () => {
      const r = ruleFromForm(); r.conditions.push({ kind: "keywords", messageTypes: ["text"] }); fillRuleForm(r); } }),
  );
}

function num(text) {
  const t = String(text).trim();
  if (!t) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : t; // a non-number goes to the server, which names the field
}

/** The rule the form describes (unknown extra parameters come from each condition's JSON box). */
function ruleFromForm() {
  const form = $("rule-form");
  const at = (path) => form.querySelector(`[data-path="${CSS.escape(path)}"]`);
  const side = (s) => {
    const p = `filters.${s}`;
    const out = { tags: fromCsv(at(`${p}.tags`).value), nameContains: at(`${p}.nameContains`).value.trim() || null,
      createdAfter: num(at(`${p}.createdAfter`).value), createdBefore: num(at(`${p}.createdBefore`).value) };
    if (s === "sender") Object.assign(out, { uids: fromCsv(at(`${p}.uids`).value), roles: checked(at(`${p}.roles`)) });
    else Object.assign(out, { types: checked(at(`${p}.types`)), ids: fromCsv(at(`${p}.ids`).value), groupTypes: checked(at(`${p}.groupTypes`)) });
    return out;
  };
  const conditions = [...form.querySelectorAll("fieldset.condition")].map((box) => {
    const i = box.dataset.index;
    const p = `conditions[${i}]`;
    const c = { kind: at(`${p}.kind`).value, messageTypes: checked(at(`${p}.messageTypes`)) };
    if (c.kind in LIST_KINDS_FOR) c.listId = at(`${p}.listId`).value;
    const threshold = num(at(`${p}.threshold`).value);
    if (threshold !== null) c.threshold = threshold;
    const categories = fromCsv(at(`${p}.categories`).value);
    if (categories.length) c.categories = categories;
    const windowSize = num(at(`${p}.contextWindow`).value);
    if (windowSize !== null) c.contextWindow = windowSize;
    const raw = at(p).value.trim();
    if (raw) {
      let extra;
      try { extra = JSON.parse(raw); } catch { throw new FormError(p, "not valid JSON"); }
      if (!extra || typeof extra !== "object" || Array.isArray(extra)) throw new FormError(p, "must be a JSON object");
      Object.assign(c, extra);
    }
    return c;
  });
  return {
    id: at("id").value.trim() || undefined,
    name: at("name").value.trim(),
    description: at("description").value,
    enabled: at("enabled").checked,
    match: at("match").value,
    actions: checked(at("actions")),
    filters: { sender: side("sender"), receiver: side("receiver") },
    conditions,
  };
}

class FormError extends Error {
  constructor(field, message) { super(message); this.field = field; }
}

function clearFieldErrors() {
  for (const node of $("rule-form").querySelectorAll(".field-error")) node.textContent = "";
  for (const node of $("rule-form").querySelectorAll(".invalid")) node.classList.remove("invalid");
}

/** Show `message` at the field the server named (the nearest enclosing path that has one). */
function showFieldError(path, message) {
  const form = $("rule-form");
  let p = path || "";
  while (p) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(p)}"]`);
    if (slot) {
      slot.textContent = message;
      const input = form.querySelector(`[data-path="${CSS.escape(p)}"]`);
      if (input) { input.classList.add("invalid"); input.focus(); }
      return true;
    }
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    p = cut > 0 ? p.slice(0, cut) : "";
  }
  return false;
}

function setRuleView(view) {
  if (view === ruleView) return;
  try {
    if (view === "json") $("rule-json").value = pretty(ruleFromForm());
    else fillRuleForm(JSON.parse($("rule-json").value));
  } catch (err) {
    $("rule-json-error").textContent = `Cannot switch: ${err.message}`;
    document.querySelector(`input[name=rule-view][value=${ruleView}]`).checked = true;
    return;
  }
  ruleView = view;
  $("rule-form").hidden = view !== "form";
  $("rule-json").hidden = view !== "json";
  $("rule-json-error").textContent = "";
}

function editRule(rule) {
  ruleEditing = rule ? rule.id : null;
  $("rule-editor-title").textContent = rule ? `Edit rule “${rule.id}”` : "New rule";
  const body = rule || RULE_TEMPLATE;
  $("rule-json").value = pretty(body);
  fillRuleForm(body);
  $("rule-json-error").textContent = "";
  $("rule-dry-result").hidden = true;
  $("rule-revisions").hidden = true;
  $("rule-editor").hidden = false;
  $("rule-editor").scrollIntoView({ behavior: "smooth", block: "start" });
}

/** The rule being edited, from whichever view is shown; null (with the error shown) if invalid. */
function currentRule() {
  clearFieldErrors();
  if (ruleView === "form") {
    try {
      return ruleFromForm();
    } catch (err) {
      if (err instanceof FormError) showFieldError(err.field, err.message);
      $("rule-json-error").textContent = err.message;
      return null;
    }
  }
  let body;
  try {
    body = JSON.parse($("rule-json").value);
  } catch (err) {
    $("rule-json-error").textContent = `Invalid JSON: ${err.message}`;
    return null;
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    $("rule-json-error").textContent = "A rule is a JSON object.";
    return null;
  }
  return body;
}

async function saveRule() {
  const body = currentRule();
  if (!body) return;
  if (ruleEditing !== null && body.id !== undefined && body.id !== ruleEditing) {
    $("rule-json-error").textContent = `The id cannot change (it is “${ruleEditing}”); create a new rule instead.`;
    return;
  }
  $("rule-json-error").textContent = "";
  try {
    const saved = ruleEditing === null
      ? await api("POST", "/moderation/rules", body)
      : await api("PUT", `/moderation/rules/${encodeURIComponent(ruleEditing)}`, { ...body, id: ruleEditing });
    info(`Rule ${saved && saved.id ? saved.id : ""} saved${saved && saved.revision ? ` (revision ${saved.revision})` : ""}.`);
    $("rule-editor").hidden = true;
    await loadRules();
  } catch (err) {
    showError(err);
    if (err instanceof ApiError) {
      const path = err.details && err.details.field;
      const shown = ruleView === "form" && path && showFieldError(path, err.message);
      $("rule-json-error").textContent = `${err.code}: ${path ? `${path}: ` : ""}${err.message}${shown ? " (shown at the field)" : ""}`;
    }
  }
}

async function dryRun() {
  const body = currentRule();
  if (!body) return;
  const id = ruleEditing || body.id || "draft";
  try {
    const res = await api("POST", `/moderation/rules/${encodeURIComponent(id)}/dry-run`, { days: 7, rule: { ...body, id } });
    const matches = Array.isArray(res.matches) ? res.matches : [];
    $("rule-dry-title").textContent = `Dry run: ${matches.length} message${matches.length === 1 ? "" : "s"} of the last ${res.days} days would match`;
    $("rule-dry-body").replaceChildren(...matches.map((h) => el("tr", {},
      el("td", { text: `#${h.messageId}` }), el("td", { text: h.sender }), el("td", { text: fmtTime(h.sentAt) }),
      el("td", { text: h.text ?? "" }), el("td", {}, statusBadge(h.currentStatus)),
      el("td", { text: (h.actions || []).join(", ") }), el("td", { text: h.reason || "" }))));
    if (!matches.length) $("rule-dry-body").append(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "Nothing would have matched." })));
    $("rule-dry-result").hidden = false;
  } catch (err) {
    showError(err);
    if (err instanceof ApiError && err.details && err.details.field && ruleView === "form") showFieldError(err.details.field, err.message);
  }
}

async function deleteRule(rule) {
  if (!confirm(`Delete rule “${rule.name || rule.id}”? Its revisions stay in the audit log.`)) return;
  try {
    await api("DELETE", `/moderation/rules/${encodeURIComponent(rule.id)}`);
    info(`Rule ${rule.id} deleted.`);
    rules = rules.filter((r) => r.id !== rule.id);
    renderRules();
    if (ruleEditing === rule.id) $("rule-editor").hidden = true;
  } catch (err) {
    showError(err);
  }
}

/** Line diff of two texts (longest common subsequence): [[" "|"-"|"+", line], ...]. */
function diffLines(a, b) {
  const x = a.split("\n");
  const y = b.split("\n");
  const n = x.length;
  const m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

/** A revision's body without what changes with every save (revision number, times). */
function revisionText(snapshot) {
  const { revision, createdAt, updatedAt, ...rest } = snapshot || {};
  return pretty(rest);
}

async function showRevisions(rule) {
  try {
    const res = await api("GET", `/moderation/rules/${encodeURIComponent(rule.id)}/revisions`);
    const revisions = (res && Array.isArray(res.revisions)) ? res.revisions : Array.isArray(res) ? res : [];
    $("revisions-title").textContent = `Revisions of “${rule.id}” (${revisions.length})`;
    // Newest first; each shows what changed from the one before it.
    $("revisions-body").replaceChildren(...revisions.map((rev, k) => {
      const snapshot = rev.rule || rev.body || rev;
      const older = revisions[k + 1];
      const changes = older
        ? diffLines(revisionText(older.rule || older.body || older), revisionText(snapshot))
        : diffLines("", revisionText(snapshot));
      const changed = changes.filter(([op]) => op !== " ").length;
      return el("details", { class: "revision" },
        el("summary", {
          text: `revision ${rev.revision ?? "?"} · ${fmtTime(rev.at)}${rev.actor ? ` · by ${rev.actor}` : ""}`
            + ` · ${older ? `${changed} line${changed === 1 ? "" : "s"} changed` : "created"}`
            + `${snapshot && snapshot.enabled === false ? " · disabled" : ""}`,
        }),
        el("pre", { class: "diff" }, changes.filter(([op]) => older ? op !== " " : true).map(([op, line]) =>
          el("span", { class: op === "+" ? "add" : op === "-" ? "del" : "same", text: `${op} ${line}\n` }))),
        can("admin") ? el("button", {
          type: "button", class: "secondary", text: "Load into editor",
          onclick: () => { editRule({ ...snapshot, id: rule.id }); },
        }) : null,
      );
    }));
    $("rule-editor").hidden = true;
    $("rule-revisions").hidden = false;
    $("rule-revisions").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (err) {
    showError(err);
  }
}

// ------------------------------------------------------------------ lists

let lists = [];
let listEditing = null; // null: new list; otherwise the list id

async function loadLists() {
  try {
    const res = await api("GET", "/moderation/lists");
    lists = (res && Array.isArray(res.lists)) ? res.lists : Array.isArray(res) ? res : [];
    renderLists();
  } catch (err) {
    showError(err);
  }
}

function renderLists() {
  const body = $("lists-body");
  body.replaceChildren(...lists.map((list) => el("tr", {},
    el("td", {}, el("div", { text: list.name || list.id }), el("div", { class: "muted small", text: list.id })),
    el("td", { text: list.kind || "" }),
    el("td", { text: Array.isArray(list.items) ? String(list.items.length) : "" }),
    el("td", { text: allowSummary(list.allow) }),
    el("td", {}, can("admin") ? el("div", { class: "row" },
      el("button", { type: "button", class: "secondary", text: "Edit", onclick: () => editList(list) }),
      el("button", { type: "button", class: "danger", text: "Delete", onclick: () => deleteList(list) }),
    ) : el("button", { type: "button", class: "secondary", text: "View", onclick: () => editList(list) })),
  )));
  if (!lists.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No lists." })));
}

/** The allow-list column: how many words, and the first few (`allow` is a list of words). */
function allowSummary(allow) {
  const words = Array.isArray(allow) ? allow : [];
  if (!words.length) return "—";
  const shown = words.slice(0, 3).join(", ");
  return `${words.length}: ${shown}${words.length > 3 ? ", …" : ""}`;
}

function linesOf(text) {
  const seen = new Set();
  const out = [];
  for (const line of text.split(/\r?\n/)) {
    const item = line.trim();
    if (item && !seen.has(item)) { seen.add(item); out.push(item); }
  }
  return out;
}

function editList(list) {
  listEditing = list ? list.id : null;
  $("list-editor-title").textContent = list ? `Edit list “${list.id}”` : "New list";
  $("list-id").value = list ? list.id : "";
  $("list-id").readOnly = Boolean(list);
  $("list-id").placeholder = list ? "" : "derived from the name if empty";
  $("list-name").value = list ? list.name || "" : "";
  $("list-kind").value = list ? list.kind || "keywords" : "keywords";
  $("list-kind").disabled = Boolean(list);
  $("list-allow").value = list && Array.isArray(list.allow) ? list.allow.join("\n") : "";
  $("list-items").value = list && Array.isArray(list.items) ? list.items.join("\n") : "";
  $("list-error").textContent = "";
  // An image_hashes list that exists takes images: the server hashes them (issue 12).
  $("list-images-field").hidden = !(list && list.kind === "image_hashes" && can("admin"));
  $("list-images").value = "";
  $("list-images-status").textContent = "";
  for (const input of $("list-editor").querySelectorAll("input, textarea, select")) {
    if (input.id !== "list-id" && input.id !== "list-kind") input.readOnly = !can("admin");
  }
  $("list-editor").querySelector("button[type=submit]").hidden = !can("admin");
  updateListCount();
  $("list-editor").hidden = false;
  $("list-editor").scrollIntoView({ behavior: "smooth", block: "start" });
  $("list-name").focus();
}

function listItemsFromText() {
  return linesOf($("list-items").value);
}

function updateListCount() {
  const n = listItemsFromText().length;
  $("list-count").textContent = `${n} item${n === 1 ? "" : "s"}`;
}

async function saveList(event) {
  event.preventDefault();
  const body = {
    name: $("list-name").value.trim(),
    kind: $("list-kind").value.trim(),
    items: listItemsFromText(),
    allow: linesOf($("list-allow").value),
  };
  const id = $("list-id").value.trim();
  if (id) body.id = id;
  try {
    const saved = listEditing === null
      ? await api("POST", "/moderation/lists", body)
      : await api("PUT", `/moderation/lists/${encodeURIComponent(listEditing)}`, { ...body, id: listEditing });
    info(`List ${saved && saved.id ? saved.id : id} saved.`);
    $("list-editor").hidden = true;
    await loadLists();
  } catch (err) {
    showError(err);
    // The field the server named (e.g. "items[3]: invalid pattern") next to the form.
    if (err instanceof ApiError) {
      const field = err.details && err.details.field ? `${err.details.field}: ` : "";
      $("list-error").textContent = `${field}${err.message}`;
    }
  }
}

/** Upload the chosen images to the list being edited; its items then hold their hashes. */
async function addListImages() {
  const files = Array.from($("list-images").files || []);
  if (!files.length || listEditing === null) return;
  const status = $("list-images-status");
  let added = 0;
  let list = null;
  for (const [i, file] of files.entries()) {
    status.textContent = `Hashing ${i + 1} of ${files.length}…`;
    const form = new FormData();
    form.append("file", file, file.name);
    const res = await fetch(`/api/v1/moderation/lists/${encodeURIComponent(listEditing)}/images`, {
      method: "POST",
      body: form,
      headers: csrf ? { "X-CSRF-Token": csrf } : {},
      credentials: "same-origin",
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      status.textContent = "";
      toast(body.code || `HTTP_${res.status}`, `${file.name}: ${body.message || "refused"}`, body.details);
      continue;
    }
    added += body.added || 0;
    list = body.list || list;
  }
  if (list && Array.isArray(list.items)) {
    $("list-items").value = list.items.join("\n");
    updateListCount();
    const stored = lists.find((l) => l.id === list.id);
    if (stored) stored.items = list.items;
    renderLists();
  }
  status.textContent = `${added} new hash${added === 1 ? "" : "es"} from ${files.length} image${files.length === 1 ? "" : "s"}.`;
  $("list-images").value = "";
}

async function deleteList(list) {
  if (!confirm(`Delete list “${list.name || list.id}”?`)) return;
  try {
    await api("DELETE", `/moderation/lists/${encodeURIComponent(list.id)}`);
    info(`List ${list.id} deleted.`);
    lists = lists.filter((l) => l.id !== list.id);
    renderLists();
    if (listEditing === list.id) $("list-editor").hidden = true;
  } catch (err) {
    showError(err);
  }
}

// ------------------------------------------------------------------ try-out

async function evaluate(event) {
  event.preventDefault();
  const body = { text: $("tryout-text").value, messageType: $("tryout-type").value || "text" };
  const sender = $("tryout-sender").value.trim();
  if (sender) body.sender = sender;
  const button = event.submitter || event.target.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  try {
    const res = await api("POST", "/moderation/evaluate", body);
    renderEvaluation(res || {});
  } catch (err) {
    showError(err);
  } finally {
    if (button) button.disabled = false;
  }
}

function renderEvaluation(res) {
  const verdict = res.verdict || {};
  const matches = Array.isArray(verdict.matches) ? verdict.matches : [];
  $("tryout-result").hidden = false;
  $("tryout-verdict").replaceChildren("Verdict: ", statusBadge(verdict.status),
    matches.length ? "" : el("span", { class: "muted", text: " — no enabled rule matched" }));

  const matchBox = $("tryout-matches");
  matchBox.replaceChildren();
  if (matches.length) {
    matchBox.append(el("h3", { text: "Matching rules" }), el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["Rule", "Reason", "Actions", "Confidence"].map((h) => el("th", { text: h })))),
      el("tbody", {}, matches.map((m) => el("tr", {},
        el("td", {}, el("div", { text: m.ruleName || m.ruleId }), el("div", { class: "muted small", text: m.ruleId || "" })),
        el("td", { text: m.reason || "" }),
        el("td", { text: Array.isArray(m.actions) ? m.actions.join(", ") : "" }),
        el("td", { text: typeof m.confidence === "number" ? m.confidence.toFixed(2) : "" }),
      ))),
    )));
  }

  const detections = Array.isArray(res.detections) ? res.detections.slice() : [];
  detections.sort((a, b) => String(a.detector).localeCompare(String(b.detector)) || (b.confidence || 0) - (a.confidence || 0));
  const tbody = $("tryout-detections");
  tbody.replaceChildren(...detections.map((d) => el("tr", { title: d.reason || "" },
    el("td", { text: d.detector ?? "" }),
    el("td", { text: d.category ?? "" }),
    el("td", { text: typeof d.confidence === "number" ? d.confidence.toFixed(3) : "" }),
    el("td", {}, confidenceBar(d.confidence)),
  )));
  if (!detections.length) tbody.append(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "No detector ran." })));
  const unavailable = Array.isArray(res.unavailable) ? res.unavailable : [];
  $("tryout-unavailable").textContent = unavailable.length
    ? `Not available on this server (model or provider missing): ${unavailable.join(", ")}` : "";
}

// ------------------------------------------------------------------ audit log

// ------------------------------------------------------------------ appeals and terms (issue 15)

async function loadAppeals() {
  const box = $("appeals-items");
  try {
    const res = await api("GET", "/moderation/queue?state=appeals");
    const items = (res && Array.isArray(res.items)) ? res.items : [];
    $("appeals-count").textContent = `${items.length} open appeal${items.length === 1 ? "" : "s"}`;
    box.replaceChildren(...items.map(appealCard));
    if (!items.length) box.append(el("p", { class: "muted", text: "No open appeals." }));
  } catch (err) {
    showError(err);
  }
}

function appealCard(item) {
  const appeal = item.appeal || {};
  const decision = item.decision || {};
  const card = el("article", { class: "card appeal-card", "data-appeal": appeal.appealId || "" },
    el("div", { class: "row" },
      el("strong", { text: decision.uid || appeal.uid || "" }),
      el("span", { class: "badge", text: decision.measure || "" }),
      el("span", { class: "muted small", text: fmtTime(appeal.at) })),
    el("p", { text: `Decision: ${decision.explanation || ""}` }),
    decision.details && decision.details.reason
      ? el("p", { class: "muted small", text: `Staff details: ${decision.details.reason}` }) : null,
    item.message ? el("p", { class: "muted", text: `Message: ${item.message.text || item.message.type || ""}` }) : null,
    el("p", { text: `Appeal: ${appeal.note || "(no note)"}` }),
  );
  if (can("moderator")) {
    card.append(el("div", { class: "row" },
      el("button", { type: "button", text: "Uphold", onclick: () => decideAppeal(appeal, "upheld") }),
      el("button", { type: "button", class: "secondary", text: "Reject", onclick: () => decideAppeal(appeal, "rejected") }),
    ));
  }
  return card;
}

async function decideAppeal(appeal, outcome) {
  const reason = prompt(outcome === "upheld" ? "Why is it upheld? (the user reads this)" : "Why is it rejected? (the user reads this)");
  if (!reason || !reason.trim()) return;
  try {
    await api("POST", `/moderation/appeals/${encodeURIComponent(appeal.appealId)}/decide`, { outcome, reason: reason.trim() });
    info(`Appeal ${outcome}.`);
    await loadAppeals();
  } catch (err) {
    showError(err);
  }
}

async function loadTerms() {
  try {
    const res = await api("GET", "/moderation/terms");
    $("terms-json").value = JSON.stringify((res && res.terms) || [], null, 2);
    $("terms-json").readOnly = !can("admin");
    $("terms-error").textContent = "";
  } catch (err) {
    showError(err);
  }
}

async function saveTerms(event) {
  event.preventDefault();
  let terms;
  try {
    terms = JSON.parse($("terms-json").value);
  } catch (err) {
    $("terms-error").textContent = `Not valid JSON: ${err.message}`;
    return;
  }
  try {
    const res = await api("PUT", "/moderation/terms", { terms });
    $("terms-json").value = JSON.stringify((res && res.terms) || [], null, 2);
    $("terms-error").textContent = "";
    info("Terms saved.");
  } catch (err) {
    showError(err);
    if (err instanceof ApiError) {
      const field = err.details && err.details.field ? `${err.details.field}: ` : "";
      $("terms-error").textContent = `${field}${err.message}`;
    }
  }
}

async function loadAudit() {
  const raw = $("audit-since").value;
  const since = raw ? Math.floor(new Date(raw).getTime() / 1000) || 0 : 0;
  try {
    const res = await api("GET", `/audit?since=${since}`);
    const entries = (res && Array.isArray(res.entries)) ? res.entries.slice() : Array.isArray(res) ? res.slice() : [];
    entries.sort((a, b) => (b.at || 0) - (a.at || 0) || (b.id || 0) - (a.id || 0));
    $("audit-count").textContent = `${entries.length} entr${entries.length === 1 ? "y" : "ies"}`;
    const body = $("audit-body");
    body.replaceChildren(...entries.map((e) => el("tr", {},
      el("td", { text: fmtTime(e.at) }),
      el("td", { text: e.actor ?? "" }),
      el("td", { text: e.action ?? "" }),
      el("td", { text: e.target ?? "" }),
      el("td", {}, e.details && Object.keys(e.details).length ? el("pre", { text: pretty(e.details) }) : ""),
    )));
    if (!entries.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No entries." })));
  } catch (err) {
    showError(err);
  }
}

// ------------------------------------------------------------------ operators (admins)

async function loadOperators() {
  if (!can("admin")) return;
  try {
    const res = await api("GET", "/operators");
    const ops = (res && Array.isArray(res.operators)) ? res.operators : [];
    $("operators-body").replaceChildren(...ops.map((op) => {
      const role = el("select", { "aria-label": `role of ${op.name}` },
        ["viewer", "moderator", "admin"].map((r) => el("option", { value: r, text: r })));
      role.value = op.role;
      role.disabled = me && op.name === me.name;
      role.addEventListener("change", () => patchOperator(op, { role: role.value }));
      const state = op.disabled ? "disabled" : op.locked ? `locked (${op.failures} failures)` : "active";
      return el("tr", {},
        el("td", { text: op.name }),
        el("td", {}, role),
        el("td", { text: Array.isArray(op.groups) && op.groups.length ? op.groups.join(", ") : "all" }),
        el("td", { text: op.totp ? `on (${op.recoveryCodesLeft} recovery codes)` : "off" }),
        el("td", { text: state }),
        el("td", {}, el("div", { class: "row" },
          op.locked ? el("button", { type: "button", class: "secondary", text: "Unlock",
            onclick: () => patchOperator(op, { locked: false }) }) : null,
          me && op.name === me.name ? null : el("button", {
            type: "button", class: op.disabled ? "secondary" : "danger",
            text: op.disabled ? "Enable" : "Disable",
            onclick: () => patchOperator(op, { disabled: !op.disabled }) }),
        )),
      );
    }));
  } catch (err) {
    showError(err);
  }
}

async function patchOperator(op, change) {
  try {
    await api("PATCH", `/operators/${encodeURIComponent(op.name)}`, change);
    info(`${op.name} updated.`);
  } catch (err) {
    showError(err);
  }
  await loadOperators();
}

async function addOperator(event) {
  event.preventDefault();
  const body = { name: $("operator-name").value.trim(), role: $("operator-role").value,
    password: $("operator-password").value, groups: fromCsv($("operator-groups").value) };
  try {
    await api("POST", "/operators", body);
    info(`Operator ${body.name} added.`);
    $("operator-form").reset();
    await loadOperators();
  } catch (err) {
    showError(err);
  }
}

// ------------------------------------------------------------------ my account (TOTP)

function renderAccount() {
  $("totp-state").textContent = me && me.totp
    ? `Two-factor sign-in is on (${me.recoveryCodesLeft} recovery codes left). Setting it up again replaces the secret and the codes.`
    : "Two-factor sign-in is off: only your password protects this account.";
}

async function beginTotp() {
  try {
    const res = await api("POST", "/operators/me/totp", {});
    $("totp-secret").textContent = res.secret;
    $("totp-uri").href = res.uri;
    $("totp-enrol").hidden = false;
    $("totp-codes").hidden = true;
    $("totp-code").focus();
  } catch (err) {
    showError(err);
  }
}

async function confirmTotp(event) {
  event.preventDefault();
  try {
    const res = await api("POST", "/operators/me/totp/confirm", { code: $("totp-code").value.trim() });
    $("totp-enrol").hidden = true;
    $("totp-codes-list").textContent = (res.recoveryCodes || []).join("\n");
    $("totp-codes").hidden = false;
    $("totp-confirm").reset();
    await refreshMe();
    renderAccount();
  } catch (err) {
    showError(err);
  }
}

// ------------------------------------------------------------------ sign-in

async function refreshMe() {
  const res = await request("GET", "/api/v1/operators/me");
  me = res.operator;
  csrf = res.csrfToken;
}

function signedIn() {
  $("login-view").hidden = true;
  $("dash-view").hidden = false;
  $("logout").hidden = false;
  const limited = Array.isArray(me.groups) && me.groups.length ? `, groups ${me.groups.join(", ")}` : "";
  $("whoami").textContent = `${me.name} (${me.role}${limited})`;
  document.body.dataset.role = me.role;
  for (const node of document.querySelectorAll("[data-needs]")) node.hidden = !can(node.dataset.needs);
  let tab = "queue";
  try { tab = sessionStorage.getItem("parley.tab") || "queue"; } catch { /* ignore */ }
  const allowed = tab in loaders && !document.querySelector(`.tabs [data-tab="${tab}"]`).hidden;
  showTab(allowed ? tab : "queue");
  live.start();
}

function signedOut() {
  me = null;
  csrf = null;
  live.stop();
  $("login-view").hidden = false;
  $("dash-view").hidden = true;
  $("logout").hidden = true;
  $("whoami").textContent = "";
  $("login-code-field").hidden = true;
  $("login-code").value = "";
}

async function signIn(name, password, code) {
  $("login-error").textContent = "";
  const body = { name, password };
  if (code) body.code = code;
  try {
    const res = await request("POST", "/api/v1/operators/login", { body });
    me = res.operator;
    csrf = res.csrfToken;
    $("login-password").value = "";
    $("login-code").value = "";
    signedIn();
  } catch (err) {
    if (err instanceof ApiError && err.details && err.details.totp) {
      $("login-code-field").hidden = false;
      $("login-code").focus();
    }
    $("login-error").textContent = err instanceof ApiError ? err.message : String(err);
  }
}

async function signOut() {
  try {
    await api("POST", "/operators/logout");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showError(err);
  }
  signedOut();
}

async function offerDemo() {
  try {
    const res = await request("GET", "/api/v1/operators/login-options");
    $("oidc-login").hidden = !(res && res.oidc);
    const accounts = res && Array.isArray(res.demoAccounts) ? res.demoAccounts : [];
    $("demo-logins").hidden = !res.demo || !accounts.length;
    $("demo-buttons").replaceChildren(...accounts.map((a) => el("button", {
      type: "button", class: "secondary", text: `Sign in as ${a.name} (${a.role})`,
      onclick: () => signIn(a.name, a.password),
    })));
  } catch { /* no demo offer */ }
}

// ------------------------------------------------------------------ live updates

/**
 * The dashboard's WebSocket (/dashboard/live, authenticated by the session cookie): held
 * messages appear in the queue, decisions taken elsewhere leave it, and claims mark who is
 * deciding which item. Reconnects with a growing pause; the queue is reloaded on each
 * (re)connect so nothing sent while it was down is missed.
 */
const live = {
  ws: null,
  retry: 0,
  timer: null,
  wanted: false,
  start() {
    this.wanted = true;
    this.connect();
  },
  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
    this.ws = null;
    claims.clear();
    setLiveState("offline");
  },
  connect() {
    if (!this.wanted) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/dashboard/live`);
    this.ws = ws;
    setLiveState("connecting");
    ws.addEventListener("open", () => {
      this.retry = 0;
      setLiveState("live");
      if (currentTab === "queue") loadQueue();
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      onLive(frame);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      setLiveState("offline");
      if (!this.wanted) return;
      this.retry = Math.min(this.retry + 1, 6);
      this.timer = setTimeout(() => this.connect(), 500 * 2 ** this.retry);
    });
  },
  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  },
};

/** messageId -> who claimed it ("operator:name"). */
const claims = new Map();

function setLiveState(state) {
  const badge = $("live-state");
  badge.textContent = state;
  badge.className = `badge ${state === "live" ? "approved" : state === "offline" ? "disapproved" : ""}`;
}

function onLive(frame) {
  if (frame.type === "hello") {
    claims.clear();
    for (const c of frame.claims || []) claims.set(String(c.messageId), c.by);
    refreshClaims();
  } else if (frame.type === "held") {
    if (currentTab === "queue" && $("queue-state").value === frame.item.state) {
      const box = $("queue-items");
      if (!box.querySelector(`[data-message-id="${CSS.escape(String(frame.item.message.id))}"]`)) {
        const empty = box.querySelector("p.muted");
        if (empty) empty.remove();
        box.append(queueCard(frame.item, frame.item.state));
        countCards();
      }
    }
  } else if (frame.type === "counters") {
    showCounters(frame);
  } else if (frame.type === "changed") {
    if (currentTab === "queue" && $("queue-state").value === frame.state) loadQueue();
  } else if (frame.type === "decided") {
    claims.delete(String(frame.messageId));
    decidedIds.add(String(frame.messageId));
    const card = $("queue-items").querySelector(`[data-message-id="${CSS.escape(String(frame.messageId))}"]`);
    if (card && $("queue-state").value !== "disapproved") {
      card.remove();
      countCards();
      if (frame.by !== myActor()) info(`#${frame.messageId} ${frame.decision} by ${frame.by}.`);
    }
  } else if (frame.type === "claimed") {
    claims.set(String(frame.messageId), frame.by);
    refreshClaims();
  } else if (frame.type === "released") {
    claims.delete(String(frame.messageId));
    refreshClaims();
  } else if (frame.type === "claim_refused") {
    claims.set(String(frame.messageId), frame.by);
    refreshClaims();
    toast("ERR_CONFLICT", `#${frame.messageId} is being decided by ${frame.by}.`);
  }
}

// The live counters: the last two minutes of each (a frame every 2 s), drawn as sparklines.
const COUNTERS = [
  { key: "messagesPerSecond", label: "messages/s", get: (f) => f.messagesPerSecond },
  { key: "pending", label: "pending now", get: (f) => (f.open || {}).review },
  { key: "reports", label: "reports open", get: (f) => (f.open || {}).reported },
  { key: "blocked", label: "blocked/s", get: (f) => f.blockedPerSecond },
  { key: "p50", label: "verdict p50 ms ≤", get: (f) => f.verdictP50Ms },
  { key: "p99", label: "verdict p99 ms ≤", get: (f) => f.verdictP99Ms },
];
const counterHistory = new Map();
const blockedTotals = new Map(); // rule id -> messages it blocked since this page opened

function showCounters(frame) {
  const box = $("live-counters");
  box.hidden = false;
  for (const r of Array.isArray(frame.blockedByRule) ? frame.blockedByRule : []) {
    blockedTotals.set(r.ruleId, (blockedTotals.get(r.ruleId) || 0) + (Number(r.count) || 0));
  }
  const top = [...blockedTotals].sort((a, b) => b[1] - a[1]).slice(0, 5);
  const byRule = el("div", { class: "counter by-rule", "data-counter": "by-rule" },
    el("span", { class: "counter-label muted small", text: "blocked by rule, since this page opened" }),
    el("span", { class: "by-rule-list small", text: top.length ? top.map(([rule, n]) => `${rule}: ${n}`).join(" · ") : "—" }));
  const counters = COUNTERS.map((c) => {
    const value = c.get(frame);
    const series = counterHistory.get(c.key) || [];
    series.push(typeof value === "number" ? value : 0);
    if (series.length > 60) series.shift();
    counterHistory.set(c.key, series);
    return el("div", { class: "counter", "data-counter": c.key },
      el("span", { class: "counter-value", text: value === null || value === undefined ? "—" : String(value) }),
      el("span", { class: "counter-label muted small", text: c.label }),
      sparkline(series));
  });
  box.replaceChildren(...counters, byRule);
}

function sparkline(series) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 60 16");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  svg.setAttribute("aria-hidden", "true");
  const max = Math.max(1e-9, ...series);
  const points = series.map((v, i) => `${i + 60 - series.length},${(16 - (v / max) * 15).toFixed(1)}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

function myActor() {
  return me ? `operator:${me.name}` : "";
}

function countCards() {
  const left = $("queue-items").querySelectorAll(".card").length;
  $("queue-count").textContent = `${left} item${left === 1 ? "" : "s"}`;
}

/** Show on every card who holds its claim; another's claim disables the decision buttons. */
function refreshClaims() {
  for (const card of $("queue-items").querySelectorAll(".card[data-message-id]")) {
    const by = claims.get(card.dataset.messageId);
    const mine = by === myActor();
    const badge = card.querySelector(".claim");
    if (badge) {
      badge.hidden = !by;
      badge.textContent = by ? (mine ? "claimed by you" : `claimed by ${by}`) : "";
    }
    for (const b of card.querySelectorAll(".decide button")) {
      if (b.dataset.role === "claim") b.textContent = mine ? "Release" : "Claim";
      b.disabled = Boolean(by && !mine);
    }
  }
}

// ------------------------------------------------------------------ start

function init() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("login-name").value.trim();
    const password = $("login-password").value;
    if (name && password) signIn(name, password, $("login-code").value.trim());
  });
  $("logout").addEventListener("click", signOut);
  for (const button of document.querySelectorAll(".tabs [data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }

  $("queue-state").addEventListener("change", loadQueue);
  $("bulk-approve").addEventListener("click", () => bulk("approve"));
  $("bulk-disapprove").addEventListener("click", () => bulk("disapprove"));
  $("queue-select-all").addEventListener("change", (e) => {
    for (const pick of $("queue-items").querySelectorAll(".pick")) pick.checked = e.target.checked;
    updateBulk();
  });
  document.addEventListener("keydown", onKey);
  $("queue-refresh").addEventListener("click", loadQueue);

  $("rules-new").addEventListener("click", () => editRule(null));
  $("rules-refresh").addEventListener("click", loadRules);
  $("rule-save").addEventListener("click", saveRule);
  $("rule-dry-run").addEventListener("click", dryRun);
  for (const radio of document.querySelectorAll("input[name=rule-view]")) {
    radio.addEventListener("change", () => setRuleView(radio.value));
  }
  $("rule-cancel").addEventListener("click", () => { $("rule-editor").hidden = true; });
  $("revisions-close").addEventListener("click", () => { $("rule-revisions").hidden = true; });

  $("lists-new").addEventListener("click", () => editList(null));
  $("lists-refresh").addEventListener("click", loadLists);
  $("list-editor").addEventListener("submit", saveList);
  $("list-cancel").addEventListener("click", () => { $("list-editor").hidden = true; });
  $("list-items").addEventListener("input", updateListCount);
  $("list-images").addEventListener("change", addListImages);
  $("appeals-refresh").addEventListener("click", loadAppeals);
  $("terms-form").addEventListener("submit", saveTerms);

  $("tryout-form").addEventListener("submit", evaluate);
  $("tryout-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("tryout-form").requestSubmit();
  });

  $("audit-refresh").addEventListener("click", loadAudit);
  $("audit-since").addEventListener("change", loadAudit);

  $("operator-form").addEventListener("submit", addOperator);
  $("totp-begin").addEventListener("click", beginTotp);
  $("totp-confirm").addEventListener("submit", confirmTotp);

  // Already signed in (the cookie is HttpOnly: ask the server)?
  refreshMe().then(signedIn, () => { signedOut(); offerDemo(); });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
