import type { ErrorCode } from "./types.js";

/**
 * A refusal by the server: an `error` frame or a REST error body `{code, message, details}`.
 * `message` is the server's human-readable text (it may change); branch on `code`.
 *
 * `status` is the HTTP status for REST calls (undefined for WebSocket frames). `closeCode`
 * is set when the refusal closed the WebSocket (4401 bad auth, 4403 deleted or banned user).
 * `frameType` names the client frame that was refused, when known.
 */
export class ParleyError extends Error {
  override readonly name: string = "ParleyError";
  readonly code: ErrorCode | (string & {});
  readonly details: Record<string, unknown>;
  readonly status: number | undefined;
  readonly closeCode: number | undefined;
  readonly frameType: string | undefined;

  constructor(
    code: ErrorCode | (string & {}),
    message: string,
    options: {
      details?: Record<string, unknown> | undefined;
      status?: number | undefined;
      closeCode?: number | undefined;
      frameType?: string | undefined;
    } = {},
  ) {
    super(message);
    this.code = code;
    this.details = options.details ?? {};
    this.status = options.status;
    this.closeCode = options.closeCode;
    this.frameType = options.frameType;
  }

  override toString(): string {
    return `${this.name} ${this.code}: ${this.message}`;
  }

  /** An error from a decoded error body or `error` frame (anything else: `ERR_INTERNAL`). */
  static fromBody(
    body: unknown,
    options: { status?: number; closeCode?: number; frameType?: string } = {},
  ): ParleyError {
    if (isRecord(body) && typeof body.code === "string") {
      const details = isRecord(body.details) ? body.details : {};
      const message = typeof body.message === "string" ? body.message : "";
      return new ParleyError(body.code, message, { ...options, details });
    }
    const shown = typeof body === "string" ? body : safeJson(body);
    return new ParleyError("ERR_INTERNAL", `unexpected error body: ${shown.slice(0, 300)}`, options);
  }

  /** `details.retryAfterMs` of `ERR_RATE_LIMITED`, if given. */
  get retryAfterMs(): number | undefined {
    const v = this.details.retryAfterMs;
    return typeof v === "number" && Number.isFinite(v) ? v : undefined;
  }
}

/**
 * The connection is not there: never opened, dropped before the reply came, closed by
 * `close()`, or a network failure of a REST call. `closeCode` is the WebSocket close code
 * when there was one.
 */
export class ParleyConnectionError extends Error {
  override readonly name: string = "ParleyConnectionError";
  readonly code = "ERR_CONNECTION" as const;
  readonly closeCode: number | undefined;
  readonly cause: unknown;

  constructor(message: string, options: { closeCode?: number | undefined; cause?: unknown } = {}) {
    super(message);
    this.closeCode = options.closeCode;
    this.cause = options.cause;
  }
}

/** No reply within the time limit (a request over the WebSocket, or a REST call). */
export class ParleyTimeoutError extends Error {
  override readonly name: string = "ParleyTimeoutError";
  readonly code = "ERR_TIMEOUT" as const;
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number) {
    super(message);
    this.timeoutMs = timeoutMs;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
