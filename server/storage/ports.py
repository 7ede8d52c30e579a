"""The storage ports: one ``Protocol`` per repository, and the transaction they share.

Services depend on these and on the values in ``types.py``, never on a database. The SQLite
implementation lives in ``server.storage.sqlite``; another backend (PostgreSQL) is a sibling
package implementing the same protocols, and only the composition root (``server/app.py``)
names either.

Every write returns only after its transaction is committed. A write that must commit
together with a verdict (an audit row, a review-queue entry) is a ``TxOp``: it receives the
``Transaction`` of that write and may call only its methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from server.models import Group, Message, Moderation, Scope, Status, User
from server.storage.inbox import ConversationHead, InboxPosition
from server.storage.operators import OperatorRecord, SessionRecord
from server.storage.retention import Deleted, HoldRecord
from server.storage.sanctions import AppealRecord, DecisionRecord, RestrictionRecord
from server.storage.types import (
    Audit,
    AuditEntry,
    Delivery,
    MediaRecord,
    NewDelivery,
    NewMessage,
    PushEndpoint,
    ReviewItem,
)


class Transaction(Protocol):
    """The writes that may share a transaction with another repository's write."""

    async def audit(self, audit: Audit, at: int) -> None:
        """Add an audit record."""
        ...

    async def enqueue_review(
        self, message_id: int, state: str, rule_id: str | None, at: int
    ) -> None:
        """Put a message in the review queue in ``state`` (idempotent)."""
        ...

    async def close_review(self, message_id: int, decision: str, by: str, at: int) -> None:
        """Close the message's open review-queue entries with ``decision``."""
        ...


#: A write run inside another write's transaction (see ``MessageRepository.set_status``).
TxOp = Callable[[Transaction], Awaitable[None]]


class UserRepository(Protocol):
    async def create_user(self, user: User, audit: Audit) -> None: ...
    async def get_user(self, uid: str) -> User | None: ...
    async def update_user(self, user: User, audit: Audit) -> None: ...
    async def delete_user(self, uid: str, at: int, *, erase: bool, audit: Audit) -> None:
        """Mark deleted, or with ``erase`` remove the user with its messages, receipts,
        blocks and bans; either way its memberships go."""
        ...


class GroupRepository(Protocol):
    async def create_group(self, group: Group, audit: Audit) -> None: ...
    async def get_group(self, guid: str) -> Group | None: ...
    async def members(self, guid: str) -> dict[str, Scope]: ...
    async def groups_of(self, uid: str) -> list[str]: ...
    async def set_member(
        self, guid: str, uid: str, scope: Scope, at: int, audit: Audit
    ) -> None: ...
    async def remove_member(self, guid: str, uid: str, audit: Audit) -> None: ...
    async def ban(
        self, guid: str, uid: str, reason: str, by: str, at: int, audit: Audit
    ) -> None: ...
    async def unban(self, guid: str, uid: str, audit: Audit) -> None: ...
    async def is_banned(self, guid: str, uid: str) -> bool: ...


class BlockRepository(Protocol):
    async def blocks_of(self, uid: str) -> tuple[set[str], set[str]]:
        """(users ``uid`` blocked, users who blocked ``uid``)."""
        ...

    async def add_blocks(self, blocker: str, uids: Sequence[str], at: int) -> None: ...
    async def remove_block(self, blocker: str, uid: str) -> None: ...


class MessageRepository(Protocol):
    async def insert_message(self, new: NewMessage) -> tuple[Message, bool]:
        """Insert, idempotent on ``(sender, muid)``: returns (message, created)."""
        ...

    async def get_message(self, message_id: int) -> Message | None: ...
    async def find_by_muid(self, sender: str, muid: str) -> Message | None: ...
    async def history(
        self, conversation_key: str, *, before: int | None, limit: int, viewer: str | None
    ) -> list[Message]:
        """Newest ``limit`` messages below ``before`` that ``viewer`` may see (staff: None),
        oldest first."""
        ...

    async def recent(self, conversation_key: str, *, before: int, limit: int) -> list[Message]:
        """The newest ``limit`` deliverable, undeleted messages below ``before``, oldest first."""
        ...

    async def recent_of_sender(self, sender: str, *, since: int, limit: int) -> list[Message]:
        """The sender's newest ``limit`` messages sent at or after ``since``, oldest first."""
        ...

    async def update_content(self, message: Message, *, status: Status, at: int) -> Message: ...
    async def mark_deleted(self, message: Message, at: int) -> Message: ...
    async def set_status(
        self,
        message: Message,
        status: Status,
        moderation: Moderation | None,
        at: int,
        audit: Audit | None,
        also: TxOp | None = None,
    ) -> Message | None:
        """Conditional verdict: applies only if the row is still at ``message.rev`` and
        status; ``audit`` and ``also`` commit with it. None if the row moved on."""
        ...

    async def messages_since(self, since: int, *, limit: int) -> list[Message]: ...
    async def pending_ids(self) -> list[int]: ...
    async def messages_of_sender(self, sender: str) -> list[Message]: ...
    async def sent_count(self, sender: str, cap: int) -> int:
        """How many messages ``sender`` has stored, counted up to ``cap`` at most."""
        ...

    async def add_receipt(self, message_id: int, uid: str, kind: str, at: int) -> bool: ...
    async def receipts_of(self, uid: str) -> list[dict[str, Any]]: ...
    async def receipt_counts(
        self, message_ids: Sequence[int], *, exclude: Sequence[str] = ()
    ) -> dict[int, dict[str, int]]:
        """Per message id: how many users gave each receipt type (``delivered``, ``read``),
        leaving out receipts by the uids in ``exclude``; ids without receipts are absent."""
        ...


class AuditRepository(Protocol):
    async def add_audit(self, audit: Audit, at: int) -> None: ...
    async def audit_since(self, since: int, limit: int) -> list[AuditEntry]: ...


class ChatStore(
    UserRepository,
    GroupRepository,
    BlockRepository,
    MessageRepository,
    AuditRepository,
    Protocol,
):
    """The repositories the chat service uses, as one object (until it is split by resource)."""


class ModerationRepository(Protocol):
    """Rules with revisions, lists, settings, the review queue and reports.

    ``body`` values are validated JSON objects; each write stores its own audit record.
    """

    async def rules(self) -> list[dict[str, Any]]: ...
    async def rule(self, rule_id: str) -> dict[str, Any] | None: ...
    async def put_rule(
        self, body: dict[str, Any], *, actor: str, at: int, create: bool
    ) -> dict[str, Any]:
        """Insert (``create``) or replace a rule with a new revision; the stored body.

        Raises KeyError if ``create`` and the id is live, LookupError if not ``create`` and
        it is not.
        """
        ...

    async def delete_rule(self, rule_id: str, *, actor: str, at: int) -> bool: ...
    async def rule_revisions(self, rule_id: str) -> list[dict[str, Any]]: ...
    async def has_any_rule_history(self) -> bool: ...

    async def lists(self) -> list[dict[str, Any]]: ...
    async def get_list(self, list_id: str) -> dict[str, Any] | None: ...
    async def put_list(
        self, body: dict[str, Any], *, actor: str, at: int, create: bool
    ) -> dict[str, Any]: ...
    async def delete_list(self, list_id: str, *, actor: str, at: int) -> bool: ...

    async def settings(self) -> dict[str, Any]: ...
    async def put_settings(self, value: dict[str, Any], *, actor: str, at: int) -> None: ...

    async def enqueue(
        self,
        message_id: int,
        state: str,
        rule_id: str | None,
        at: int,
        *,
        audit: Audit | None = None,
    ) -> bool:
        """Put a message in the review queue (idempotent), with ``audit`` in one commit;
        False, writing nothing, when it was already queued in ``state``."""
        ...

    async def queue(
        self, state: str, *, limit: int, before: int | None = None
    ) -> list[ReviewItem]: ...
    async def disapproved(self, *, limit: int) -> list[int]: ...
    async def close_review(
        self, message_id: int, decision: str, by: str, at: int, audit: Audit
    ) -> None: ...

    async def add_report(
        self,
        message_id: int,
        reporter: str,
        reason: str,
        remarks: str,
        at: int,
        category: str = "other",
    ) -> tuple[dict[str, Any], bool]:
        """Store a user report (once per reporter and message) and queue the message as
        reported; (report, created)."""
        ...

    async def reports_for(self, message_id: int) -> list[dict[str, Any]]: ...


class DeliveryRepository(Protocol):
    """Outgoing webhook deliveries: ``pending`` until ``delivered`` or ``failed``."""

    async def add(self, deliveries: Sequence[NewDelivery], at: float) -> None: ...
    async def due(self, now: float, *, limit: int) -> list[Delivery]: ...
    async def next_due(self) -> float | None: ...
    async def update(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int,
        next_at: float,
        last_status: int | None,
        last_error: str,
        at: float,
    ) -> None: ...
    async def pending_count(self) -> int: ...
    async def recent(
        self, *, status: str | None, event: str | None, limit: int
    ) -> list[Delivery]: ...


class MediaRepository(Protocol):
    """Media metadata rows; the encrypted files themselves live under the data dir."""

    async def add_media(self, media: MediaRecord) -> None: ...
    async def get_media(self, media_id: str) -> MediaRecord | None: ...
    async def media_of(self, uploader: str) -> list[MediaRecord]:
        """Everything ``uploader`` uploaded, oldest first."""
        ...

    async def attach_media(self, media_id: str, uploader: str, message_id: int) -> bool:
        """Record that ``message_id`` carries the media; only the uploader's, only once.
        False when it is not theirs or already attached to another message."""
        ...

    async def quarantine_media(self, media_id: str, at: int) -> bool:
        """Mark the media quarantined (a known-bad image): kept, never served. False when
        there is no such row or it is quarantined already."""
        ...

    async def release_media(self, media_id: str) -> bool:
        """Lift a quarantine (a person approved the message after all). False when there is
        no such row or it is not quarantined."""
        ...

    async def retain_media(self, media_id: str, uploader: str, holder: str) -> bool:
        """Re-home ``uploader``'s upload to ``holder`` (resealing its row), so that it outlives
        the account as evidence and no later account of the same uid finds it. False when
        there is no such row of ``uploader``'s."""
        ...

    async def delete_media(self, media_ids: Sequence[str]) -> None: ...


class SanctionRepository(Protocol):
    """Decisions (statements of reasons), appeals, restrictions, group slow mode and the
    operator's terms catalogue (issue 15). Each write stores its audit record in its commit.
    The records are in ``server.storage.sanctions``."""

    async def add_decision(self, record: DecisionRecord, audit: Audit) -> None: ...
    async def get_decision(self, decision_id: str) -> DecisionRecord | None: ...
    async def decisions_of(self, uid: str, *, limit: int) -> list[DecisionRecord]: ...
    async def add_appeal(self, appeal: AppealRecord, audit: Audit) -> bool:
        """False, storing nothing, when the decision already has an appeal."""
        ...

    async def appeal_of(self, decision_id: str) -> AppealRecord | None: ...
    async def get_appeal(self, appeal_id: str) -> AppealRecord | None: ...
    async def appeals(self, state: str, *, limit: int) -> list[AppealRecord]: ...
    async def appeals_of(self, uid: str) -> list[AppealRecord]: ...
    async def decide_appeal(
        self, appeal_id: str, state: str, reason: str, by: str, at: int, audit: Audit
    ) -> bool:
        """Close an open appeal; False if it was not open."""
        ...

    async def add_restriction(self, record: RestrictionRecord, audit: Audit) -> None: ...
    async def lift_restriction(self, restriction_id: str, at: int, audit: Audit) -> bool: ...
    async def restrictions(self) -> list[RestrictionRecord]: ...
    async def slow_modes(self) -> dict[str, int]: ...
    async def set_slow_mode(self, guid: str, seconds: int, at: int, audit: Audit) -> None: ...
    async def get_setting(self, key: str) -> Any: ...
    async def put_setting(self, key: str, value: Any, at: int, audit: Audit) -> None: ...


class InboxRepository(Protocol):
    """The inbox's reads (issue 16). The heads and read markers are kept by the database in
    the commit of each write that moves them (see the backends' inbox schemas)."""

    async def direct_heads(
        self, uid: str, *, below: InboxPosition | None, limit: int
    ) -> list[ConversationHead]:
        """``uid``'s 1:1 conversations, newest first, strictly below ``below``."""
        ...

    async def group_heads(self, uid: str) -> list[ConversationHead]:
        """``uid``'s head of every group they are a member of, in no order."""
        ...

    async def unread_counts(self, uid: str, keys: Sequence[str]) -> dict[str, int]:
        """Per conversation key: deliverable, undeleted messages from others after ``uid``'s
        read marker."""
        ...

    async def messages_by_ids(self, ids: Sequence[int]) -> list[Message]: ...


class DirectoryRepository(Protocol):
    async def search_users(
        self,
        prefix: str,
        *,
        after: str | None,
        limit: int,
        sharing_with: str | None,
        exclude: str | None,
    ) -> list[User]:
        """Live users whose uid or name starts with ``prefix`` (ASCII case-insensitive;
        ``prefix`` already lower-cased), by uid above ``after``; with ``sharing_with`` only
        users who share a group with that uid; never ``exclude``."""
        ...


class ReactionRepository(Protocol):
    """Reactions on messages and thread replies (``parentId``), issue 16 item 8. A reaction
    row goes when its message or its user is erased (triggers of the backends' migration)."""

    async def add_reaction(self, message_id: int, uid: str, emoji: str, at: int) -> bool:
        """Store ``uid``'s ``emoji`` on the message; False if it was there already."""
        ...

    async def remove_reaction(self, message_id: int, uid: str, emoji: str) -> bool:
        """Remove it; False if there was none."""
        ...

    async def reactions_of(self, message_ids: Sequence[int]) -> list[tuple[int, str, str]]:
        """``(message_id, uid, emoji)`` of every reaction on the messages, oldest first."""
        ...

    async def reactions_by(self, uid: str) -> list[dict[str, Any]]:
        """Every reaction ``uid`` made (for an export): ``{messageId, emoji, at}``."""
        ...

    async def reply_counts(self, parent_ids: Sequence[int]) -> list[tuple[int, str, int]]:
        """``(parent_id, sender, n)``: deliverable, undeleted replies per parent and sender."""
        ...

    async def thread(
        self,
        conversation_key: str,
        parent_id: int,
        *,
        before: int | None,
        limit: int,
        viewer: str | None,
    ) -> list[Message]:
        """Newest ``limit`` replies to ``parent_id`` below ``before`` that ``viewer`` may see
        (as in ``history``), oldest first."""
        ...


class PushRepository(Protocol):
    """Users' offline-push endpoints, one per device (issue 16 item 7); erased with their
    user (a trigger of the backends' migration)."""

    async def put_endpoint(self, endpoint: PushEndpoint) -> PushEndpoint:
        """Store it; a device that registers again (same uid and ``device_id``) replaces its
        endpoint and keeps its id. Returns the stored endpoint."""
        ...

    async def endpoints_of(self, uids: Sequence[str]) -> list[PushEndpoint]: ...
    async def delete_endpoint(self, uid: str, endpoint_id: str) -> bool: ...


class RetentionRepository(Protocol):
    """Retention (issue 15 item 7): periods per scope, holds, and the deletion of what is past
    them. The shared SQL and its records are in ``server.storage.retention``."""

    async def periods(self) -> dict[str, int]: ...
    async def set_period(self, scope: str, seconds: int | None, audit: Audit, at: int) -> None: ...
    async def holds(self) -> list[HoldRecord]: ...
    async def add_hold(self, hold: HoldRecord, audit: Audit) -> None: ...
    async def remove_hold(self, hold_id: str, audit: Audit, at: int) -> bool: ...
    async def expired(self, now: int, limit: int) -> list[int]:
        """Ids of up to ``limit`` messages past their period (oldest first), held ones not."""
        ...

    async def delete_messages(self, ids: Sequence[int], at: int) -> Deleted: ...
    async def delete_deliveries(self, before: int, at: int) -> int: ...
    async def orphan_uploads(self, before: int, limit: int) -> list[str]:
        """Uploads created before ``before`` that no message carries."""
        ...

    async def delete_uploads(self, ids: Sequence[str], at: int) -> list[str]: ...
    def forget(self) -> None:
        """Drop in-memory copies of messages the store keeps (the recent index)."""
        ...

    async def compact(self) -> None:
        """Make deleted content leave the files as far as the backend allows."""
        ...


class OperatorRepository(Protocol):
    """Operator accounts and their dashboard sessions (issue 17); each write stores its audit
    record in its commit. The records are in ``server.storage.operators``."""

    async def add_operator(self, record: OperatorRecord, audit: Audit) -> bool:
        """False, storing nothing, when the name is taken."""
        ...

    async def get_operator(self, name: str) -> OperatorRecord | None: ...
    async def operators(self) -> list[OperatorRecord]: ...
    async def update_operator(
        self,
        name: str,
        changes: dict[str, Any],
        audit: Audit,
        at: int,
        *,
        end_sessions: bool = False,
        session: SessionRecord | None = None,
        expect: dict[str, Any] | None = None,
    ) -> bool: ...
    async def record_failure(
        self, name: str, at: int, lock_after: int, audit: Audit
    ) -> OperatorRecord | None: ...
    async def session(self, session_id: str) -> tuple[SessionRecord, OperatorRecord] | None: ...
    async def end_session(self, session_id: str, audit: Audit, at: int) -> None: ...
