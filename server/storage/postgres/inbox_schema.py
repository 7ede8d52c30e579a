"""The inbox's schema in PostgreSQL (migration 4, SQLite 9; issue 16): the same tables as
SQLite's ``inbox_schema.py``, kept by PL/pgSQL triggers in the commit of each write.

Concurrent writers of one conversation (several processes) stay exact: a head only moves
forward by an upsert that keeps the larger id, a recompute (a verdict, a deletion) reads the
newest visible row after waiting on the row locks of the heads it replaces, and message ids
are taken in order under the writer's advisory lock.
"""

from __future__ import annotations

_DELIVERABLE = "status IN ('unmoderated', 'approved')"


def hidden(m: str) -> str:
    """Whether a shadow ban stood over message ``m`` when it was sent: the same rule as
    ``Restrictions.hidden`` (server/services/restrictions.py; change both together)."""
    return (
        "EXISTS (SELECT 1 FROM restrictions AS r"
        f" WHERE r.uid = {m}.sender AND r.kind = 'shadow_ban' AND r.at <= {m}.sent_at"
        f" AND (r.until_at = 0 OR {m}.sent_at < r.until_at)"
        f" AND (r.lifted_at = 0 OR {m}.sent_at < r.lifted_at + 1)"
        f" AND (r.scope = 'global' OR ({m}.receiver_type = 'group'"
        f" AND r.scope = 'group:' || {m}.receiver)))"
    )


def shown(m: str) -> str:
    """Whether message ``m`` may be shown to others than its sender: deliverable, and not
    hidden by a shadow ban."""
    return f"({m}.{_DELIVERABLE} AND NOT {hidden(m)})"


def _upsert(table: str, key: str, columns: str, values: str) -> str:
    """Insert a head, or move the stored one forward (never back: ids only grow)."""
    return f"""
        INSERT INTO {table} AS t ({key}, {columns}) VALUES ({values})
            ON CONFLICT ({key}) DO UPDATE SET last_id = EXCLUDED.last_id,
                last_at = EXCLUDED.last_at
            WHERE EXCLUDED.last_id > t.last_id;"""


_DIRECT = ("inbox_direct", "uid, conv_key", "peer, last_id, last_at")
_SENDER_DIRECT = _upsert(*_DIRECT, "NEW.sender, NEW.conv_key, NEW.receiver, NEW.id, NEW.sent_at")
_RECEIVER_DIRECT = _upsert(*_DIRECT, "NEW.receiver, NEW.conv_key, NEW.sender, NEW.id, NEW.sent_at")
_SENDER_GROUP = _upsert(
    "inbox_own",
    "uid, conv_key",
    "last_id, last_at",
    "NEW.sender, NEW.conv_key, NEW.id, NEW.sent_at",
)
_GROUP_HEAD = _upsert(
    "inbox_heads", "conv_key", "last_id, last_at", "NEW.conv_key, NEW.id, NEW.sent_at"
)

INBOX_MIGRATION = f"""
    CREATE TABLE inbox_direct (
        uid TEXT COLLATE "C" NOT NULL,
        conv_key TEXT COLLATE "C" NOT NULL,
        peer TEXT COLLATE "C" NOT NULL,
        last_id BIGINT NOT NULL,
        last_at BIGINT NOT NULL,
        PRIMARY KEY (uid, conv_key)
    );
    CREATE INDEX inbox_direct_order ON inbox_direct (uid, last_at, last_id);
    CREATE TABLE inbox_heads (
        conv_key TEXT COLLATE "C" PRIMARY KEY,
        last_id BIGINT NOT NULL,
        last_at BIGINT NOT NULL
    );
    CREATE TABLE inbox_own (
        uid TEXT COLLATE "C" NOT NULL,
        conv_key TEXT COLLATE "C" NOT NULL,
        last_id BIGINT NOT NULL,
        last_at BIGINT NOT NULL,
        PRIMARY KEY (uid, conv_key)
    );
    CREATE TABLE read_markers (
        uid TEXT COLLATE "C" NOT NULL,
        conv_key TEXT COLLATE "C" NOT NULL,
        read_id BIGINT NOT NULL,
        PRIMARY KEY (uid, conv_key)
    );
    -- lower() under the "C" collation folds ASCII only, as SQLite's does
    CREATE INDEX users_lower_uid ON users ((lower(uid COLLATE "C")));
    CREATE INDEX users_lower_name ON users ((lower(name COLLATE "C")));

    INSERT INTO inbox_direct (uid, conv_key, peer, last_id, last_at)
        SELECT v, conv_key, peer, max(id), 0 FROM (
            SELECT sender AS v, receiver AS peer, conv_key, id FROM messages
                WHERE receiver_type = 'user'
            UNION ALL
            SELECT receiver, sender, conv_key, id FROM messages
                WHERE receiver_type = 'user' AND {shown("messages")}
        ) AS seen GROUP BY v, conv_key, peer;
    UPDATE inbox_direct AS d SET last_at = m.sent_at FROM messages AS m WHERE m.id = d.last_id;
    INSERT INTO inbox_heads (conv_key, last_id, last_at)
        SELECT conv_key, max(id), 0 FROM messages
        WHERE receiver_type = 'group' AND {shown("messages")} GROUP BY conv_key;
    UPDATE inbox_heads AS h SET last_at = m.sent_at FROM messages AS m WHERE m.id = h.last_id;
    INSERT INTO inbox_own (uid, conv_key, last_id, last_at)
        SELECT sender, conv_key, max(id), 0 FROM messages
        WHERE receiver_type = 'group' GROUP BY sender, conv_key;
    UPDATE inbox_own AS o SET last_at = m.sent_at FROM messages AS m WHERE m.id = o.last_id;
    INSERT INTO read_markers (uid, conv_key, read_id)
        SELECT r.uid, m.conv_key, max(r.message_id) FROM receipts AS r
        JOIN messages AS m ON m.id = r.message_id
        WHERE r.type = 'read' GROUP BY r.uid, m.conv_key;

    -- who's head of a 1:1 conversation, recomputed from the messages (a verdict, a deletion)
    CREATE FUNCTION inbox_direct_refresh(who TEXT, other TEXT, ck TEXT) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM inbox_direct AS d WHERE d.uid = who AND d.conv_key = ck;
        INSERT INTO inbox_direct (uid, conv_key, peer, last_id, last_at)
            SELECT who, ck, other, m.id, m.sent_at FROM messages AS m
            WHERE m.conv_key = ck AND ({shown("m")} OR m.sender = who)
            ORDER BY m.id DESC LIMIT 1;
    END $$;
    CREATE FUNCTION inbox_group_refresh(ck TEXT) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM inbox_heads AS h WHERE h.conv_key = ck;
        INSERT INTO inbox_heads (conv_key, last_id, last_at)
            SELECT ck, m.id, m.sent_at FROM messages AS m
            WHERE m.conv_key = ck AND {shown("m")} ORDER BY m.id DESC LIMIT 1;
    END $$;

    CREATE FUNCTION inbox_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.receiver_type = 'user' THEN
            {_SENDER_DIRECT}
            IF {shown("NEW")} THEN
                {_RECEIVER_DIRECT}
            END IF;
        ELSIF {shown("NEW")} THEN
            {_GROUP_HEAD}
        ELSE
            -- the sender's own head matters only while it is not deliverable
            {_SENDER_GROUP}
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER inbox_insert AFTER INSERT ON messages
        FOR EACH ROW EXECUTE FUNCTION inbox_on_insert();

    CREATE FUNCTION inbox_on_status() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.receiver_type = 'user' THEN
            PERFORM inbox_direct_refresh(NEW.receiver, NEW.sender, NEW.conv_key);
        ELSE
            PERFORM inbox_group_refresh(NEW.conv_key);
            IF NOT NEW.{_DELIVERABLE} THEN
                {_SENDER_GROUP}
            END IF;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER inbox_status AFTER UPDATE OF status ON messages
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION inbox_on_status();

    CREATE FUNCTION inbox_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.receiver_type = 'user' THEN
            IF EXISTS (SELECT 1 FROM inbox_direct AS d
                       WHERE d.uid = OLD.sender AND d.conv_key = OLD.conv_key
                           AND d.last_id = OLD.id) THEN
                PERFORM inbox_direct_refresh(OLD.sender, OLD.receiver, OLD.conv_key);
            END IF;
            IF EXISTS (SELECT 1 FROM inbox_direct AS d
                       WHERE d.uid = OLD.receiver AND d.conv_key = OLD.conv_key
                           AND d.last_id = OLD.id) THEN
                PERFORM inbox_direct_refresh(OLD.receiver, OLD.sender, OLD.conv_key);
            END IF;
        ELSE
            IF EXISTS (SELECT 1 FROM inbox_heads AS h
                       WHERE h.conv_key = OLD.conv_key AND h.last_id = OLD.id) THEN
                PERFORM inbox_group_refresh(OLD.conv_key);
            END IF;
            DELETE FROM inbox_own AS o
                WHERE o.uid = OLD.sender AND o.conv_key = OLD.conv_key AND o.last_id = OLD.id;
            IF FOUND THEN
                INSERT INTO inbox_own (uid, conv_key, last_id, last_at)
                    SELECT m.sender, m.conv_key, m.id, m.sent_at FROM messages AS m
                    WHERE m.sender = OLD.sender AND m.conv_key = OLD.conv_key
                    ORDER BY m.id DESC LIMIT 1;
            END IF;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER inbox_delete AFTER DELETE ON messages
        FOR EACH ROW EXECUTE FUNCTION inbox_on_delete();

    CREATE FUNCTION inbox_on_read() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO read_markers AS r (uid, conv_key, read_id)
            SELECT NEW.uid, m.conv_key, NEW.message_id FROM messages AS m
            WHERE m.id = NEW.message_id
            ON CONFLICT (uid, conv_key) DO UPDATE SET read_id = EXCLUDED.read_id
            WHERE EXCLUDED.read_id > r.read_id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER inbox_read AFTER INSERT ON receipts
        FOR EACH ROW WHEN (NEW.type = 'read') EXECUTE FUNCTION inbox_on_read();

    CREATE FUNCTION inbox_on_join() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO read_markers AS r (uid, conv_key, read_id)
            VALUES (NEW.uid, 'g:' || NEW.guid, coalesce((SELECT m.id FROM messages AS m
                WHERE m.conv_key = 'g:' || NEW.guid ORDER BY m.id DESC LIMIT 1), 0))
            ON CONFLICT (uid, conv_key) DO UPDATE SET read_id = EXCLUDED.read_id
            WHERE EXCLUDED.read_id > r.read_id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER inbox_join AFTER INSERT ON members
        FOR EACH ROW EXECUTE FUNCTION inbox_on_join();

    CREATE FUNCTION inbox_on_user_erased() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM inbox_direct AS d WHERE d.uid = OLD.uid;
        DELETE FROM inbox_own AS o WHERE o.uid = OLD.uid;
        DELETE FROM read_markers AS r WHERE r.uid = OLD.uid;
        RETURN NULL;
    END $$;
    CREATE TRIGGER inbox_user_erased AFTER DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION inbox_on_user_erased();
"""
