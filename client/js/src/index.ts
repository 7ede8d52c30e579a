/**
 * @parley/sdk: a TypeScript client for the Parley chat server.
 *
 * - {@link ParleyClient}: the WebSocket (`/ws`): auth, durable sends, reconnect, events.
 * - {@link RestClient}: `/api/v1`: history, inbox, groups, blocking, media, and the
 *   server-to-server calls with the app's API key.
 *
 * No runtime dependencies: it uses the platform's WebSocket and fetch (browsers, React
 * Native, Node >= 18; on Node 18/20 pass a WebSocket constructor such as the `ws` package's).
 */

export { ParleyClient } from "./client.js";
export type {
  ConnectionState,
  ParleyClientOptions,
  ParleyEvents,
  PendingSend,
  ReconnectOptions,
  SendMediaOptions,
  SendOptions,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { RestClient } from "./rest.js";
export type {
  CreateGroupBody,
  CreateUserBody,
  Doc,
  FetchLike,
  FlagResult,
  RequestOptions,
  RestClientOptions,
  TokenSource,
  UploadOptions,
  UploadSource,
} from "./rest.js";
export { ParleyConnectionError, ParleyError, ParleyTimeoutError } from "./errors.js";
export { groupConversationId, newMuid, toHttpBaseUrl, toWebSocketUrl, userConversationId } from "./util.js";
export type * from "./types.js";
