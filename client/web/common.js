// Helpers shared by the demo chat client (app.js) and the moderator dashboard (dashboard.js).
// Plain ES module, no dependencies. Values from the server are rendered with textContent,
// never innerHTML.

export const $ = (id) => document.getElementById(id);

/** Create an element; string/number children become text nodes (never parsed as HTML). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A dismissable notice in the #toasts box. */
export function toast(code, message, details, kind = "error") {
  const box = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", title: "Dismiss" });
  if (code) box.append(el("span", { class: "code", text: code }));
  box.append(el("span", { text: message || "" }));
  if (details && typeof details === "object" && Object.keys(details).length) {
    box.append(el("div", { class: "details", text: JSON.stringify(details) }));
  }
  box.addEventListener("click", () => box.remove());
  $("toasts").append(box);
  setTimeout(() => box.remove(), kind === "error" ? 10000 : 4000);
}

/** A REST error body `{code, message, details}` with its HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || `HTTP_${status}`;
    this.details = (body && body.details) || {};
  }
}

/** fetch() a JSON endpoint; resolves to the decoded body, rejects with ApiError. */
export async function request(method, path, { body, headers = {} } = {}) {
  const all = { Accept: "application/json", ...headers };
  if (body !== undefined) all["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers: all, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { code: "ERR_NETWORK", message: String(err.message || err) });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 300) }; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}
