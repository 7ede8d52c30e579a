"""Migration 8 (SQLite 15, issue 16 item 8): reactions, and an index for thread replies.

As in SQLite (``server/storage/sqlite/threads_schema.py``): reactions in the clear, removed
by triggers when their message row or their user is erased.
"""

THREADS_MIGRATION = """
CREATE TABLE reactions (
    message_id BIGINT NOT NULL,
    uid TEXT COLLATE "C" NOT NULL,
    emoji TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (message_id, uid, emoji)
);
CREATE INDEX reactions_uid ON reactions (uid);
CREATE INDEX messages_thread ON messages (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE FUNCTION reactions_message_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM reactions WHERE message_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER reactions_message_gone AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION reactions_message_gone();
CREATE FUNCTION reactions_user_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM reactions WHERE uid = OLD.uid;
    RETURN NULL;
END $$;
CREATE TRIGGER reactions_user_gone AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION reactions_user_gone();
"""
