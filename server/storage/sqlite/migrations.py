"""Numbered schema migrations; ``PRAGMA user_version`` records the last one applied."""

from __future__ import annotations

from server.storage.sqlite.inbox_schema import INBOX_MIGRATION, INBOX_STATUS_SPLIT
from server.storage.sqlite.operators_schema import OPERATORS_MIGRATION
from server.storage.sqlite.push_schema import PUSH_MIGRATION
from server.storage.sqlite.threads_schema import THREADS_MIGRATION

MIGRATIONS: tuple[str, ...] = (
    # 1: chat core
    """
    CREATE TABLE users (
        uid TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        banned INTEGER NOT NULL DEFAULT 0,
        deleted_at INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE groups (
        guid TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        owner TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE members (
        guid TEXT NOT NULL,
        uid TEXT NOT NULL,
        scope INTEGER NOT NULL,
        joined_at INTEGER NOT NULL,
        PRIMARY KEY (guid, uid)
    );
    CREATE INDEX members_uid ON members (uid);
    CREATE TABLE bans (
        guid TEXT NOT NULL,
        uid TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        by_uid TEXT,
        at INTEGER NOT NULL,
        PRIMARY KEY (guid, uid)
    );
    CREATE TABLE blocks (
        blocker TEXT NOT NULL,
        blocked TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (blocker, blocked)
    );
    CREATE INDEX blocks_blocked ON blocks (blocked);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        muid TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        receiver TEXT NOT NULL,
        receiver_type TEXT NOT NULL,
        category TEXT NOT NULL,
        type TEXT NOT NULL,
        kid TEXT NOT NULL,
        body BLOB NOT NULL,
        parent_id INTEGER,
        sent_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        edited_at INTEGER NOT NULL DEFAULT 0,
        deleted_at INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        rev INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX messages_sender_muid ON messages (sender, muid);
    CREATE INDEX messages_conversation ON messages (conversation_id, id);
    CREATE INDEX messages_sender ON messages (sender, id);
    CREATE INDEX messages_pending ON messages (status) WHERE status = 'pending';
    CREATE TABLE receipts (
        message_id INTEGER NOT NULL,
        uid TEXT NOT NULL,
        type TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (message_id, uid, type)
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_at ON audit (at);
    """,
    # 2: moderation: rules with revisions, lists, settings, the review queue, user reports
    """
    CREATE TABLE rules (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        revision INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        deleted_at INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE rule_revisions (
        rule_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        body TEXT NOT NULL,
        actor TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (rule_id, revision)
    );
    CREATE TABLE lists (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE review (
        message_id INTEGER NOT NULL,
        state TEXT NOT NULL,
        rule_id TEXT,
        at INTEGER NOT NULL,
        decided_at INTEGER NOT NULL DEFAULT 0,
        decided_by TEXT,
        decision TEXT,
        PRIMARY KEY (message_id, state)
    );
    CREATE INDEX review_open ON review (state, decided_at, at);
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL,
        reporter TEXT NOT NULL,
        kid TEXT NOT NULL,
        body BLOB NOT NULL,
        at INTEGER NOT NULL,
        UNIQUE (message_id, reporter)
    );
    """,
    # 3: outgoing moderation webhooks: one row per event and webhook, payload sealed
    """
    CREATE TABLE webhook_deliveries (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        event TEXT NOT NULL,
        hook_id TEXT NOT NULL,
        url TEXT NOT NULL,
        kid TEXT NOT NULL,
        body BLOB NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        last_status INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        delivered_at INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
    CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
    """,
    # 4: whether receivers were ever sent a version of a message (so an edit that is later
    # approved arrives as an edit, and one that is disapproved withdraws the old version)
    """
    ALTER TABLE messages ADD COLUMN shown INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET shown = 1 WHERE status IN ('approved', 'unmoderated');
    """,
    # 5: users get an account id (tokens name the incarnation of a uid they were minted
    # for); conversations keyed by their participants, not by the wire id, which can collide
    # (users `a` + `b_user_c` and `a_user_b` + `c` share "a_user_b_user_c"): ':' is not in the
    # id alphabet, so the key is unambiguous. The wire id stays in conversation_id (it is
    # part of the sealed body's associated data).
    """
    ALTER TABLE messages ADD COLUMN conv_key TEXT NOT NULL DEFAULT '';
    UPDATE messages SET conv_key = CASE receiver_type
        WHEN 'group' THEN 'g:' || receiver
        ELSE 'u:' || min(sender, receiver) || ':' || max(sender, receiver) END;
    DROP INDEX messages_conversation;
    CREATE INDEX messages_conversation ON messages (conv_key, id);
    ALTER TABLE users ADD COLUMN account TEXT NOT NULL DEFAULT '';
    """,
    # 6: an index on the key id of every sealed table, so the start-up check that the keyring
    # has every key the rows need is a few index seeks, not a scan of every row
    """
    CREATE INDEX messages_kid ON messages (kid);
    CREATE INDEX reports_kid ON reports (kid);
    CREATE INDEX webhook_deliveries_kid ON webhook_deliveries (kid);
    """,
    # 7: media metadata (issue 12): the files are encrypted under the data dir, never here;
    # the name is sealed in `body` with `kid`, which also encrypted the files
    """
    CREATE TABLE media (
        id TEXT PRIMARY KEY,
        uploader TEXT NOT NULL,
        kind TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        kid TEXT NOT NULL,
        body BLOB NOT NULL,
        thumb_mime TEXT,
        thumb_size INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        attached_to INTEGER
    );
    CREATE INDEX media_uploader ON media (uploader, created_at);
    CREATE INDEX media_kid ON media (kid);
    CREATE INDEX media_attached ON media (attached_to) WHERE attached_to IS NOT NULL;
    """,
    # 8: decisions (statements of reasons), appeals, restrictions (mutes, shadow
    # bans), group slow mode and the operator's terms catalogue (issue 15)
    """
    CREATE TABLE decisions (
        id TEXT PRIMARY KEY,
        uid TEXT NOT NULL,
        message_id INTEGER NOT NULL DEFAULT 0,
        measure TEXT NOT NULL,
        body TEXT NOT NULL,
        staff TEXT NOT NULL,
        notify INTEGER NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX decisions_uid ON decisions (uid, at);
    CREATE INDEX decisions_message ON decisions (message_id) WHERE message_id > 0;
    CREATE TABLE appeals (
        id TEXT PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        uid TEXT NOT NULL,
        note TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        decided_by TEXT NOT NULL DEFAULT '',
        at INTEGER NOT NULL,
        decided_at INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX appeals_state ON appeals (state, at);
    CREATE INDEX appeals_uid ON appeals (uid);
    CREATE TABLE restrictions (
        id TEXT PRIMARY KEY,
        uid TEXT NOT NULL,
        kind TEXT NOT NULL,
        scope TEXT NOT NULL,
        until_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        by_actor TEXT NOT NULL,
        at INTEGER NOT NULL,
        lifted_at INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX restrictions_uid ON restrictions (uid, kind);
    CREATE TABLE group_slow_mode (
        guid TEXT PRIMARY KEY,
        seconds INTEGER NOT NULL
    );
    CREATE TABLE sanction_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 9: the inbox (issue 16): per-viewer conversation heads and read markers, kept by
    # triggers; case-insensitive user lookups (see inbox_schema.py)
    INBOX_MIGRATION,
    # 10: the audit log's hash chain (issue 15, ``server/audit_chain.py``); older
    # records keep empty hashes and precede the chain
    """
    ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
    """,
    # 11: quarantined media (issue 12 item 7): a match of a known-bad image list keeps the
    # encrypted blob for evidence and never serves it; 0 = not quarantined
    """
    ALTER TABLE media ADD COLUMN quarantined_at INTEGER NOT NULL DEFAULT 0;
    """,
    # 12: the inbox's status trigger split by what a verdict does (an approval moves heads
    # forward with an upsert; only a message that stops being shown is recomputed)
    INBOX_STATUS_SPLIT,
    # 13: retention (issue 15 item 7): a period per scope (``app`` or ``g:<guid>``, seconds,
    # 0 = forever) and the conversations held from deletion (see storage/retention.py)
    """
    CREATE TABLE retention_policy (
        scope TEXT PRIMARY KEY,
        seconds INTEGER NOT NULL
    );
    CREATE TABLE retention_holds (
        id TEXT PRIMARY KEY,
        conv_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        by_actor TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX retention_holds_conv ON retention_holds (conv_key);
    """,
    # 14: the inbox without its order index: it cost more per send than anything else on the
    # write path (see inbox_schema.py); a user's 1:1 heads are sorted when read
    """
    DROP INDEX inbox_direct_order;
    """,
    # 15: reactions and the thread-reply index (issue 16 item 8, threads_schema.py)
    THREADS_MIGRATION,
    # 16: users' offline-push endpoints (issue 16 item 7, push_schema.py)
    PUSH_MIGRATION,
    # 17: operator accounts and dashboard sessions (issue 17, see operators_schema.py)
    OPERATORS_MIGRATION,
)
