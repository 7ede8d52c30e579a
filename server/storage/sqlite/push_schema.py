"""Migration 16 (issue 16 item 7): users' offline-push endpoints, one per device.

The endpoint URL is kept in the clear (the server must call it); it names a device's
subscription, never message content. A trigger drops a user's endpoints when the account is
erased.
"""

PUSH_MIGRATION = """
CREATE TABLE push_endpoints (
    id TEXT PRIMARY KEY,
    uid TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    include_text INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (uid, device_id)
);
CREATE TRIGGER push_endpoints_user_gone AFTER DELETE ON users BEGIN
    DELETE FROM push_endpoints WHERE uid = OLD.uid;
END;
"""
