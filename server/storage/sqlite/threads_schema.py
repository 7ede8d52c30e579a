"""Migration 15 (issue 16 item 8): reactions, and an index for thread replies.

A reaction is ``(message, user, emoji)``, stored in the clear (counted and grouped, like
statuses; the message itself stays sealed). Triggers remove a message's reactions when the
row is erased and a user's when the account is erased, so the GDPR paths need no new step.
"""

THREADS_MIGRATION = """
CREATE TABLE reactions (
    message_id INTEGER NOT NULL,
    uid TEXT NOT NULL,
    emoji TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (message_id, uid, emoji)
) WITHOUT ROWID;
CREATE INDEX reactions_uid ON reactions (uid);
CREATE INDEX messages_thread ON messages (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE TRIGGER reactions_message_gone AFTER DELETE ON messages BEGIN
    DELETE FROM reactions WHERE message_id = OLD.id;
END;
CREATE TRIGGER reactions_user_gone AFTER DELETE ON users BEGIN
    DELETE FROM reactions WHERE uid = OLD.uid;
END;
"""
