// A type-level test: the README's examples, compiled under `strict` (tsc -p test/types).
// It is never run; it fails the build if the public types stop fitting the way apps use them.

import {
  type ConnectionState,
  type Message,
  type MessageModeratedFrame,
  ParleyClient,
  ParleyError,
  RestClient,
  type User,
  userConversationId,
  type WebSocketConstructor,
} from "../../src/index.js";

declare const SomeWebSocket: WebSocketConstructor;

export async function backend(apiKey: string): Promise<string> {
  const rest = new RestClient({ baseUrl: "https://chat.example.com", apiKey });
  const user: User = await rest.createUser({ uid: "dana", name: "Dana" });
  const { token, expiresAt } = await rest.issueToken(user.uid, { ttl: 3600 });
  void expiresAt;
  return token;
}

export async function app(getToken: () => Promise<string>): Promise<void> {
  const chat = new ParleyClient({
    url: "https://chat.example.com",
    token: getToken,
    WebSocket: SomeWebSocket,
    reconnect: { initialDelayMs: 250, maxDelayMs: 10_000 },
  });
  chat.onMessage((message: Message) => {
    const text: string | null = message.text;
    void text;
    chat.markRead(message.id);
  });
  chat.onMessageModerated((message, frame: MessageModeratedFrame) => {
    if (message.moderationStatus === "disapproved") void frame.moderation?.reason;
  });
  chat.on("typing", (f) => void (f.state satisfies "start" | "end"));
  chat.on("receipt", (f) => void (f.receiptType satisfies "delivered" | "read"));
  chat.on("group.member", (f) => void f.action);
  chat.on("report.outcome", (f) => void f.outcome);
  chat.on("moderation.decision", (f) => void f.decision.measure);
  chat.on("state", (s: ConnectionState) => void s);
  chat.on("error", (e: ParleyError) => void e.code);
  chat.onMessageReaction((f) => {
    const counts: Record<string, number> = f.reactions;
    void (f.action satisfies "added" | "removed");
    void counts;
  });

  await chat.connect();
  try {
    const sent = await chat.sendText("bob", "hello");
    const page = await chat.rest.historyPage(userConversationId("dana", "bob"), { limit: 20 });
    void page.hasMore;
    await chat.editMessage(sent.id, "hello!");
    const reacted = await chat.react(sent.id, "👍");
    void reacted.reactions["👍"];
    await chat.unreact(sent.id, "👍");
    const reply = await chat.replyText(sent, "a reply");
    const thread = await chat.rest.thread(sent.id, { limit: 10 });
    const count: number | undefined = thread.parent.replyCount;
    void count;
    void reply.parentId;
    const who = await chat.rest.reactions(sent.id);
    const endpoint = await chat.rest.registerPush("https://ntfy.example/up/abc", { deviceId: "phone" });
    void (endpoint.kind satisfies "unifiedpush" | "webhook");
    await chat.rest.unregisterPush(endpoint.endpointId);
    void who[0]?.uids;
    const media = await chat.rest.upload(new Blob(["x"]), { name: "x.txt", kind: "file" });
    await chat.sendMedia("bob", media, { caption: "a file" });
  } catch (error) {
    if (error instanceof ParleyError) {
      const code: string = error.code;
      const details: Record<string, unknown> = error.details;
      const status: number | undefined = error.status;
      void [code, details, status];
    }
  }
  chat.close();
}
