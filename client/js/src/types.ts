/**
 * The objects and frames of the Parley wire contract (PROTOCOL.md v1.1), as TypeScript types.
 *
 * Objects may carry fields beyond the ones declared here (the server's additions, such as
 * `updatedAt` on users); they are kept as they arrive.
 */

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Role = "user" | "moderator" | "admin";
export type ReceiverType = "user" | "group";
export type Category = "message" | "custom";
export type MediaMessageType = "image" | "video" | "audio" | "file";
/** `text` and the media types for category `message`; any app-defined name for `custom`. */
export type MessageType = "text" | MediaMessageType | (string & {});
export type ModerationStatus = "unmoderated" | "pending" | "approved" | "disapproved";
export type ReceiptType = "delivered" | "read";
export type TypingState = "start" | "end";
export type GroupType = "public" | "private";
export type GroupScope = "owner" | "admin" | "moderator" | "participant";
export type GroupMemberAction =
  | "joined"
  | "left"
  | "kicked"
  | "banned"
  | "unbanned"
  | "scope_changed";

/** The error codes of the contract. Servers may add codes: compare with strings. */
export type ErrorCode =
  | "ERR_AUTH_REQUIRED"
  | "ERR_AUTH_INVALID"
  | "ERR_BAD_REQUEST"
  | "ERR_UNKNOWN_TYPE"
  | "ERR_TOO_LARGE"
  | "ERR_RATE_LIMITED"
  | "ERR_NOT_FOUND"
  | "ERR_FORBIDDEN"
  | "ERR_BLOCKED"
  | "ERR_NOT_A_MEMBER"
  | "ERR_BANNED"
  | "ERR_MUTED"
  | "ERR_CONFLICT"
  | "ERR_INTERNAL";

export interface User {
  uid: string;
  name: string;
  role: Role;
  tags: string[];
  metadata: JsonObject;
  createdAt: number;
  updatedAt?: number;
  banned?: boolean;
  [extra: string]: unknown;
}

/** `attachment` of a media message. `url` is a signed, expiring, root-relative link. */
export interface Attachment {
  mediaId: string;
  name: string;
  mimeType: string;
  size: number;
  url: string;
  [extra: string]: unknown;
}

/** The Message object. Order messages by `id`, never by `sentAt`. */
export interface Message {
  id: number;
  muid: string;
  conversationId: string;
  sender: string;
  receiver: string;
  receiverType: ReceiverType;
  category: Category;
  /** The frame field `messageType` is stored and returned as `type`. */
  type: MessageType;
  text: string | null;
  attachment: Attachment | null;
  data: Json;
  metadata: JsonObject;
  tags: string[];
  parentId: number | null;
  /** Unix seconds; `0` means never. */
  sentAt: number;
  updatedAt: number;
  editedAt: number;
  deletedAt: number;
  moderationStatus: ModerationStatus;
  /** In history, on the caller's own messages: how many users gave each receipt type. */
  receipts?: { delivered: number; read: number };
  /** In history, on the caller's own disapproved messages: the verdict's reason. */
  moderation?: ModerationInfo;
  /**
   * Emoji -> number of users who reacted with it. Only in REST answers (history, thread
   * pages, `getMessage`), never in live frames: keep it up to date from `message.reaction`.
   */
  reactions?: Record<string, number>;
  /** The viewer's own reactions (REST answers to a user token). */
  myReactions?: string[];
  /** Delivered, undeleted replies (messages with this `parentId`); REST answers only. */
  replyCount?: number;
  [extra: string]: unknown;
}

/** One emoji on a message and who used it (`GET /messages/{id}/reactions`). */
export interface ReactionSummary {
  emoji: string;
  count: number;
  uids: string[];
}

/** A thread: its parent and one page of replies, oldest first. */
export interface ThreadPage {
  parent: Message;
  messages: Message[];
  /** True when older replies remain below this page. */
  hasMore: boolean;
}

/** Where one of the user's devices gets offline pushes (`/me/push-endpoints`). */
export interface PushEndpoint {
  endpointId: string;
  deviceId: string;
  /** `unifiedpush`: an ntfy-style URL; `webhook`: a signed POST to the app's relay. */
  kind: "unifiedpush" | "webhook";
  url: string;
  /** Whether pushes carry the message text (off by default). */
  includeText: boolean;
  createdAt: number;
  /** `webhook` endpoints, in the answer to a registration: the HMAC key of the signatures. */
  secret?: string;
  [extra: string]: unknown;
}

/** `moderation` of a disapproved `message.moderated`. */
export interface ModerationInfo {
  ruleId: string;
  ruleName: string;
  reason: string;
  [extra: string]: unknown;
}

/** A measure taken against a message or a user, with its statement of reasons. */
export interface Decision {
  decisionId: string;
  measure: "message_disapproved" | "kick" | "ban" | "mute" | "shadow_ban" | (string & {});
  scope: string;
  until: number;
  source: "rule" | "moderator" | "report" | (string & {});
  ruleId?: string | null;
  ruleRevision?: number | null;
  automatedDetection?: boolean;
  automatedDecision?: boolean;
  ground?: { type: string; clause?: string; [extra: string]: unknown };
  explanation?: string;
  appealUntil?: number;
  [extra: string]: unknown;
}

export interface Report {
  id: number;
  messageId: number;
  reporter: string;
  reason: string;
  remarks: string;
  at: number;
  [extra: string]: unknown;
}

export interface GroupMember {
  uid: string;
  scope: GroupScope;
  [extra: string]: unknown;
}

export interface Group {
  guid: string;
  name: string;
  type: GroupType;
  tags: string[];
  owner: string | null;
  createdAt: number;
  updatedAt?: number;
  membersCount?: number;
  members?: GroupMember[];
  [extra: string]: unknown;
}

/** The answer of `POST /api/v1/media`. `url` is issued to the uploader (root-relative). */
export interface Media {
  mediaId: string;
  name: string;
  mimeType: string;
  size: number;
  kind?: MediaMessageType;
  url?: string;
  urlExpiresAt?: number;
  thumbnailUrl?: string;
  createdAt?: number;
  width?: number;
  height?: number;
  duration?: number;
  [extra: string]: unknown;
}

export interface IssuedToken {
  token: string;
  expiresAt: number;
  uid: string;
}

export interface HistoryPage {
  /** Oldest first. */
  messages: Message[];
  /** True when older messages that the caller may see remain below this page. */
  hasMore: boolean;
}

/** One row of `GET /api/v1/me/conversations` (the inbox), newest first. */
export interface ConversationSummary {
  conversationId: string;
  conversationType: ReceiverType;
  with: string;
  lastMessage: Message | null;
  unreadCount: number;
  updatedAt: number;
  [extra: string]: unknown;
}

// ------------------------------------------------------------------ client -> server frames

/** The body of `message.send` (without `type` and `id`). */
export interface SendBody {
  /** The idempotency key; the SDK generates one when absent. */
  muid?: string;
  receiver: string;
  receiverType: ReceiverType;
  category?: Category;
  messageType: MessageType;
  text?: string | null;
  mediaId?: string | null;
  data?: Json;
  metadata?: JsonObject;
  tags?: string[];
  parentId?: number | null;
}

export type ClientFrame =
  | { type: "auth"; id?: string; token: string }
  | ({ type: "message.send"; id?: string; muid: string } & SendBody)
  | { type: "message.edit"; id?: string; messageId: number; text: string }
  | { type: "message.delete"; id?: string; messageId: number }
  | { type: "receipt"; id?: string; messageId: number; receiptType: ReceiptType }
  | { type: "typing"; id?: string; receiver: string; receiverType: ReceiverType; state: TypingState }
  | { type: "message.flag"; id?: string; messageId: number; reason: string; remarks?: string }
  | { type: "reaction.add" | "reaction.remove"; id?: string; messageId: number; emoji: string }
  | { type: "ping"; id?: string };

// ------------------------------------------------------------------ server -> client frames

interface FrameBase {
  /** The id of the client frame this frame answers; absent on pushed frames. */
  id?: string;
}

export interface AuthOkFrame extends FrameBase {
  type: "auth.ok";
  user: User;
}
export interface MessageSentFrame extends FrameBase {
  type: "message.sent";
  message: Message;
}
export interface MessageFrame extends FrameBase {
  type: "message";
  message: Message;
}
export interface MessageModeratedFrame extends FrameBase {
  type: "message.moderated";
  message: Message;
  /** Present when the verdict is `disapproved`. */
  moderation?: ModerationInfo;
  decision?: Decision;
}
export interface MessageEditedFrame extends FrameBase {
  type: "message.edited";
  message: Message;
}
export interface MessageDeletedFrame extends FrameBase {
  type: "message.deleted";
  message: Message;
}
export interface MessageFlaggedFrame extends FrameBase {
  type: "message.flagged";
  messageId: number;
  report: Report;
  reportId?: number;
}
/** A reaction was added or removed; `reactions` is the message's whole count after it. */
export interface MessageReactionFrame extends FrameBase {
  type: "message.reaction";
  messageId: number;
  conversationId: string;
  uid: string;
  emoji: string;
  action: "added" | "removed";
  reactions: Record<string, number>;
}
export interface ReceiptFrame extends FrameBase {
  type: "receipt";
  messageId: number;
  conversationId: string;
  receiptType: ReceiptType;
  uid: string;
  at: number;
}
export interface TypingFrame extends FrameBase {
  type: "typing";
  sender: string;
  receiver: string;
  receiverType: ReceiverType;
  state: TypingState;
}
export interface GroupMemberFrame extends FrameBase {
  type: "group.member";
  guid: string;
  uid: string;
  action: GroupMemberAction;
  by: string;
  scope?: GroupScope;
  reason?: string;
}
export interface ModerationDecisionFrame extends FrameBase {
  type: "moderation.decision";
  decision: Decision;
}
export interface ModerationAppealFrame extends FrameBase {
  type: "moderation.appeal";
  appealId: string;
  decisionId: string;
  outcome: "upheld" | "rejected";
  reason: string;
}
export interface ReportOutcomeFrame extends FrameBase {
  type: "report.outcome";
  reportId: number | string;
  outcome: "actioned" | "not_actioned";
  decisionId?: string;
}
export interface ErrorFrame extends FrameBase {
  type: "error";
  code: ErrorCode | (string & {});
  message: string;
  details?: Record<string, unknown>;
}
export interface PongFrame extends FrameBase {
  type: "pong";
}

/** Every frame the server sends, discriminated by `type`. */
export type ServerFrame =
  | AuthOkFrame
  | MessageSentFrame
  | MessageFrame
  | MessageModeratedFrame
  | MessageEditedFrame
  | MessageDeletedFrame
  | MessageFlaggedFrame
  | MessageReactionFrame
  | ReceiptFrame
  | TypingFrame
  | GroupMemberFrame
  | ModerationDecisionFrame
  | ModerationAppealFrame
  | ReportOutcomeFrame
  | ErrorFrame
  | PongFrame;

export type ServerFrameType = ServerFrame["type"];
