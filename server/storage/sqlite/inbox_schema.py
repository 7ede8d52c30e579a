"""The inbox's schema in SQLite (migration 9, issue 16): per-viewer conversation heads and
read markers, kept by triggers in the transaction of every write that moves them.

Why triggers: the heads change with every insert, verdict, edit back to pending and erasure,
and those writes belong to other modules; a trigger keeps the heads exact in the same commit
without the write paths knowing the inbox exists.

- ``inbox_direct``: per user and 1:1 conversation, the newest message that user may see
  (their own of any status, the other's once deliverable and unless a shadow ban hides it:
  ``shown``). Ordered by ``(last_at, last_id)``
  per user, so a page of the inbox is one index range.
- ``inbox_heads``: per group, the newest deliverable message; ``inbox_own``: per sender and
  group, the sender's newest message that was held or blocked when stored or judged. A
  member's head is the newer of the two, so a message to a group writes one row, never one
  per member.
- ``read_markers``: per user and conversation, the highest message id a ``read`` receipt
  named (everything up to it is read); joining a group starts the marker at the group's
  newest message, so history from before the join is not unread.

A recompute (a verdict, a deletion) reads the conversation's newest visible row through the
``messages_conversation`` index ``(conv_key, id)`` backwards: one seek in the common case.

The price is on the write path: two small upserts per 1:1 message, one per group message.
Migration 9 also kept an index ``(uid, last_at, last_id)`` so that a page of the inbox was one
index range; on a database with 10,000 conversations it cost 18 us of CPU per 1:1 insert
(46 us with it, 28 without, 19 with no trigger at all: one run, 20,000 inserts, CPU time),
more than the triggers themselves, on every send. Migration 14 dropped it: reading a user's
1:1 heads sorts their rows instead (``bench/inbox.py`` times the pages).
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


def _direct_refresh(who: str, other: str, row: str, guard: str) -> str:
    """Recompute ``who``'s head of the 1:1 conversation of message ``row`` (NEW/OLD)."""
    return f"""
        DELETE FROM inbox_direct WHERE {guard} AND uid = {who} AND conv_key = {row}.conv_key;
        INSERT INTO inbox_direct (uid, conv_key, peer, last_id, last_at)
            SELECT {who}, m.conv_key, {other}, m.id, m.sent_at FROM messages AS m
            WHERE {guard} AND m.conv_key = {row}.conv_key
                AND ({shown("m")} OR m.sender = {who})
            ORDER BY m.id DESC LIMIT 1;"""


def _upsert(table: str, key: str, columns: str, values: str, where: str = "") -> str:
    """Insert a head, or move the stored one forward (never back: ids only grow)."""
    return f"""
        INSERT INTO {table} ({key}, {columns}) SELECT {values} {where or "WHERE 1"}
            ON CONFLICT ({key}) DO UPDATE SET last_id = excluded.last_id,
                last_at = excluded.last_at
            WHERE excluded.last_id > {table}.last_id;"""


_DIRECT = ("inbox_direct", "uid, conv_key", "peer, last_id, last_at")
_SENDER_DIRECT = _upsert(*_DIRECT, "NEW.sender, NEW.conv_key, NEW.receiver, NEW.id, NEW.sent_at")
_RECEIVER_DIRECT = _upsert(
    *_DIRECT,
    "NEW.receiver, NEW.conv_key, NEW.sender, NEW.id, NEW.sent_at",
    f"WHERE {shown('NEW')}",
)
# A sender's own head matters only while their message is not shown to others (the group head
# covers it otherwise): kept on insert and on a verdict that holds or blocks it.
_SENDER_GROUP = _upsert(
    "inbox_own",
    "uid, conv_key",
    "last_id, last_at",
    "NEW.sender, NEW.conv_key, NEW.id, NEW.sent_at",
    f"WHERE NEW.receiver_type = 'group' AND NOT {shown('NEW')}",
)
_GROUP_HEAD = _upsert(
    "inbox_heads",
    "conv_key",
    "last_id, last_at",
    "NEW.conv_key, NEW.id, NEW.sent_at",
    f"WHERE {shown('NEW')}",
)
_RECEIVER_REFRESH = _direct_refresh(
    "NEW.receiver", "NEW.sender", "NEW", "NEW.receiver_type = 'user'"
)

INBOX_MIGRATION = f"""
    CREATE TABLE inbox_direct (
        uid TEXT NOT NULL,
        conv_key TEXT NOT NULL,
        peer TEXT NOT NULL,
        last_id INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (uid, conv_key)
    ) WITHOUT ROWID;
    CREATE INDEX inbox_direct_order ON inbox_direct (uid, last_at, last_id);
    CREATE TABLE inbox_heads (
        conv_key TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL,
        last_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE inbox_own (
        uid TEXT NOT NULL,
        conv_key TEXT NOT NULL,
        last_id INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (uid, conv_key)
    ) WITHOUT ROWID;
    CREATE TABLE read_markers (
        uid TEXT NOT NULL,
        conv_key TEXT NOT NULL,
        read_id INTEGER NOT NULL,
        PRIMARY KEY (uid, conv_key)
    ) WITHOUT ROWID;
    CREATE INDEX users_lower_uid ON users (lower(uid));
    CREATE INDEX users_lower_name ON users (lower(name));

    INSERT INTO inbox_direct (uid, conv_key, peer, last_id, last_at)
        SELECT v, conv_key, peer, max(id), 0 FROM (
            SELECT sender AS v, receiver AS peer, conv_key, id FROM messages
                WHERE receiver_type = 'user'
            UNION ALL
            SELECT receiver, sender, conv_key, id FROM messages AS m
                WHERE receiver_type = 'user' AND {shown("m")}
        ) AS seen GROUP BY v, conv_key, peer;
    UPDATE inbox_direct SET last_at = (SELECT sent_at FROM messages WHERE id = last_id);
    INSERT INTO inbox_heads (conv_key, last_id, last_at)
        SELECT conv_key, max(id), 0 FROM messages AS m
        WHERE receiver_type = 'group' AND {shown("m")} GROUP BY conv_key;
    UPDATE inbox_heads SET last_at = (SELECT sent_at FROM messages WHERE id = last_id);
    INSERT INTO inbox_own (uid, conv_key, last_id, last_at)
        SELECT sender, conv_key, max(id), 0 FROM messages
        WHERE receiver_type = 'group' GROUP BY sender, conv_key;
    UPDATE inbox_own SET last_at = (SELECT sent_at FROM messages WHERE id = last_id);
    INSERT INTO read_markers (uid, conv_key, read_id)
        SELECT r.uid, m.conv_key, max(r.message_id) FROM receipts AS r
        JOIN messages AS m ON m.id = r.message_id
        WHERE r.type = 'read' GROUP BY r.uid, m.conv_key;

    CREATE TRIGGER inbox_insert_direct AFTER INSERT ON messages
    WHEN NEW.receiver_type = 'user' BEGIN
        {_SENDER_DIRECT}
        {_RECEIVER_DIRECT}
    END;
    CREATE TRIGGER inbox_insert_group AFTER INSERT ON messages
    WHEN NEW.receiver_type = 'group' BEGIN
        {_SENDER_GROUP}
        {_GROUP_HEAD}
    END;
    CREATE TRIGGER inbox_status AFTER UPDATE OF status ON messages
    WHEN OLD.status IS NOT NEW.status BEGIN
        {_RECEIVER_REFRESH}
        {_SENDER_GROUP}
        DELETE FROM inbox_heads
            WHERE NEW.receiver_type = 'group' AND conv_key = NEW.conv_key;
        INSERT INTO inbox_heads (conv_key, last_id, last_at)
            SELECT m.conv_key, m.id, m.sent_at FROM messages AS m
            WHERE NEW.receiver_type = 'group' AND m.conv_key = NEW.conv_key AND {shown("m")}
            ORDER BY m.id DESC LIMIT 1;
    END;
    CREATE TRIGGER inbox_delete AFTER DELETE ON messages BEGIN
        DELETE FROM inbox_direct WHERE uid IN (OLD.sender, OLD.receiver)
            AND conv_key = OLD.conv_key AND last_id = OLD.id;
        INSERT OR IGNORE INTO inbox_direct (uid, conv_key, peer, last_id, last_at)
            SELECT OLD.sender, m.conv_key, OLD.receiver, m.id, m.sent_at FROM messages AS m
            WHERE OLD.receiver_type = 'user' AND m.conv_key = OLD.conv_key
                AND ({shown("m")} OR m.sender = OLD.sender)
            ORDER BY m.id DESC LIMIT 1;
        INSERT OR IGNORE INTO inbox_direct (uid, conv_key, peer, last_id, last_at)
            SELECT OLD.receiver, m.conv_key, OLD.sender, m.id, m.sent_at FROM messages AS m
            WHERE OLD.receiver_type = 'user' AND m.conv_key = OLD.conv_key
                AND ({shown("m")} OR m.sender = OLD.receiver)
            ORDER BY m.id DESC LIMIT 1;
        DELETE FROM inbox_heads WHERE conv_key = OLD.conv_key AND last_id = OLD.id;
        INSERT OR IGNORE INTO inbox_heads (conv_key, last_id, last_at)
            SELECT m.conv_key, m.id, m.sent_at FROM messages AS m
            WHERE OLD.receiver_type = 'group' AND m.conv_key = OLD.conv_key AND {shown("m")}
            ORDER BY m.id DESC LIMIT 1;
        DELETE FROM inbox_own
            WHERE uid = OLD.sender AND conv_key = OLD.conv_key AND last_id = OLD.id;
        INSERT OR IGNORE INTO inbox_own (uid, conv_key, last_id, last_at)
            SELECT sender, conv_key, id, sent_at FROM messages
            WHERE OLD.receiver_type = 'group' AND sender = OLD.sender
                AND conv_key = OLD.conv_key
            ORDER BY id DESC LIMIT 1;
    END;
    CREATE TRIGGER inbox_read AFTER INSERT ON receipts WHEN NEW.type = 'read' BEGIN
        INSERT INTO read_markers (uid, conv_key, read_id)
            SELECT NEW.uid, conv_key, NEW.message_id FROM messages WHERE id = NEW.message_id
            ON CONFLICT (uid, conv_key) DO UPDATE SET read_id = excluded.read_id
            WHERE excluded.read_id > read_markers.read_id;
    END;
    CREATE TRIGGER inbox_join AFTER INSERT ON members BEGIN
        INSERT INTO read_markers (uid, conv_key, read_id)
            SELECT NEW.uid, 'g:' || NEW.guid, coalesce((SELECT id FROM messages
                WHERE conv_key = 'g:' || NEW.guid ORDER BY id DESC LIMIT 1), 0) WHERE 1
            ON CONFLICT (uid, conv_key) DO UPDATE SET read_id = excluded.read_id
            WHERE excluded.read_id > read_markers.read_id;
    END;
    CREATE TRIGGER inbox_user_erased AFTER DELETE ON users BEGIN
        DELETE FROM inbox_direct WHERE uid = OLD.uid;
        DELETE FROM inbox_own WHERE uid = OLD.uid;
        DELETE FROM read_markers WHERE uid = OLD.uid;
    END;
"""


#: Migration 12: ``inbox_status`` split by what the verdict does. The common verdict makes a
#: held message shown (an approval), and then the heads only move forward, like on insert: an
#: upsert, not the delete and backward scan of a recompute, which only a message that stops
#: being shown needs. And a 1:1 verdict no longer runs the group statements as no-ops. Same
#: heads as migration 9's trigger (tests/server/test_inbox_schema.py compares the two over
#: random writes); about 40 % less SQLite time in the trigger per approval.
INBOX_STATUS_SPLIT = f"""
    DROP TRIGGER inbox_status;
    CREATE TRIGGER inbox_status_direct_shown AFTER UPDATE OF status ON messages
    WHEN OLD.status IS NOT NEW.status AND NEW.receiver_type = 'user'
        AND NEW.{_DELIVERABLE} BEGIN
        {_RECEIVER_DIRECT}
    END;
    CREATE TRIGGER inbox_status_direct_hidden AFTER UPDATE OF status ON messages
    WHEN OLD.status IS NOT NEW.status AND NEW.receiver_type = 'user'
        AND NOT NEW.{_DELIVERABLE} BEGIN
        {_RECEIVER_REFRESH}
    END;
    CREATE TRIGGER inbox_status_group_shown AFTER UPDATE OF status ON messages
    WHEN OLD.status IS NOT NEW.status AND NEW.receiver_type = 'group'
        AND NEW.{_DELIVERABLE} BEGIN
        {_SENDER_GROUP}
        {_GROUP_HEAD}
    END;
    CREATE TRIGGER inbox_status_group_hidden AFTER UPDATE OF status ON messages
    WHEN OLD.status IS NOT NEW.status AND NEW.receiver_type = 'group'
        AND NOT NEW.{_DELIVERABLE} BEGIN
        {_SENDER_GROUP}
        DELETE FROM inbox_heads WHERE conv_key = NEW.conv_key;
        INSERT INTO inbox_heads (conv_key, last_id, last_at)
            SELECT m.conv_key, m.id, m.sent_at FROM messages AS m
            WHERE m.conv_key = NEW.conv_key AND {shown("m")}
            ORDER BY m.id DESC LIMIT 1;
    END;
"""
