"""Migration 9 (SQLite 16, issue 16 item 7): users' offline-push endpoints, one per device;
as in SQLite (``server/storage/sqlite/push_schema.py``)."""

PUSH_MIGRATION = """
CREATE TABLE push_endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    uid TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    include_text INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (uid, device_id)
);
CREATE FUNCTION push_endpoints_user_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM push_endpoints WHERE uid = OLD.uid;
    RETURN NULL;
END $$;
CREATE TRIGGER push_endpoints_user_gone AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION push_endpoints_user_gone();
"""
