/**
 * The REST half of the SDK: thin wrappers over `/api/v1` with the platform's `fetch`.
 *
 * Two kinds of caller use it:
 * - an app's backend (Node), with the app's API key: users, tokens, groups, moderation;
 * - a user's device (browser, React Native, Node), with the user's JWT: history, inbox,
 *   blocking, reports, media uploads.
 */

import { isRecord, ParleyConnectionError, ParleyError, ParleyTimeoutError } from "./errors.js";
import type {
  ConversationSummary,
  Decision,
  Group,
  GroupScope,
  GroupType,
  HistoryPage,
  IssuedToken,
  JsonObject,
  Media,
  MediaMessageType,
  Message,
  MessageReactionFrame,
  PushEndpoint,
  ReactionSummary,
  ReceiverType,
  Report,
  Role,
  SendBody,
  ThreadPage,
  User,
} from "./types.js";
import { newMuid } from "./util.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;
/** A token, or a function giving the current one (called before every request). */
export type TokenSource = string | (() => string | Promise<string>);

export interface RestClientOptions {
  /** The server's base URL, e.g. `https://chat.example.com` (no `/api/v1`). */
  baseUrl: string;
  /** The app's API key, for server-to-server calls (never ship it to a browser or app). */
  apiKey?: string;
  /** A user's JWT, or a function that returns the current one. */
  token?: TokenSource;
  /** A `fetch` implementation; the platform's global one by default. */
  fetch?: FetchLike;
  /** Per request, in milliseconds (default 30 000; 0 for none). */
  timeoutMs?: number;
  /** Extra headers sent with every API request. */
  headers?: Record<string, string>;
}

export interface RequestOptions {
  json?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  /** A raw body (FormData for uploads); `json` wins when both are given. */
  body?: BodyInit;
  headers?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A file for `upload`: a Blob/File, raw bytes, or React Native's `{uri, name, type}`. */
export type UploadSource =
  | Blob
  | ArrayBuffer
  | ArrayBufferView
  | { uri: string; name?: string; type?: string };

export interface UploadOptions {
  /** The file name (default: the File's name, else `file`). */
  name?: string;
  /** The declared type (default: the Blob's type, else `application/octet-stream`). */
  contentType?: string;
  /** What the file is meant to be; the server checks the content against it. */
  kind?: MediaMessageType;
  /** With the API key: the user the file belongs to. */
  uploader?: string;
  timeoutMs?: number;
}

export interface CreateUserBody {
  uid: string;
  name?: string;
  role?: Role;
  tags?: string[];
  metadata?: JsonObject;
}

export interface CreateGroupBody {
  guid: string;
  name: string;
  type?: GroupType;
  tags?: string[];
  /** With the API key: the owner (optional: without it the group has no user owner). */
  owner?: string;
}

export interface FlagResult {
  messageId: number;
  report: Report;
  reportId?: number | string;
  [extra: string]: unknown;
}

/** Rules, lists, settings, queue items: app-defined shapes, passed through as JSON. */
export type Doc = Record<string, unknown>;

export class RestClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly token: TokenSource | undefined;
  private readonly fetchImpl: FetchLike;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;

  constructor(options: RestClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.token = options.token;
    const f = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (typeof f !== "function") {
      throw new TypeError("no fetch implementation: pass options.fetch");
    }
    // Called unbound: some platforms' fetch refuses to run with another `this`.
    this.fetchImpl = (input, init) => f(input, init);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.headers = { ...(options.headers ?? {}) };
  }

  /** An absolute URL for a root-relative media link the server gave (`/media/...`). */
  resolveUrl(url: string): string {
    return new URL(url, this.baseUrl + "/").toString();
  }

  // ------------------------------------------------------------------ plumbing

  /**
   * One call to `/api/v1{path}`. Returns the decoded JSON body (`undefined` for 204); a
   * non-2xx answer throws {@link ParleyError} with `code`, `message`, `details`, `status`.
   */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(`${this.baseUrl}/api/v1${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { Accept: "application/json", ...this.headers };
    if (this.apiKey !== undefined) headers["X-API-Key"] = this.apiKey;
    if (this.token !== undefined) {
      const token = typeof this.token === "function" ? await this.token() : this.token;
      headers.Authorization = `Bearer ${token}`;
    }
    let body: BodyInit | undefined = options.body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    Object.assign(headers, options.headers ?? {});
    const response = await this.fetchWithTimeout(
      url.toString(),
      { method, headers, body },
      options.timeoutMs ?? this.timeoutMs,
      options.signal,
    );
    return (await decode(response)) as T;
  }

  private async fetchWithTimeout(
    url: string,
    init: RequestInit,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Response> {
    const controller = typeof AbortController === "function" ? new AbortController() : undefined;
    let timedOut = false;
    const timer =
      controller !== undefined && timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeoutMs)
        : undefined;
    const onAbort = () => controller?.abort();
    signal?.addEventListener("abort", onAbort);
    try {
      return await this.fetchImpl(url, controller ? { ...init, signal: controller.signal } : init);
    } catch (error) {
      if (timedOut) {
        throw new ParleyTimeoutError(`${init.method ?? "GET"} ${url}: no answer in ${timeoutMs} ms`, timeoutMs);
      }
      if (error instanceof ParleyError) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      throw new ParleyConnectionError(`${init.method ?? "GET"} ${url} failed: ${reason}`, { cause: error });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  // ------------------------------------------------------------------ users and tokens (API key)

  createUser(body: CreateUserBody): Promise<User> {
    return this.request("POST", "/users", { json: body });
  }

  getUser(uid: string): Promise<User> {
    return this.request("GET", `/users/${seg(uid)}`);
  }

  updateUser(
    uid: string,
    fields: Partial<Pick<User, "name" | "role" | "tags" | "metadata" | "banned">>,
  ): Promise<User> {
    return this.request("PATCH", `/users/${seg(uid)}`, { json: fields });
  }

  /** Soft delete; `erase: true` is the GDPR erasure (messages and media too). */
  async deleteUser(uid: string, options: { erase?: boolean } = {}): Promise<void> {
    await this.request("DELETE", `/users/${seg(uid)}`, {
      query: { erase: options.erase ? "true" : undefined },
    });
  }

  /** A JWT for `uid` (`ttl` seconds, default the server's `token_ttl`). */
  issueToken(uid: string, options: { ttl?: number } = {}): Promise<IssuedToken> {
    const json = options.ttl === undefined ? {} : { ttl: options.ttl };
    return this.request("POST", `/users/${seg(uid)}/tokens`, { json });
  }

  /** All of a user's data, decrypted (GDPR export). */
  exportUser(uid: string): Promise<Doc> {
    return this.request("GET", `/users/${seg(uid)}/export`);
  }

  // ------------------------------------------------------------------ blocking (user)

  async blockedUsers(): Promise<string[]> {
    return (await this.request<{ uids: string[] }>("GET", "/me/blocked-users")).uids;
  }

  /** Block users (both ways); returns the full list afterwards. */
  async block(...uids: string[]): Promise<string[]> {
    return (await this.request<{ uids: string[] }>("POST", "/me/blocked-users", { json: { uids } })).uids;
  }

  async unblock(uid: string): Promise<string[]> {
    return (await this.request<{ uids: string[] }>("DELETE", `/me/blocked-users/${seg(uid)}`)).uids;
  }

  // ------------------------------------------------------------------ groups

  createGroup(body: CreateGroupBody): Promise<Group> {
    return this.request("POST", "/groups", { json: { type: "public", tags: [], ...body } });
  }

  getGroup(guid: string): Promise<Group> {
    return this.request("GET", `/groups/${seg(guid)}`);
  }

  /** `PATCH /groups/{guid}` (e.g. `{slowModeSeconds}`). */
  updateGroup(guid: string, fields: Doc): Promise<Group> {
    return this.request("PATCH", `/groups/${seg(guid)}`, { json: fields });
  }

  addMember(guid: string, uid: string, scope: Exclude<GroupScope, "owner"> = "participant"): Promise<Group> {
    return this.request("POST", `/groups/${seg(guid)}/members`, { json: { uid, scope } });
  }

  setScope(guid: string, uid: string, scope: Exclude<GroupScope, "owner">): Promise<Group> {
    return this.request("PATCH", `/groups/${seg(guid)}/members/${seg(uid)}`, { json: { scope } });
  }

  /** A leave when `uid` is the caller, otherwise a kick. */
  async removeMember(guid: string, uid: string): Promise<void> {
    await this.request("DELETE", `/groups/${seg(guid)}/members/${seg(uid)}`);
  }

  kick(guid: string, uid: string): Promise<void> {
    return this.removeMember(guid, uid);
  }

  ban(guid: string, uid: string, reason = ""): Promise<{ guid: string; uid: string; banned: boolean }> {
    return this.request("POST", `/groups/${seg(guid)}/bans`, { json: { uid, reason } });
  }

  async unban(guid: string, uid: string): Promise<void> {
    await this.request("DELETE", `/groups/${seg(guid)}/bans/${seg(uid)}`);
  }

  // ------------------------------------------------------------------ messages

  /**
   * One page of a conversation: the newest `limit` (1..100, default 50) messages below
   * `before`, oldest first, and `hasMore`. Page backwards by passing the smallest id as
   * `before`.
   */
  historyPage(
    conversationId: string,
    options: { before?: number; limit?: number; conversationType?: ReceiverType } = {},
  ): Promise<HistoryPage> {
    return this.request("GET", `/conversations/${seg(conversationId)}/messages`, {
      query: {
        limit: options.limit ?? 50,
        before: options.before,
        conversationType: options.conversationType,
      },
    });
  }

  /** The messages of one page (see {@link historyPage}). */
  async history(
    conversationId: string,
    options: { before?: number; limit?: number; conversationType?: ReceiverType } = {},
  ): Promise<Message[]> {
    return (await this.historyPage(conversationId, options)).messages;
  }

  /** Every page from the newest backwards (each page oldest first), until `hasMore` is false. */
  async *historyPages(
    conversationId: string,
    options: { before?: number; pageSize?: number; conversationType?: ReceiverType } = {},
  ): AsyncGenerator<HistoryPage, void, undefined> {
    let before = options.before;
    for (;;) {
      const page = await this.historyPage(conversationId, {
        before,
        limit: options.pageSize ?? 50,
        conversationType: options.conversationType,
      });
      yield page;
      const first = page.messages[0];
      if (!page.hasMore || first === undefined) return;
      before = first.id;
    }
  }

  /**
   * `POST /messages`: a send over REST (idempotent on `muid`, generated when absent). With
   * the API key, `sender` names the acting user.
   */
  async sendMessage(body: SendBody & { sender?: string }): Promise<Message> {
    const json = { category: "message", ...body, muid: body.muid ?? newMuid() };
    return (await this.request<{ message: Message }>("POST", "/messages", { json })).message;
  }

  async getMessage(messageId: number): Promise<Message> {
    return (await this.request<{ message: Message }>("GET", `/messages/${messageId}`)).message;
  }

  async editMessage(messageId: number, text: string): Promise<Message> {
    return (await this.request<{ message: Message }>("PATCH", `/messages/${messageId}`, { json: { text } }))
      .message;
  }

  async deleteMessage(messageId: number): Promise<Message> {
    return (await this.request<{ message: Message }>("DELETE", `/messages/${messageId}`)).message;
  }

  /** Report a message to the moderators (user token). */
  flagMessage(messageId: number, reason: string, remarks = "", category?: string): Promise<FlagResult> {
    return this.request("POST", `/messages/${messageId}/flag`, {
      json: category === undefined ? { reason, remarks } : { reason, remarks, category },
    });
  }

  // ------------------------------------------------------------------ reactions, threads

  /** React with an emoji (user token); the message's counts after it (`message.reaction`). */
  react(messageId: number, emoji: string): Promise<MessageReactionFrame> {
    return this.request("POST", `/messages/${messageId}/reactions`, { json: { emoji } });
  }

  /** Take back a reaction (user token). */
  unreact(messageId: number, emoji: string): Promise<MessageReactionFrame> {
    return this.request("DELETE", `/messages/${messageId}/reactions/${seg(emoji)}`);
  }

  /** Who reacted with what. */
  async reactions(messageId: number): Promise<ReactionSummary[]> {
    const result = await this.request<{ reactions: ReactionSummary[] }>("GET", `/messages/${messageId}/reactions`);
    return result.reactions;
  }

  /** A thread: the parent and the newest `limit` replies below `before`, oldest first. */
  thread(messageId: number, options: { before?: number; limit?: number } = {}): Promise<ThreadPage> {
    return this.request("GET", `/messages/${messageId}/thread`, {
      query: { limit: options.limit ?? 50, before: options.before },
    });
  }

  // ------------------------------------------------------------------ offline push

  /**
   * Register this device for offline pushes (user token): a UnifiedPush/ntfy-style `url`
   * (`kind: "unifiedpush"`, the default) or a `webhook` to the app's relay (the answer then
   * carries its signing `secret`). The same `deviceId` again replaces the device's endpoint.
   * The URL must be on one of the server's configured push gateways.
   */
  registerPush(
    url: string,
    options: { kind?: "unifiedpush" | "webhook"; deviceId?: string; includeText?: boolean } = {},
  ): Promise<PushEndpoint> {
    return this.request("POST", "/me/push-endpoints", {
      json: {
        url,
        kind: options.kind ?? "unifiedpush",
        deviceId: options.deviceId ?? "default",
        includeText: options.includeText ?? false,
      },
    });
  }

  async pushEndpoints(): Promise<PushEndpoint[]> {
    return (await this.request<{ endpoints: PushEndpoint[] }>("GET", "/me/push-endpoints")).endpoints;
  }

  async unregisterPush(endpointId: string): Promise<void> {
    await this.request("DELETE", `/me/push-endpoints/${seg(endpointId)}`);
  }

  // ------------------------------------------------------------------ inbox, decisions

  /** The caller's conversations, newest first, with last message and unread count. */
  async conversations(options: { limit?: number } = {}): Promise<ConversationSummary[]> {
    const result = await this.request<{ conversations: ConversationSummary[] }>("GET", "/me/conversations", {
      query: { limit: options.limit },
    });
    return result.conversations;
  }

  /** The caller's own moderation decisions. */
  async myDecisions(): Promise<Decision[]> {
    const result = await this.request<unknown>("GET", "/me/decisions");
    if (Array.isArray(result)) return result as Decision[];
    return isRecord(result) && Array.isArray(result.decisions) ? (result.decisions as Decision[]) : [];
  }

  appeal(decisionId: string, note: string): Promise<{ appealId: string; state: string }> {
    return this.request("POST", `/decisions/${seg(decisionId)}/appeal`, { json: { note } });
  }

  // ------------------------------------------------------------------ media

  /**
   * `POST /media` (multipart `file`). Returns `{mediaId, name, mimeType, size, url, ...}`;
   * `url` is a root-relative signed link for the uploader (see {@link resolveUrl}).
   */
  upload(file: UploadSource, options: UploadOptions = {}): Promise<Media> {
    const form = new FormData();
    const fileName = options.name ?? (isNamed(file) ? file.name : undefined) ?? "file";
    if (isReactNativeFile(file)) {
      const part = { uri: file.uri, name: options.name ?? file.name ?? "file", type: options.contentType ?? file.type ?? "application/octet-stream" };
      form.append("file", part as unknown as Blob);
    } else {
      let blob: Blob;
      if (file instanceof Blob) {
        blob = options.contentType !== undefined && options.contentType !== file.type
          ? new Blob([file], { type: options.contentType })
          : file;
      } else {
        const bytes = file instanceof ArrayBuffer ? new Uint8Array(file) : new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
        blob = new Blob([bytes as BlobPart], { type: options.contentType ?? "application/octet-stream" });
      }
      form.append("file", blob, fileName);
    }
    return this.request("POST", "/media", {
      body: form,
      query: { kind: options.kind, uploader: options.uploader },
      timeoutMs: options.timeoutMs,
    });
  }

  /** The media object with fresh signed links (for a viewer who may see it). */
  getMedia(mediaId: string): Promise<Media> {
    return this.request("GET", `/media/${seg(mediaId)}`);
  }

  /**
   * The bytes behind a signed media link (as the server gave it, root-relative or absolute).
   * Sent without the API key or the user's token: the link is its own credential.
   */
  async download(url: string, options: { range?: [number, number]; timeoutMs?: number } = {}): Promise<ArrayBuffer> {
    const headers: Record<string, string> = {};
    if (options.range !== undefined) headers.Range = `bytes=${options.range[0]}-${options.range[1]}`;
    const target = this.resolveUrl(url);
    const response = await this.fetchWithTimeout(target, { method: "GET", headers }, options.timeoutMs ?? this.timeoutMs);
    if (!response.ok) await decode(response); // throws the server's error
    return await response.arrayBuffer();
  }

  // ------------------------------------------------------------------ moderation (staff: API key, moderator, admin)

  /** `POST /users/{uid}/restrictions` (`kind`: mute or shadow_ban). */
  restrict(uid: string, body: { kind: "mute" | "shadow_ban"; guid?: string; until?: number; reason?: string }): Promise<Doc> {
    return this.request("POST", `/users/${seg(uid)}/restrictions`, { json: body });
  }

  async liftRestriction(uid: string, restrictionId: string): Promise<void> {
    await this.request("DELETE", `/users/${seg(uid)}/restrictions/${seg(restrictionId)}`);
  }

  async listRules(): Promise<Doc[]> {
    return (await this.request<{ rules: Doc[] }>("GET", "/moderation/rules")).rules;
  }

  getRule(ruleId: string): Promise<Doc> {
    return this.request("GET", `/moderation/rules/${seg(ruleId)}`);
  }

  createRule(rule: Doc): Promise<Doc> {
    return this.request("POST", "/moderation/rules", { json: rule });
  }

  updateRule(ruleId: string, rule: Doc): Promise<Doc> {
    return this.request("PUT", `/moderation/rules/${seg(ruleId)}`, { json: rule });
  }

  async deleteRule(ruleId: string): Promise<void> {
    await this.request("DELETE", `/moderation/rules/${seg(ruleId)}`);
  }

  ruleRevisions(ruleId: string): Promise<{ revisions: Doc[] }> {
    return this.request("GET", `/moderation/rules/${seg(ruleId)}/revisions`);
  }

  dryRun(ruleId: string, options: { days?: number; rule?: Doc } = {}): Promise<Doc> {
    return this.request("POST", `/moderation/rules/${seg(ruleId)}/dry-run`, {
      json: { days: options.days ?? 7, ...(options.rule ? { rule: options.rule } : {}) },
    });
  }

  /** The shipped default rules and settings, each rule compared with the stored one. */
  ruleDefaults(): Promise<{ rules: Doc[]; settings: Doc }> {
    return this.request("GET", "/moderation/defaults");
  }

  /** Store the shipped default rule again (a new revision, or re-created if deleted). */
  resetRule(ruleId: string): Promise<Doc> {
    return this.request("POST", `/moderation/rules/${seg(ruleId)}/reset`);
  }

  async listLists(): Promise<Doc[]> {
    return (await this.request<{ lists: Doc[] }>("GET", "/moderation/lists")).lists;
  }

  getList(listId: string): Promise<Doc> {
    return this.request("GET", `/moderation/lists/${seg(listId)}`);
  }

  createList(body: Doc): Promise<Doc> {
    return this.request("POST", "/moderation/lists", { json: body });
  }

  updateList(listId: string, body: Doc): Promise<Doc> {
    return this.request("PUT", `/moderation/lists/${seg(listId)}`, { json: body });
  }

  async deleteList(listId: string): Promise<void> {
    await this.request("DELETE", `/moderation/lists/${seg(listId)}`);
  }

  getSettings(): Promise<Doc> {
    return this.request("GET", "/moderation/settings");
  }

  putSettings(body: Doc): Promise<Doc> {
    return this.request("PUT", "/moderation/settings", { json: body });
  }

  /** The review queue: `review`, `flagged`, `reported`, `disapproved` or `appeals`. */
  queue(state = "review", options: { limit?: number } = {}): Promise<{ state: string; items: Doc[] }> {
    return this.request("GET", "/moderation/queue", { query: { state, limit: options.limit } });
  }

  async approve(messageId: number, reason?: string): Promise<Message> {
    const json = reason === undefined ? {} : { reason };
    return (await this.request<{ message: Message }>("POST", `/moderation/messages/${messageId}/approve`, { json }))
      .message;
  }

  async disapprove(messageId: number, reason?: string): Promise<Message> {
    const json = reason === undefined ? {} : { reason };
    return (await this.request<{ message: Message }>("POST", `/moderation/messages/${messageId}/disapprove`, { json }))
      .message;
  }

  decideAppeal(appealId: string, outcome: "upheld" | "rejected", reason = ""): Promise<Doc> {
    return this.request("POST", `/moderation/appeals/${seg(appealId)}/decide`, { json: { outcome, reason } });
  }

  /** What the enabled rules would do with `text`, storing nothing. */
  evaluate(
    text: string,
    options: { messageType?: string; sender?: string; receiver?: string; receiverType?: ReceiverType } = {},
  ): Promise<Doc> {
    return this.request("POST", "/moderation/evaluate", {
      json: { text, messageType: options.messageType ?? "text", receiverType: options.receiverType ?? "user", sender: options.sender, receiver: options.receiver },
    });
  }

  /** `{entries}` of the audit log from `since` (Unix seconds). */
  audit(since = 0): Promise<{ entries: Doc[] }> {
    return this.request("GET", "/audit", { query: { since } });
  }
}

function seg(value: string): string {
  return encodeURIComponent(value);
}

function isNamed(value: unknown): value is { name: string } {
  return isRecord(value) && typeof value.name === "string";
}

function isReactNativeFile(value: unknown): value is { uri: string; name?: string; type?: string } {
  return isRecord(value) && typeof value.uri === "string" && !(typeof Blob !== "undefined" && value instanceof Blob);
}

async function decode(response: Response): Promise<unknown> {
  const text = await response.text();
  let body: unknown = text;
  if (text !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!response.ok) throw ParleyError.fromBody(body, { status: response.status });
  return text === "" ? undefined : body;
}
