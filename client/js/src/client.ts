/**
 * The WebSocket half of the SDK: one authenticated connection to `/ws`, request/reply by
 * frame `id`, typed events, durable sends (`muid`, retried until `message.sent`), and
 * automatic reconnect with back-off that resends what was not acknowledged.
 */

import { Emitter } from "./emitter.js";
import { isRecord, ParleyConnectionError, ParleyError, ParleyTimeoutError } from "./errors.js";
import { type FetchLike, RestClient, type TokenSource } from "./rest.js";
import type {
  AuthOkFrame,
  ClientFrame,
  GroupMemberFrame,
  Json,
  JsonObject,
  Media,
  MediaMessageType,
  Message,
  MessageDeletedFrame,
  MessageEditedFrame,
  MessageFlaggedFrame,
  MessageFrame,
  MessageModeratedFrame,
  MessageReactionFrame,
  MessageSentFrame,
  ModerationAppealFrame,
  ModerationDecisionFrame,
  ReceiptFrame,
  ReceiptType,
  ReceiverType,
  ReportOutcomeFrame,
  SendBody,
  ServerFrame,
  TypingFrame,
  TypingState,
  User,
} from "./types.js";
import { newMuid, toHttpBaseUrl, toWebSocketUrl } from "./util.js";

// ------------------------------------------------------------------ the platform's WebSocket

/** What the SDK needs of a WebSocket: the browser's, React Native's, Node 22's, or `ws`'s. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

const OPEN = 1;

// ------------------------------------------------------------------ options and events

export interface ReconnectOptions {
  /** First delay after a drop (default 500 ms). */
  initialDelayMs?: number;
  /** The longest delay (default 30 000 ms). */
  maxDelayMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
  /** Fraction of each delay that is random (default 0.5): spreads a crowd's reconnects. */
  jitter?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
}

export interface ParleyClientOptions {
  /** `wss://host/ws`, or the server's `https://host` (the `/ws` path is added). */
  url: string;
  /** The user's JWT, or a function giving a current one (called on every (re)connect). */
  token: TokenSource;
  /**
   * The WebSocket constructor. Default: `globalThis.WebSocket` (browsers, React Native,
   * Node >= 22). On Node 18/20 pass one, e.g. `import WebSocket from "ws"`.
   */
  WebSocket?: WebSocketConstructor;
  /** `fetch` for {@link ParleyClient.rest}; the global one by default. */
  fetch?: FetchLike;
  /** The server's HTTP base URL for {@link ParleyClient.rest} (default: from `url`). */
  restUrl?: string;
  /** Reconnect after a drop (default true); `false` to turn it off. */
  reconnect?: boolean | ReconnectOptions;
  /** Time for the socket to open and `auth.ok` to arrive (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Time for the reply to a request (edit, delete, flag, ping; default 10 000 ms). */
  requestTimeoutMs?: number;
  /**
   * How long a send waits for `message.sent` on an open connection before it is sent again
   * with the same `muid` (default 10 000 ms).
   */
  ackTimeoutMs?: number;
  /**
   * A send's overall deadline across retries and reconnects (default 0: none; the send stays
   * in the outbox until acknowledged, refused, or the client is closed).
   */
  sendTimeoutMs?: number;
  /**
   * An application `ping` every so often (default 25 000 ms; 0 turns it off): a connection
   * whose `pong` does not come within `heartbeatTimeoutMs` (default 10 000) is dropped and
   * reconnected. Browsers cannot see WebSocket pings, so this is how a dead network is noticed.
   */
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** A `muid` generator (default: 32 random hex characters). */
  newMuid?: () => string;
  /** Called when an event listener throws (default: `console.error`). */
  onListenerError?: (error: unknown) => void;
}

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** Every event of {@link ParleyClient.on}, with its payload. */
export interface ParleyEvents {
  /** A new message for this user (or this user's own, sent from another connection). */
  message: MessageFrame;
  /** The verdict on one of this user's messages (`approved` or `disapproved`). */
  "message.moderated": MessageModeratedFrame;
  "message.edited": MessageEditedFrame;
  "message.deleted": MessageDeletedFrame;
  /** Someone (this user on another connection included) reacted to a message this user has. */
  "message.reaction": MessageReactionFrame;
  receipt: ReceiptFrame;
  typing: TypingFrame;
  "group.member": GroupMemberFrame;
  "moderation.decision": ModerationDecisionFrame;
  "moderation.appeal": ModerationAppealFrame;
  "report.outcome": ReportOutcomeFrame;
  /**
   * An `error` frame that answers no pending call: the refusal of a `receipt` or `typing`
   * (`frameType` says which), or an error the server sent on its own.
   */
  error: ParleyError;
  /** Every frame the server sends, replies included, before it is handled. */
  frame: ServerFrame;
  /** Authenticated: the first time and after every reconnect. */
  connected: { user: User; reconnected: boolean };
  disconnected: { code: number; reason: string; willReconnect: boolean };
  reconnecting: { attempt: number; delayMs: number };
  state: ConnectionState;
  /** The client stopped for good: `close()`, a refused token, a banned user, or too many attempts. */
  closed: { code?: number; error?: Error };
}

export interface SendOptions {
  /** The idempotency key; reuse it to retry the same logical message (default: generated). */
  muid?: string;
  receiverType?: ReceiverType;
  metadata?: JsonObject;
  tags?: string[];
  parentId?: number | null;
  /** The overall deadline for this send (default: `sendTimeoutMs`). */
  timeoutMs?: number;
}

export interface SendMediaOptions extends SendOptions {
  /** The message type; default: the media's `kind`, else from its `mimeType`, else `file`. */
  messageType?: MediaMessageType;
  /** An optional caption (the message's `text`). */
  caption?: string;
}

/** A send waiting in the outbox for its `message.sent`. */
export interface PendingSend {
  muid: string;
  body: SendBody & { muid: string };
  attempts: number;
}

interface OutboxEntry extends PendingSend {
  seq: number;
  resolve: (message: Message) => void;
  reject: (error: Error) => void;
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  internalErrors: number;
}

interface PendingRequest {
  frameType: string;
  resolve: (frame: ServerFrame) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** The close codes after which reconnecting with the same token cannot help. */
const AUTH_FAILED = 4401;
const FORBIDDEN = 4403;
/** The code this SDK uses for a connection it drops itself (heartbeat, timeout). */
const CLIENT_DROP = 4000;

export class ParleyClient {
  readonly url: string;
  private readonly options: ParleyClientOptions;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly reconnectOptions: Required<ReconnectOptions> | undefined;
  private readonly events: Emitter<ParleyEvents>;

  private ws: WebSocketLike | undefined;
  private _state: ConnectionState = "idle";
  private _user: User | undefined;
  private connecting: Promise<User> | undefined;
  private everConnected = false;
  private closedByUser = false;
  private reconnectAttempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private heartbeatInFlight = false;

  private nextId = 0;
  private nextSeq = 0;
  private readonly pending = new Map<string, PendingRequest>();
  /** Frame ids of `message.send` attempts -> the outbox entry (all attempts of one muid). */
  private readonly sendIds = new Map<string, OutboxEntry>();
  private readonly outbox = new Map<string, OutboxEntry>();
  /** Frame ids of fire-and-forget frames (receipt, typing) -> their type, for error reports. */
  private readonly unanswered = new Map<string, string>();
  private _rest: RestClient | undefined;
  /** Fails the connect in progress (set while a socket is opening). */
  private abortOpening: ((error: Error) => void) | undefined;

  constructor(options: ParleyClientOptions) {
    this.options = options;
    this.url = toWebSocketUrl(options.url);
    const impl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (typeof impl !== "function") {
      throw new TypeError(
        "no WebSocket implementation on this platform: pass options.WebSocket " +
          '(on Node 18/20: `import WebSocket from "ws"`)',
      );
    }
    this.WebSocketImpl = impl;
    const r = options.reconnect ?? true;
    this.reconnectOptions =
      r === false
        ? undefined
        : {
            initialDelayMs: 500,
            maxDelayMs: 30_000,
            factor: 2,
            jitter: 0.5,
            maxAttempts: Number.POSITIVE_INFINITY,
            ...(r === true ? {} : r),
          };
    this.events = new Emitter<ParleyEvents>(
      options.onListenerError ?? ((error) => console.error("parley: an event listener threw", error)),
    );
  }

  // ------------------------------------------------------------------ state

  get state(): ConnectionState {
    return this._state;
  }

  /** The authenticated user (from the last `auth.ok`). */
  get user(): User | undefined {
    return this._user;
  }

  get isOpen(): boolean {
    return this._state === "open";
  }

  /** Sends not yet acknowledged, oldest first (e.g. to show them as "sending"). */
  pendingSends(): PendingSend[] {
    return [...this.outbox.values()]
      .sort((a, b) => a.seq - b.seq)
      .map(({ muid, body, attempts }) => ({ muid, body, attempts }));
  }

  /**
   * REST helpers for this user (history, inbox, blocking, media...), with the same token
   * and the server's HTTP base URL.
   */
  get rest(): RestClient {
    if (this._rest === undefined) {
      this._rest = new RestClient({
        baseUrl: this.options.restUrl ?? toHttpBaseUrl(this.url),
        token: () => this.currentToken(),
        ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      });
    }
    return this._rest;
  }

  private async currentToken(): Promise<string> {
    const t = this.options.token;
    return typeof t === "function" ? await t() : t;
  }

  private setState(state: ConnectionState): void {
    if (this._state === state) return;
    this._state = state;
    this.events.emit("state", state);
  }

  // ------------------------------------------------------------------ events

  /** Listen to an event; returns a function that removes the listener. */
  on<K extends keyof ParleyEvents>(type: K, listener: (payload: ParleyEvents[K]) => void): () => void {
    return this.events.on(type, listener);
  }

  once<K extends keyof ParleyEvents>(type: K, listener: (payload: ParleyEvents[K]) => void): () => void {
    return this.events.once(type, listener);
  }

  off<K extends keyof ParleyEvents>(type: K, listener: (payload: ParleyEvents[K]) => void): void {
    this.events.off(type, listener);
  }

  /**
   * The next `type` event matching `predicate`, within `timeoutMs` (default 10 000): for
   * scripts and tests. Rejects with {@link ParleyTimeoutError}.
   */
  waitFor<K extends keyof ParleyEvents>(
    type: K,
    predicate: (payload: ParleyEvents[K]) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<ParleyEvents[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new ParleyTimeoutError(`no ${String(type)} event within ${timeoutMs} ms`, timeoutMs));
      }, timeoutMs);
      const off = this.events.on(type, (payload) => {
        if (!predicate(payload)) return;
        clearTimeout(timer);
        off();
        resolve(payload);
      });
    });
  }

  onMessage(handler: (message: Message, frame: MessageFrame) => void): () => void {
    return this.on("message", (f) => handler(f.message, f));
  }

  /** The verdict on one of this user's messages; `frame.moderation` says why when disapproved. */
  onMessageModerated(handler: (message: Message, frame: MessageModeratedFrame) => void): () => void {
    return this.on("message.moderated", (f) => handler(f.message, f));
  }

  onMessageEdited(handler: (message: Message, frame: MessageEditedFrame) => void): () => void {
    return this.on("message.edited", (f) => handler(f.message, f));
  }

  onMessageDeleted(handler: (message: Message, frame: MessageDeletedFrame) => void): () => void {
    return this.on("message.deleted", (f) => handler(f.message, f));
  }

  onMessageReaction(handler: (frame: MessageReactionFrame) => void): () => void {
    return this.on("message.reaction", handler);
  }

  onReceipt(handler: (frame: ReceiptFrame) => void): () => void {
    return this.on("receipt", handler);
  }

  onTyping(handler: (frame: TypingFrame) => void): () => void {
    return this.on("typing", handler);
  }

  onGroupMember(handler: (frame: GroupMemberFrame) => void): () => void {
    return this.on("group.member", handler);
  }

  onModerationDecision(handler: (frame: ModerationDecisionFrame) => void): () => void {
    return this.on("moderation.decision", handler);
  }

  onModerationAppeal(handler: (frame: ModerationAppealFrame) => void): () => void {
    return this.on("moderation.appeal", handler);
  }

  onReportOutcome(handler: (frame: ReportOutcomeFrame) => void): () => void {
    return this.on("report.outcome", handler);
  }

  onError(handler: (error: ParleyError) => void): () => void {
    return this.on("error", handler);
  }

  onConnectionStateChange(handler: (state: ConnectionState) => void): () => void {
    return this.on("state", handler);
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Open the connection and authenticate (the token as the first frame, which works in
   * every environment). Resolves with the user of `auth.ok`. Rejects with
   * {@link ParleyError} for a refused token (`closeCode` 4401) or user (4403), or with
   * {@link ParleyConnectionError} / {@link ParleyTimeoutError} when the server cannot be
   * reached; the first connect is not retried (call it again). Once connected, drops are
   * reconnected automatically.
   */
  connect(): Promise<User> {
    if (this._state === "open" && this._user !== undefined) return Promise.resolve(this._user);
    if (this.connecting !== undefined) return this.connecting;
    // While reconnecting in the background, connect() means "try now" (failures keep the
    // background loop going); otherwise it is a first connect, not retried.
    const background = this._state === "reconnecting";
    this.clearReconnectTimer();
    return this.attempt(background);
  }

  private attempt(background: boolean): Promise<User> {
    this.closedByUser = false;
    this.setState(background ? "reconnecting" : "connecting");
    const attempt = this.openSocket().then(
      (user) => {
        this.connecting = undefined;
        return user;
      },
      (error: unknown) => {
        this.connecting = undefined;
        if (this.closedByUser) {
          // close() was called meanwhile: it has settled everything.
        } else if (background) {
          this.afterFailedReconnect(error);
        } else {
          this.setState("idle");
        }
        throw error;
      },
    );
    this.connecting = attempt;
    return attempt;
  }

  /**
   * Stop for good: close the socket, stop reconnecting, and reject what is waiting
   * (pending requests, and sends not yet acknowledged) with {@link ParleyConnectionError}.
   */
  close(): void {
    this.closedByUser = true;
    this.clearReconnectTimer();
    this.abortOpening?.(new ParleyConnectionError("the client was closed", { closeCode: 1000 }));
    const ws = this.ws;
    this.ws = undefined;
    if (ws !== undefined) {
      detach(ws);
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    this.afterSocketGone();
    this.finish({ code: 1000, error: new ParleyConnectionError("the client was closed", { closeCode: 1000 }) });
  }

  /**
   * Drop the current connection as if the network had failed, and reconnect (with the
   * usual back-off). For apps that learn the network changed (e.g. the browser's `online`
   * event), and for tests.
   */
  reconnectNow(): void {
    if (this.closedByUser || this._state === "closed") return;
    if (this._state === "open" && this.ws !== undefined) {
      this.abandonSocket(CLIENT_DROP, "reconnect requested");
    } else if (this._state === "reconnecting") {
      this.clearReconnectTimer();
      this.reconnectAttempt = 0;
      if (this.connecting === undefined) void this.attempt(true).catch(() => undefined);
    }
  }

  /** Give the open connection a fresh token (the server checks it like the first). */
  async refreshToken(token?: string): Promise<User> {
    const t = token ?? (await this.currentToken());
    const reply = (await this.request({ type: "auth", token: t })) as AuthOkFrame;
    this._user = reply.user;
    return reply.user;
  }

  private openSocket(): Promise<User> {
    return new Promise<User>((resolve, reject) => {
      let settled = false;
      let refusal: ParleyError | undefined;
      const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        this.abortOpening = undefined;
        clearTimeout(timer);
        reject(error);
      };
      let ws: WebSocketLike;
      try {
        ws = new this.WebSocketImpl(this.url);
      } catch (error) {
        reject(new ParleyConnectionError(`cannot open ${this.url}: ${String(error)}`, { cause: error }));
        return;
      }
      this.ws = ws;
      const giveUp = (error: Error) => {
        if (this.ws === ws) this.ws = undefined;
        detach(ws);
        safeClose(ws, CLIENT_DROP, "connect abandoned");
        fail(error);
      };
      const timer = setTimeout(() => {
        giveUp(new ParleyTimeoutError(`no auth.ok from ${this.url} within ${timeoutMs} ms`, timeoutMs));
      }, timeoutMs);
      this.abortOpening = giveUp;

      ws.onopen = () => {
        void this.currentToken().then(
          (token) => {
            if (settled || this.ws !== ws) return;
            ws.send(JSON.stringify({ type: "auth", id: "auth", token }));
          },
          (error: unknown) => {
            detach(ws);
            safeClose(ws, CLIENT_DROP, "no token");
            if (this.ws === ws) this.ws = undefined;
            fail(new ParleyConnectionError(`the token function failed: ${String(error)}`, { cause: error }));
          },
        );
      };
      ws.onmessage = (event: { data: unknown }) => {
        const frame = parseFrame(event.data);
        if (frame === undefined) return;
        if (frame.type === "auth.ok") {
          if (settled) return;
          settled = true;
          this.abortOpening = undefined;
          clearTimeout(timer);
          this.events.emit("frame", frame);
          this.onAuthenticated(ws, frame.user);
          resolve(frame.user);
        } else if (frame.type === "error" && !settled) {
          this.events.emit("frame", frame);
          refusal = ParleyError.fromBody(frame, { frameType: "auth" });
        }
      };
      ws.onerror = () => {
        // The close event follows with the details there are; nothing to do here.
      };
      ws.onclose = (event: { code?: number; reason?: string }) => {
        if (this.ws === ws) this.ws = undefined;
        detach(ws);
        const code = typeof event.code === "number" ? event.code : 1006;
        const reason = typeof event.reason === "string" ? event.reason : "";
        if (refusal !== undefined) {
          fail(
            new ParleyError(refusal.code, refusal.message, {
              details: refusal.details,
              closeCode: code,
              frameType: "auth",
            }),
          );
        } else if (code === AUTH_FAILED || code === FORBIDDEN) {
          fail(
            new ParleyError(code === AUTH_FAILED ? "ERR_AUTH_INVALID" : "ERR_FORBIDDEN", reason || "refused", {
              closeCode: code,
              frameType: "auth",
            }),
          );
        } else {
          fail(new ParleyConnectionError(`connection to ${this.url} closed (${code}) before auth.ok`, { closeCode: code }));
        }
      };
    });
  }

  /** `auth.ok` arrived: hand the socket to the steady-state handlers and flush the outbox. */
  private onAuthenticated(ws: WebSocketLike, user: User): void {
    this._user = user;
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.reconnectAttempt = 0;
    ws.onmessage = (event: { data: unknown }) => {
      const frame = parseFrame(event.data);
      if (frame !== undefined) this.dispatch(frame);
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      detach(ws);
      this.onDrop(typeof event.code === "number" ? event.code : 1006, typeof event.reason === "string" ? event.reason : "");
    };
    this.setState("open");
    this.startHeartbeat();
    // Resend, in their original order, the sends that have no `message.sent` yet: the
    // server answers a muid it already stored with the stored message, so nothing doubles.
    for (const entry of [...this.outbox.values()].sort((a, b) => a.seq - b.seq)) {
      if (entry.retryTimer === undefined) this.transmit(entry);
    }
    this.events.emit("connected", { user, reconnected });
  }

  /** Close `ws` now, without waiting for a closing handshake a dead network never completes. */
  private abandonSocket(code: number, reason: string): void {
    const ws = this.ws;
    if (ws === undefined) return;
    this.ws = undefined;
    detach(ws);
    safeClose(ws, code, reason);
    this.onDrop(code, reason);
  }

  /** The open connection went away (network, server restart, server close). */
  private onDrop(code: number, reason: string): void {
    this.afterSocketGone();
    if (this.closedByUser) return;
    const fatal = code === FORBIDDEN || (code === AUTH_FAILED && typeof this.options.token !== "function");
    const willReconnect = this.reconnectOptions !== undefined && !fatal;
    this.events.emit("disconnected", { code, reason, willReconnect });
    if (!willReconnect) {
      const error = fatal
        ? new ParleyError(code === FORBIDDEN ? "ERR_FORBIDDEN" : "ERR_AUTH_INVALID", reason || "refused", { closeCode: code })
        : new ParleyConnectionError(`connection closed (${code}${reason ? ` ${reason}` : ""})`, { closeCode: code });
      this.finish({ code, error });
      return;
    }
    this.setState("reconnecting");
    this.scheduleReconnect();
  }

  /** Common cleanup when a socket is gone: timers, and requests that can no longer be answered. */
  private afterSocketGone(): void {
    this.stopHeartbeat();
    for (const entry of this.outbox.values()) {
      if (entry.ackTimer !== undefined) clearTimeout(entry.ackTimer);
      entry.ackTimer = undefined;
    }
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.unanswered.clear();
    for (const request of pending) {
      if (request.timer !== undefined) clearTimeout(request.timer);
      request.reject(new ParleyConnectionError(`the connection closed before the reply to ${request.frameType}`));
    }
  }

  private scheduleReconnect(): void {
    const r = this.reconnectOptions;
    if (r === undefined || this.closedByUser) return;
    this.clearReconnectTimer();
    this.reconnectAttempt += 1;
    if (this.reconnectAttempt > r.maxAttempts) {
      this.finish({ error: new ParleyConnectionError(`gave up after ${r.maxAttempts} reconnect attempts`) });
      return;
    }
    const base = Math.min(r.maxDelayMs, r.initialDelayMs * r.factor ** (this.reconnectAttempt - 1));
    const delayMs = Math.round(base * (1 - r.jitter * Math.random()));
    this.events.emit("reconnecting", { attempt: this.reconnectAttempt, delayMs });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closedByUser) return;
      void this.attempt(true).catch(() => undefined); // failures reschedule in afterFailedReconnect
    }, delayMs);
  }

  private afterFailedReconnect(error: unknown): void {
    if (this.closedByUser) return;
    const fatal =
      error instanceof ParleyError &&
      (error.closeCode === FORBIDDEN || (error.closeCode === AUTH_FAILED && typeof this.options.token !== "function"));
    if (fatal) {
      this.finish({ code: error.closeCode, error });
      return;
    }
    this.setState("reconnecting");
    this.scheduleReconnect();
  }

  private clearReconnectTimer(): void {
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  /** The end: reject the outbox, and say so once. */
  private finish(info: { code?: number; error?: Error }): void {
    if (this._state === "closed") return;
    this.clearReconnectTimer();
    this.setState("closed");
    const error = info.error ?? new ParleyConnectionError("the client was closed");
    for (const entry of [...this.outbox.values()]) this.settle(entry, undefined, error);
    this.events.emit("closed", info);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const every = this.options.heartbeatIntervalMs ?? 25_000;
    if (every <= 0) return;
    const timeoutMs = this.options.heartbeatTimeoutMs ?? 10_000;
    this.heartbeatTimer = setInterval(() => {
      if (this._state !== "open" || this.heartbeatInFlight) return;
      this.heartbeatInFlight = true;
      this.request({ type: "ping" }, { timeoutMs })
        .catch((error: unknown) => {
          if (error instanceof ParleyTimeoutError && this._state === "open") {
            this.abandonSocket(CLIENT_DROP, "heartbeat timeout");
          }
        })
        .finally(() => {
          this.heartbeatInFlight = false;
        });
    }, every);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.heartbeatInFlight = false;
  }

  // ------------------------------------------------------------------ reading

  private dispatch(frame: ServerFrame): void {
    this.events.emit("frame", frame);
    const id = frame.id;
    if (id !== undefined) {
      const entry = this.sendIds.get(id);
      if (entry !== undefined) {
        this.onSendReply(entry, frame);
        return;
      }
      const request = this.pending.get(id);
      if (request !== undefined) {
        this.pending.delete(id);
        if (request.timer !== undefined) clearTimeout(request.timer);
        if (frame.type === "error") request.reject(ParleyError.fromBody(frame, { frameType: request.frameType }));
        else request.resolve(frame);
        return;
      }
      const frameType = this.unanswered.get(id);
      if (frameType !== undefined && frame.type === "error") {
        this.unanswered.delete(id);
        this.events.emit("error", ParleyError.fromBody(frame, { frameType }));
        return;
      }
    }
    switch (frame.type) {
      case "error":
        this.events.emit("error", ParleyError.fromBody(frame));
        return;
      case "auth.ok":
        this._user = frame.user;
        return;
      case "pong":
      case "message.sent":
      case "message.flagged":
        return; // replies to frames sent without waiting (or already given up on)
      default:
        // The pushed frames: message, message.moderated, message.edited, message.deleted,
        // receipt, typing, group.member, moderation.decision, moderation.appeal, report.outcome.
        this.events.emit(frame.type, frame as never);
    }
  }

  // ------------------------------------------------------------------ requests

  /**
   * Send `frame` with a fresh `id` and wait for the frame that answers it. An `error`
   * answer rejects with {@link ParleyError}; no answer within `timeoutMs` with
   * {@link ParleyTimeoutError}; a closed connection with {@link ParleyConnectionError}.
   * Not retried (use {@link send} for messages).
   */
  request(frame: ClientFrame | { type: string; [field: string]: unknown }, options: { timeoutMs?: number } = {}): Promise<ServerFrame> {
    return new Promise<ServerFrame>((resolve, reject) => {
      const ws = this.ws;
      if (ws === undefined || this._state !== "open" || ws.readyState !== OPEN) {
        reject(new ParleyConnectionError(`not connected (state ${this._state}): cannot send ${frame.type}`));
        return;
      }
      const id = this.newId("c");
      const timeoutMs = options.timeoutMs ?? this.options.requestTimeoutMs ?? 10_000;
      const request: PendingRequest = {
        frameType: frame.type,
        resolve,
        reject,
        timer:
          timeoutMs > 0
            ? setTimeout(() => {
                this.pending.delete(id);
                reject(new ParleyTimeoutError(`no reply to ${frame.type} within ${timeoutMs} ms`, timeoutMs));
              }, timeoutMs)
            : undefined,
      };
      this.pending.set(id, request);
      try {
        ws.send(JSON.stringify({ ...frame, id }));
      } catch (error) {
        this.pending.delete(id);
        if (request.timer !== undefined) clearTimeout(request.timer);
        reject(new ParleyConnectionError(`cannot send ${frame.type}: ${String(error)}`, { cause: error }));
      }
    });
  }

  /** Send a frame that has no reply on success; a refusal comes as an `error` event. */
  private fireAndForget(frame: ClientFrame): void {
    const ws = this.ws;
    if (ws === undefined || this._state !== "open" || ws.readyState !== OPEN) {
      throw new ParleyConnectionError(`not connected (state ${this._state}): cannot send ${frame.type}`);
    }
    const id = this.newId("f");
    this.unanswered.set(id, frame.type);
    if (this.unanswered.size > 1000) {
      const oldest = this.unanswered.keys().next();
      if (!oldest.done) this.unanswered.delete(oldest.value);
    }
    ws.send(JSON.stringify({ ...frame, id }));
  }

  private newId(prefix: string): string {
    this.nextId += 1;
    return `${prefix}-${this.nextId}`;
  }

  // ------------------------------------------------------------------ durable sends

  /**
   * `message.send`: resolves with the stored message of `message.sent` (after the server's
   * durable commit; `moderationStatus` is `pending` or `unmoderated`, and the verdict comes
   * later as `message.moderated`).
   *
   * The send is kept in an outbox under its `muid` until acknowledged: sent now if the
   * connection is open, again (same `muid`) if no ack comes within `ackTimeoutMs`, after a
   * reconnect, and after `ERR_RATE_LIMITED` (once `retryAfterMs` has passed). The server
   * stores one message per (sender, muid), so retries never duplicate. Any other refusal
   * rejects with {@link ParleyError}. May be called before `connect()`.
   */
  send(body: SendBody, options: { timeoutMs?: number } = {}): Promise<Message> {
    if (this._state === "closed") {
      return Promise.reject(new ParleyConnectionError("the client is closed"));
    }
    const muid = body.muid ?? (this.options.newMuid ?? newMuid)();
    const existing = this.outbox.get(muid);
    if (existing !== undefined) {
      // The same logical message again while the first is in flight: share its outcome.
      return new Promise<Message>((resolve, reject) => {
        const { resolve: r0, reject: j0 } = existing;
        existing.resolve = (m) => {
          r0(m);
          resolve(m);
        };
        existing.reject = (e) => {
          j0(e);
          reject(e);
        };
      });
    }
    const frameBody: SendBody & { muid: string } = { category: "message", ...body, muid };
    return new Promise<Message>((resolve, reject) => {
      const entry: OutboxEntry = {
        muid,
        body: frameBody,
        attempts: 0,
        seq: (this.nextSeq += 1),
        resolve,
        reject,
        ackTimer: undefined,
        retryTimer: undefined,
        deadlineTimer: undefined,
        internalErrors: 0,
      };
      const deadline = options.timeoutMs ?? this.options.sendTimeoutMs ?? 0;
      if (deadline > 0) {
        entry.deadlineTimer = setTimeout(() => {
          this.settle(
            entry,
            undefined,
            new ParleyTimeoutError(`message ${muid} was not acknowledged within ${deadline} ms`, deadline),
          );
        }, deadline);
      }
      this.outbox.set(muid, entry);
      if (this._state === "open") this.transmit(entry);
    });
  }

  /** A text message. */
  sendText(receiver: string, text: string, options: SendOptions = {}): Promise<Message> {
    return this.send(
      {
        ...sendFields(receiver, options),
        category: "message",
        messageType: "text",
        text,
      },
      options,
    );
  }

  /** A custom message (`category: "custom"`) with an app-defined type and JSON payload. */
  sendCustom(receiver: string, customType: string, data: Json, options: SendOptions = {}): Promise<Message> {
    return this.send(
      {
        ...sendFields(receiver, options),
        category: "custom",
        messageType: customType,
        data,
      },
      options,
    );
  }

  /**
   * A media message: `media` is the `mediaId` or the object `rest.upload()` returned. The
   * type (image, video, audio, file) comes from `options.messageType`, else the media's kind.
   */
  sendMedia(receiver: string, media: string | Media, options: SendMediaOptions = {}): Promise<Message> {
    const mediaId = typeof media === "string" ? media : media.mediaId;
    const messageType = options.messageType ?? (typeof media === "string" ? "file" : mediaKind(media));
    return this.send(
      {
        ...sendFields(receiver, options),
        category: "message",
        messageType,
        mediaId,
        ...(options.caption !== undefined ? { text: options.caption } : {}),
      },
      options,
    );
  }

  private transmit(entry: OutboxEntry): void {
    const ws = this.ws;
    if (ws === undefined || this._state !== "open" || ws.readyState !== OPEN) return;
    if (entry.ackTimer !== undefined) clearTimeout(entry.ackTimer);
    const id = this.newId("s");
    this.sendIds.set(id, entry);
    entry.attempts += 1;
    try {
      ws.send(JSON.stringify({ type: "message.send", id, ...entry.body }));
    } catch {
      return; // the socket is going; the reconnect resends
    }
    const ackTimeoutMs = this.options.ackTimeoutMs ?? 10_000;
    if (ackTimeoutMs > 0) {
      entry.ackTimer = setTimeout(() => {
        entry.ackTimer = undefined;
        if (this.outbox.get(entry.muid) === entry) this.transmit(entry);
      }, ackTimeoutMs);
    }
  }

  private onSendReply(entry: OutboxEntry, frame: ServerFrame): void {
    if (this.outbox.get(entry.muid) !== entry) return; // already settled (a late duplicate ack)
    if (frame.type === "message.sent") {
      this.settle(entry, (frame as MessageSentFrame).message);
      return;
    }
    if (frame.type !== "error") return;
    const error = ParleyError.fromBody(frame, { frameType: "message.send" });
    if (entry.ackTimer !== undefined) clearTimeout(entry.ackTimer);
    entry.ackTimer = undefined;
    let retryInMs: number | undefined;
    if (error.code === "ERR_RATE_LIMITED") {
      retryInMs = Math.max(50, error.retryAfterMs ?? 1000);
    } else if (error.code === "ERR_INTERNAL" && entry.internalErrors < 3) {
      entry.internalErrors += 1;
      retryInMs = 500 * 2 ** entry.internalErrors;
    }
    if (retryInMs === undefined) {
      this.settle(entry, undefined, error);
      return;
    }
    if (entry.retryTimer !== undefined) clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      if (this.outbox.get(entry.muid) === entry) this.transmit(entry);
    }, retryInMs);
  }

  private settle(entry: OutboxEntry, message: Message | undefined, error?: Error): void {
    if (this.outbox.get(entry.muid) !== entry) return;
    this.outbox.delete(entry.muid);
    for (const timer of [entry.ackTimer, entry.retryTimer, entry.deadlineTimer]) {
      if (timer !== undefined) clearTimeout(timer);
    }
    entry.ackTimer = entry.retryTimer = entry.deadlineTimer = undefined;
    for (const [id, e] of this.sendIds) if (e === entry) this.sendIds.delete(id);
    if (message !== undefined) entry.resolve(message);
    else entry.reject(error ?? new ParleyConnectionError("send abandoned"));
  }

  // ------------------------------------------------------------------ other frames

  /** Edit one's own message; resolves with the stored message (`message.edited`). */
  async editMessage(messageId: number, text: string): Promise<Message> {
    const reply = await this.request({ type: "message.edit", messageId, text });
    return (reply as MessageEditedFrame).message;
  }

  /** Delete a message; resolves with the tombstone (`message.deleted`). */
  async deleteMessage(messageId: number): Promise<Message> {
    const reply = await this.request({ type: "message.delete", messageId });
    return (reply as MessageDeletedFrame).message;
  }

  /** Report a message to the moderators; resolves with the `message.flagged` frame. */
  async flag(messageId: number, reason: string, remarks = ""): Promise<MessageFlaggedFrame> {
    return (await this.request({ type: "message.flag", messageId, reason, remarks })) as MessageFlaggedFrame;
  }

  /**
   * React to a message with an emoji (`reaction.add`); resolves with the `message.reaction`
   * reply, whose `reactions` are the message's counts after it. Adding one the user already
   * has changes nothing (and tells no one else).
   */
  async react(messageId: number, emoji: string): Promise<MessageReactionFrame> {
    return (await this.request({ type: "reaction.add", messageId, emoji })) as MessageReactionFrame;
  }

  /** Take back a reaction (`reaction.remove`); resolves with the `message.reaction` reply. */
  async unreact(messageId: number, emoji: string): Promise<MessageReactionFrame> {
    return (await this.request({ type: "reaction.remove", messageId, emoji })) as MessageReactionFrame;
  }

  /**
   * Reply in `parent`'s thread (`parentId`), in its conversation: to the group, or in a 1:1
   * conversation to the other participant. A durable send, like {@link sendText}.
   */
  replyText(parent: Message, text: string, options: Omit<SendOptions, "parentId" | "receiverType"> = {}): Promise<Message> {
    const me = this._user?.uid;
    const receiver =
      parent.receiverType === "group" ? parent.receiver : parent.sender === me ? parent.receiver : parent.sender;
    return this.sendText(receiver, text, { ...options, receiverType: parent.receiverType, parentId: parent.id });
  }

  /**
   * Tell the sender a message was `delivered` or `read`. There is no reply on success; a
   * refusal arrives as an `error` event with `frameType: "receipt"`. Throws
   * {@link ParleyConnectionError} when not connected.
   */
  receipt(messageId: number, receiptType: ReceiptType = "read"): void {
    this.fireAndForget({ type: "receipt", messageId, receiptType });
  }

  markDelivered(messageId: number): void {
    this.receipt(messageId, "delivered");
  }

  markRead(messageId: number): void {
    this.receipt(messageId, "read");
  }

  /**
   * Typing `start`/`end` to a user or group. Send `start` again every few seconds while the
   * user types. No reply; throws {@link ParleyConnectionError} when not connected.
   */
  typing(receiver: string, state: TypingState = "start", receiverType: ReceiverType = "user"): void {
    this.fireAndForget({ type: "typing", receiver, receiverType, state });
  }

  /** Round trip to the server; resolves with the time it took, in milliseconds. */
  async ping(options: { timeoutMs?: number } = {}): Promise<number> {
    const started = Date.now();
    await this.request({ type: "ping" }, options);
    return Date.now() - started;
  }
}

// ------------------------------------------------------------------ helpers

function sendFields(receiver: string, options: SendOptions): Omit<SendBody, "messageType"> {
  const body: Omit<SendBody, "messageType"> = {
    receiver,
    receiverType: options.receiverType ?? "user",
    metadata: options.metadata ?? {},
    tags: options.tags ?? [],
  };
  if (options.muid !== undefined) body.muid = options.muid;
  if (options.parentId !== undefined) body.parentId = options.parentId;
  return body;
}

function mediaKind(media: Media): MediaMessageType {
  if (media.kind !== undefined) return media.kind;
  const major = media.mimeType.split("/")[0];
  return major === "image" || major === "video" || major === "audio" ? major : "file";
}

function parseFrame(data: unknown): ServerFrame | undefined {
  if (typeof data !== "string") return undefined; // the server only sends text frames
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (!isRecord(value) || typeof value.type !== "string") return undefined;
  return value as unknown as ServerFrame;
}

function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = () => undefined; // `ws` in Node throws on an unhandled error event
}

function safeClose(ws: WebSocketLike, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // closing already, or never opened
  }
}

