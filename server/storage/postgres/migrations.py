"""Numbered schema migrations for PostgreSQL; ``parley_schema.version`` records the last one.

Its own list, not SQLite's: migration 1 is the schema SQLite reaches after its migrations
(conversation keys, account ids, key-id indexes included); later changes append a number to
both lists. Text keys that are listed in order (uids, group ids, rule and list ids) use the
"C" collation, so they sort by code point as in SQLite whatever the database's locale.
"""

from __future__ import annotations

from server.storage.postgres.inbox_schema import INBOX_MIGRATION
from server.storage.postgres.operators_schema import OPERATORS_MIGRATION
from server.storage.postgres.push_schema import PUSH_MIGRATION
from server.storage.postgres.threads_schema import THREADS_MIGRATION

MIGRATIONS: tuple[str, ...] = (
    # 1: the chat core, moderation state, outgoing webhooks (SQLite migrations 1-6)
    """
    CREATE TABLE users (
        uid TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        banned INTEGER NOT NULL DEFAULT 0,
        deleted_at BIGINT NOT NULL DEFAULT 0,
        account TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE groups (
        guid TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        owner TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE members (
        guid TEXT COLLATE "C" NOT NULL,
        uid TEXT COLLATE "C" NOT NULL,
        scope INTEGER NOT NULL,
        joined_at BIGINT NOT NULL,
        PRIMARY KEY (guid, uid)
    );
    CREATE INDEX members_uid ON members (uid);
    CREATE TABLE bans (
        guid TEXT COLLATE "C" NOT NULL,
        uid TEXT COLLATE "C" NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        by_uid TEXT,
        at BIGINT NOT NULL,
        PRIMARY KEY (guid, uid)
    );
    CREATE TABLE blocks (
        blocker TEXT COLLATE "C" NOT NULL,
        blocked TEXT COLLATE "C" NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (blocker, blocked)
    );
    CREATE INDEX blocks_blocked ON blocks (blocked);
    -- Ids come from messages_id_seq, taken by the writer before sealing (the id is in the
    -- sealed body's associated data); see writer.WriteTx.message_id.
    CREATE TABLE messages (
        id BIGINT PRIMARY KEY,
        muid TEXT COLLATE "C" NOT NULL,
        conversation_id TEXT NOT NULL,
        sender TEXT COLLATE "C" NOT NULL,
        receiver TEXT NOT NULL,
        receiver_type TEXT NOT NULL,
        category TEXT NOT NULL,
        type TEXT NOT NULL,
        kid TEXT COLLATE "C" NOT NULL,
        body BYTEA NOT NULL,
        parent_id BIGINT,
        sent_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        edited_at BIGINT NOT NULL DEFAULT 0,
        deleted_at BIGINT NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        rev INTEGER NOT NULL DEFAULT 0,
        shown INTEGER NOT NULL DEFAULT 0,
        conv_key TEXT COLLATE "C" NOT NULL DEFAULT ''
    );
    CREATE SEQUENCE messages_id_seq OWNED BY messages.id;
    CREATE UNIQUE INDEX messages_sender_muid ON messages (sender, muid);
    CREATE INDEX messages_conversation ON messages (conv_key, id);
    CREATE INDEX messages_sender ON messages (sender, id);
    CREATE INDEX messages_pending ON messages (status) WHERE status = 'pending';
    CREATE INDEX messages_kid ON messages (kid);
    CREATE TABLE receipts (
        message_id BIGINT NOT NULL,
        uid TEXT COLLATE "C" NOT NULL,
        type TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (message_id, uid, type)
    );
    CREATE INDEX receipts_uid ON receipts (uid, message_id);
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_at ON audit (at);
    CREATE TABLE rules (
        id TEXT COLLATE "C" PRIMARY KEY,
        body TEXT NOT NULL,
        revision INTEGER NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        deleted_at BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE rule_revisions (
        rule_id TEXT COLLATE "C" NOT NULL,
        revision INTEGER NOT NULL,
        body TEXT NOT NULL,
        actor TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (rule_id, revision)
    );
    CREATE TABLE lists (
        id TEXT COLLATE "C" PRIMARY KEY,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE review (
        message_id BIGINT NOT NULL,
        state TEXT NOT NULL,
        rule_id TEXT,
        at BIGINT NOT NULL,
        decided_at BIGINT NOT NULL DEFAULT 0,
        decided_by TEXT,
        decision TEXT,
        PRIMARY KEY (message_id, state)
    );
    CREATE INDEX review_open ON review (state, decided_at, at);
    -- Ids come from reports_id_seq before sealing (the id is in the associated data).
    CREATE TABLE reports (
        id BIGINT PRIMARY KEY,
        message_id BIGINT NOT NULL,
        reporter TEXT NOT NULL,
        kid TEXT COLLATE "C" NOT NULL,
        body BYTEA NOT NULL,
        at BIGINT NOT NULL,
        UNIQUE (message_id, reporter)
    );
    CREATE SEQUENCE reports_id_seq OWNED BY reports.id;
    CREATE INDEX reports_kid ON reports (kid);
    CREATE TABLE webhook_deliveries (
        id BIGSERIAL PRIMARY KEY,
        event_id TEXT NOT NULL,
        event TEXT NOT NULL,
        hook_id TEXT NOT NULL,
        url TEXT NOT NULL,
        kid TEXT COLLATE "C" NOT NULL,
        body BYTEA NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at DOUBLE PRECISION NOT NULL,
        last_status INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        delivered_at BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
    CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
    CREATE INDEX webhook_deliveries_kid ON webhook_deliveries (kid);
    """,
    # 2: media metadata (SQLite 7): the files are encrypted under the data dir, never here;
    # the name is sealed in `body` with `kid`, which also encrypted the files
    """
    CREATE TABLE media (
        id TEXT COLLATE "C" PRIMARY KEY,
        uploader TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        size BIGINT NOT NULL,
        kid TEXT COLLATE "C" NOT NULL,
        body BYTEA NOT NULL,
        thumb_mime TEXT,
        thumb_size BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        attached_to BIGINT
    );
    CREATE INDEX media_uploader ON media (uploader, created_at);
    CREATE INDEX media_kid ON media (kid);
    CREATE INDEX media_attached ON media (attached_to) WHERE attached_to IS NOT NULL;
    """,
    # 3 (SQLite 8): decisions (statements of reasons), appeals, restrictions (mutes, shadow
    # bans), group slow mode and the operator's terms catalogue (issue 15)
    """
    CREATE TABLE decisions (
        id TEXT COLLATE "C" PRIMARY KEY,
        uid TEXT NOT NULL,
        message_id BIGINT NOT NULL DEFAULT 0,
        measure TEXT NOT NULL,
        body TEXT NOT NULL,
        staff TEXT NOT NULL,
        notify BIGINT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX decisions_uid ON decisions (uid, at);
    CREATE INDEX decisions_message ON decisions (message_id) WHERE message_id > 0;
    CREATE TABLE appeals (
        id TEXT COLLATE "C" PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        uid TEXT NOT NULL,
        note TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        decided_by TEXT NOT NULL DEFAULT '',
        at BIGINT NOT NULL,
        decided_at BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX appeals_state ON appeals (state, at);
    CREATE INDEX appeals_uid ON appeals (uid);
    CREATE TABLE restrictions (
        id TEXT COLLATE "C" PRIMARY KEY,
        uid TEXT NOT NULL,
        kind TEXT NOT NULL,
        scope TEXT NOT NULL,
        until_at BIGINT NOT NULL,
        reason TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        by_actor TEXT NOT NULL,
        at BIGINT NOT NULL,
        lifted_at BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX restrictions_uid ON restrictions (uid, kind);
    CREATE TABLE group_slow_mode (
        guid TEXT COLLATE "C" PRIMARY KEY,
        seconds BIGINT NOT NULL
    );
    CREATE TABLE sanction_settings (
        key TEXT COLLATE "C" PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 4 (SQLite 9): the inbox (issue 16): per-viewer conversation heads and read markers,
    # kept by triggers; case-insensitive user lookups (see inbox_schema.py)
    INBOX_MIGRATION,
    # 5 (SQLite 10): the audit log's hash chain (issue 15, ``server/audit_chain.py``); older
    # records keep empty hashes and precede the chain
    """
    ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
    """,
    # 6 (SQLite 11): quarantined media (issue 12 item 7): a match of a known-bad image list
    # keeps the encrypted blob for evidence and never serves it; 0 = not quarantined
    """
    ALTER TABLE media ADD COLUMN quarantined_at BIGINT NOT NULL DEFAULT 0;
    """,
    # 7 (SQLite 13): retention (issue 15 item 7): a period per scope (``app`` or
    # ``g:<guid>``, seconds, 0 = forever) and the conversations held from deletion
    """
    CREATE TABLE retention_policy (
        scope TEXT COLLATE "C" PRIMARY KEY,
        seconds BIGINT NOT NULL
    );
    CREATE TABLE retention_holds (
        id TEXT COLLATE "C" PRIMARY KEY,
        conv_key TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        by_actor TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX retention_holds_conv ON retention_holds (conv_key);
    """,
    # 8 (SQLite 15): reactions and the thread-reply index (issue 16 item 8, threads_schema.py)
    THREADS_MIGRATION,
    # 9 (SQLite 16): users' offline-push endpoints (issue 16 item 7, push_schema.py)
    PUSH_MIGRATION,
    # 10 (SQLite 17): operator accounts and dashboard sessions (issue 17, operators_schema.py)
    OPERATORS_MIGRATION,
)
