"""Operator accounts (issue 17): the staff who sign in to the dashboard with a password, a TOTP
code or a recovery code, and their sessions.

Every change and every sign-in, failed sign-in and lockout writes an audit record in the
same commit (``storage/operators.py``). The credentials' pure parts (hashing, TOTP, tokens,
the failed-login policy) are in ``server/operator_auth.py``; argon2 runs in a worker thread,
as each hash costs tens of milliseconds of CPU.

Past 400 lines and not split: account changes and sign-in are one state machine over the same
record (a new password unlocks and ends sessions, a TOTP enrolment changes what sign-in asks
for, a lock is both a sign-in outcome and an admin's change), each write audited the same way;
split in two, each half would reach into the other's fields.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, replace
from typing import Any

from server import operator_auth as oa
from server.auth import Principal, Role
from server.clock import Clock
from server.errors import (
    AuthInvalid,
    AuthRequired,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
)
from server.operator_auth import LoginPolicy, StaffRole
from server.protocol import is_ident
from server.ratelimit import RateLimiter
from server.storage.operators import OperatorRecord, SessionRecord
from server.storage.ports import OperatorRepository
from server.storage.types import Audit

#: How the audit log names an operator (a uid never holds ``:``, so the two never collide).
ACTOR_PREFIX = "operator:"
#: The actor of failed sign-ins and attempts on a locked account (``client`` says from where).
ANONYMOUS = "anonymous"
_ROLE_FOR_CHAT = {
    StaffRole.VIEWER: Role.USER,
    StaffRole.MODERATOR: Role.MODERATOR,
    StaffRole.ADMIN: Role.ADMIN,
}


def operator_principal(record: OperatorRecord) -> Principal:
    """The Principal of a signed-in operator: no uid, never the API key, named in the audit
    log as ``operator:<name>``."""
    staff = StaffRole.parse(record.role)
    return Principal(
        uid=None,
        role=_ROLE_FOR_CHAT[staff],
        label=ACTOR_PREFIX + record.name,
        staff=staff,
        groups=frozenset(record.groups) if record.groups else None,
    )


@dataclass(frozen=True)
class LoginResult:
    token: str  # for the session cookie; never in a response body
    csrf: str
    operator: OperatorRecord
    expires_at: int


@dataclass(frozen=True)
class StaffSession:
    """A valid dashboard session: who, and the CSRF token its unsafe requests must carry."""

    principal: Principal
    operator: OperatorRecord
    session_id: str
    csrf: str
    expires_at: int


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str


def _bad(exc: ValueError, field: str) -> BadRequest:
    return BadRequest(str(exc), {"field": field})


def check_groups(value: object, role: StaffRole) -> tuple[str, ...]:
    """A group moderator's groups: a list of group ids (at most 100), for viewers and
    moderators only (an admin's work is not limited to groups). Empty: not limited."""
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > 100
        or not all(isinstance(g, str) and is_ident(g) for g in value)
    ):
        raise BadRequest("field 'groups' must be a list of group ids", {"field": "groups"})
    if value and role is StaffRole.ADMIN:
        raise BadRequest("admins are not limited to groups", {"field": "groups"})
    return tuple(dict.fromkeys(value))


class OperatorService:
    """Adds, changes and signs in operators; checks session cookies."""

    def __init__(
        self,
        store: OperatorRepository,
        *,
        clock: Clock,
        csrf_secret: str,
        policy: LoginPolicy | None = None,
        session_ttl: int = 12 * 3600,
        per_client: RateLimiter | None = None,
        demo: bool = False,
    ) -> None:
        self._store = store
        self._clock = clock
        self._csrf_secret = csrf_secret
        self._policy = policy or LoginPolicy()
        self._ttl = session_ttl
        self._demo = demo  # --demo: the demo password signs in (never otherwise)
        # Sign-in attempts per client address, whichever names they try.
        self._per_client = per_client or RateLimiter(1.0, 30, clock=clock.monotonic)

    # ----------------------------------------------------------------- accounts

    async def operators(self) -> list[OperatorRecord]:
        return await self._store.operators()

    async def get(self, name: str) -> OperatorRecord:
        found = await self._store.get_operator(name)
        if found is None:
            raise NotFound(f"no operator {name!r}", {"name": name})
        return found

    async def add(
        self, actor: str, name: object, role: object, password: object, groups: object = None
    ) -> OperatorRecord:
        """A new operator (``groups``: a group moderator's groups); BadRequest naming the
        field, Conflict if the name is taken."""
        try:
            name = oa.check_name(name)
        except ValueError as exc:
            raise _bad(exc, "name") from None
        try:
            staff = StaffRole.parse(role)
        except ValueError as exc:
            raise _bad(exc, "role") from None
        password = self._new_password(actor, password)
        scope = check_groups(groups, staff)
        now = self._clock.now()
        record = OperatorRecord(
            name=name,
            role=staff.label,
            password_hash=await asyncio.to_thread(oa.hash_password, password),
            groups=scope,
            created_at=now,
            updated_at=now,
        )
        details: dict[str, Any] = {"role": staff.label}
        if scope:
            details["groups"] = list(scope)
        audit = Audit(actor, "operator.add", name, details)
        if not await self._store.add_operator(record, audit):
            raise Conflict(f"operator {name!r} already exists", {"name": name})
        return record

    async def set_password(self, actor: str, name: str, password: object) -> None:
        """A new password; it also unlocks the account and ends its sessions."""
        password = self._new_password(actor, password)
        digest = await asyncio.to_thread(oa.hash_password, password)
        await self._update(
            actor,
            name,
            "operator.passwd",
            {"password_hash": digest, "failures": 0, "locked": False},
            {},
            end_sessions=True,
        )

    @staticmethod
    def _new_password(actor: str, password: object) -> str:
        try:
            checked = oa.check_password(password)
        except ValueError as exc:
            raise _bad(exc, "password") from None
        if actor != "demo" and checked == oa.DEMO_PASSWORD:
            raise BadRequest("that is the demo password: choose another", {"field": "password"})
        return checked

    async def update(self, actor: str, name: str, body: dict[str, Any]) -> OperatorRecord:
        """Change ``role``, ``groups``, ``disabled`` and/or ``locked`` (only to false:
        unlock) from an admin's request body."""
        changes: dict[str, Any] = {}
        details: dict[str, Any] = {}
        for key in body:
            if key not in ("role", "groups", "disabled", "locked"):
                raise BadRequest(f"unknown field {key!r}", {"field": key})
        current = await self.get(name)
        role = StaffRole.parse(current.role)
        if "role" in body:
            try:
                role = StaffRole.parse(body["role"])
            except ValueError as exc:
                raise _bad(exc, "role") from None
            changes["role"] = details["role"] = role.label
        groups = current.groups
        if "groups" in body:
            groups = check_groups(body["groups"], role)
            changes["scope_groups"] = groups
            details["groups"] = list(groups)
        elif "role" in body:
            check_groups(list(groups), role)  # an admin cannot keep a group limit
        if "disabled" in body:
            if not isinstance(body["disabled"], bool):
                raise BadRequest("field 'disabled' must be a boolean", {"field": "disabled"})
            changes["disabled"] = details["disabled"] = body["disabled"]
        if "locked" in body:
            if body["locked"] is not False:
                raise BadRequest("field 'locked' can only be set to false", {"field": "locked"})
            changes.update(locked=False, failures=0)
            details["unlocked"] = True
        if not changes:
            raise BadRequest("nothing to change: send role, disabled or locked")
        end = bool(changes.get("disabled")) or "role" in changes or "scope_groups" in changes
        await self._update(actor, name, "operator.update", changes, details, end_sessions=end)
        return await self.get(name)

    async def set_disabled(self, actor: str, name: str, disabled: bool) -> None:
        await self.update(actor, name, {"disabled": disabled})

    async def reset_totp(self, actor: str, name: str) -> tuple[Enrolment, list[str]]:
        """Enrol a new TOTP secret and recovery codes at once (the command line's way; the
        dashboard's is ``begin_totp`` then ``confirm_totp``)."""
        secret = oa.new_totp_secret()
        codes = oa.new_recovery_codes()
        await self._update(
            actor,
            name,
            "operator.totp",
            {
                "totp_secret": secret,
                "totp_pending": "",
                "totp_last_step": 0,
                "recovery": tuple(oa.hash_recovery(c) for c in codes),
            },
            {"enrolled": True},
            end_sessions=True,
        )
        return Enrolment(secret, oa.totp_uri(secret, name)), codes

    async def begin_totp(self, who: StaffSession) -> Enrolment:
        """A new secret to scan; it takes effect once ``confirm_totp`` sees a code from it."""
        secret = oa.new_totp_secret()
        await self._update(
            self.actor(who), who.operator.name, "operator.totp_begin", {"totp_pending": secret}, {}
        )
        return Enrolment(secret, oa.totp_uri(secret, who.operator.name))

    async def confirm_totp(self, who: StaffSession, code: object) -> list[str]:
        """Turn the pending secret on when ``code`` is one of its codes; the new recovery
        codes (shown once)."""
        current = await self.get(who.operator.name)
        if not current.totp_pending:
            raise Conflict("no TOTP enrolment in progress: start one first")
        step = oa.totp_step(
            current.totp_pending, code if isinstance(code, str) else "", self._clock.now(), 0
        )
        if step is None:
            raise BadRequest("the code does not match the new secret", {"field": "code"})
        codes = oa.new_recovery_codes()
        await self._update(
            self.actor(who),
            current.name,
            "operator.totp",
            {
                "totp_secret": current.totp_pending,
                "totp_pending": "",
                "totp_last_step": step,
                "recovery": tuple(oa.hash_recovery(c) for c in codes),
            },
            {"enrolled": True},
        )
        return codes

    async def _update(
        self,
        actor: str,
        name: str,
        action: str,
        changes: dict[str, Any],
        details: dict[str, Any],
        *,
        end_sessions: bool = False,
    ) -> None:
        changes = {**changes, "updated_at": self._clock.now()}
        audit = Audit(actor, action, name, details)
        found = await self._store.update_operator(
            name, changes, audit, self._clock.now(), end_sessions=end_sessions
        )
        if not found:
            raise NotFound(f"no operator {name!r}", {"name": name})

    @staticmethod
    def actor(who: StaffSession) -> str:
        return ACTOR_PREFIX + who.operator.name

    # ----------------------------------------------------------------- sign-in

    async def login(
        self, name: object, password: object, code: object, *, client: str
    ) -> LoginResult:
        """Check the credentials and open a session.

        Errors: AuthInvalid for a wrong name, password or code (one message for all);
        AuthRequired (``details.totp``) when the password is right and the account needs a
        code; RateLimited while a failed-login pause lasts; Forbidden for a locked account.
        """
        self._per_client.check("login:" + client)
        if (
            not isinstance(name, str)
            or not isinstance(password, str)
            or len(password) > oa.MAX_PASSWORD
        ):
            raise BadRequest("send name and password as strings")
        now = self._clock.now()
        record = await self._store.get_operator(name) if oa.NAME_RE.fullmatch(name) else None
        details: dict[str, Any] = {"client": client}
        if record is not None and record.locked:
            await self._store.update_operator(
                name, {}, Audit(ANONYMOUS, "operator.login_locked", name, details), now
            )
            raise Forbidden("this account is locked; an admin can unlock it", {"locked": True})
        if record is not None:
            wait = self._policy.wait(record.failures, record.last_failure_at, now)
            if wait > 0:
                raise RateLimited(int(wait * 1000) + 1)
        good = await asyncio.to_thread(
            oa.verify_password, record.password_hash if record else None, password
        )
        if record is None or not good:
            await self._failed(name, record, now, {**details, "reason": "password"})
            raise AuthInvalid("wrong operator name or password")
        if record.disabled:
            raise AuthInvalid("this operator account is disabled")
        if not self._demo and hmac.compare_digest(password, oa.DEMO_PASSWORD):
            await self._store.update_operator(
                name,
                {},
                Audit(ANONYMOUS, "operator.login_failed", name, {**details, "reason": "demo"}),
                now,
            )
            raise AuthInvalid("the demo password works in --demo mode only: set a real one")
        changes: dict[str, Any] = {"failures": 0, "last_failure_at": 0}
        method = "password"
        if record.totp_secret:
            if not isinstance(code, str) or not code.strip():
                raise AuthRequired("enter the code from your authenticator app", {"totp": True})
            step = oa.totp_step(record.totp_secret, code, now, record.totp_last_step)
            if step is not None:
                changes["totp_last_step"] = step
                method = "totp"
            else:
                left = oa.use_recovery(record.recovery, code)
                if left is None:
                    await self._failed(name, record, now, {**details, "reason": "code"})
                    raise AuthInvalid("wrong code")
                changes["recovery"] = left
                method = "recovery"
                details["recoveryCodesLeft"] = len(left)
        if oa.needs_rehash(record.password_hash):
            changes["password_hash"] = await asyncio.to_thread(oa.hash_password, password)
        token = oa.new_session_token()
        expires = now + self._ttl
        details["method"] = method
        opened = await self._store.update_operator(
            name,
            changes,
            Audit(ACTOR_PREFIX + name, "operator.login", name, details),
            now,
            session=SessionRecord(oa.session_id(token), name, now, expires),
            # The code is spent once: a second sign-in racing with the same one fails.
            expect={"totp_last_step": record.totp_last_step, "recovery": record.recovery}
            if method != "password"
            else None,
        )
        if not opened:
            raise AuthInvalid("wrong code")
        updated = replace(record, failures=0, recovery=changes.get("recovery", record.recovery))
        return LoginResult(token, oa.csrf_token(self._csrf_secret, token), updated, expires)

    async def login_external(
        self, name: str, *, method: str, details: dict[str, Any]
    ) -> LoginResult:
        """Open a session for ``name`` vouched for by an identity provider (``method``:
        ``oidc``): no password or code here, the provider checked them. The operator must
        exist and be neither disabled nor locked (Forbidden otherwise, audited)."""
        now = self._clock.now()
        record = await self._store.get_operator(name) if oa.NAME_RE.fullmatch(name) else None
        if record is None or record.disabled or record.locked:
            why = "no such operator" if record is None else "disabled or locked"
            await self._store.update_operator(
                name,
                {},
                Audit(ANONYMOUS, "operator.login_failed", name, {**details, "reason": why}),
                now,
            )
            raise Forbidden(f"the identity provider's user {name!r} is not an active operator")
        token = oa.new_session_token()
        expires = now + self._ttl
        await self._store.update_operator(
            name,
            {"failures": 0, "last_failure_at": 0},
            Audit(ACTOR_PREFIX + name, "operator.login", name, {**details, "method": method}),
            now,
            session=SessionRecord(oa.session_id(token), name, now, expires),
        )
        return LoginResult(token, oa.csrf_token(self._csrf_secret, token), record, expires)

    async def _failed(
        self, name: str, record: OperatorRecord | None, now: int, details: dict[str, Any]
    ) -> None:
        # Whoever tried is not known to be the operator: the client address is in the details.
        actor = ANONYMOUS
        if record is None:
            # An unknown name: audited, nothing to count against.
            await self._store.update_operator(
                name,
                {},
                Audit(actor, "operator.login_failed", name, {**details, "known": False}),
                now,
            )
            return
        after = await self._store.record_failure(
            name,
            now,
            self._policy.lock_after,
            Audit(
                actor, "operator.login_failed", name, {**details, "failures": record.failures + 1}
            ),
        )
        if after is not None and after.locked and not record.locked:
            await self._store.update_operator(
                name,
                {},
                Audit("system", "operator.locked", name, {"failures": after.failures}),
                now,
            )

    async def authenticate(self, token: str) -> StaffSession:
        """The session of a cookie's token; AuthInvalid when unknown, expired, or its
        operator is disabled or locked."""
        found = await self._store.session(oa.session_id(token))
        if found is None:
            raise AuthInvalid("signed out: sign in again")
        session, record = found
        if session.expires_at <= self._clock.now():
            raise AuthInvalid("the session has expired: sign in again")
        if record.disabled or record.locked:
            raise AuthInvalid("this operator account is disabled")
        return StaffSession(
            operator_principal(record),
            record,
            session.session_id,
            oa.csrf_token(self._csrf_secret, token),
            session.expires_at,
        )

    async def still_valid(self, session_id: str) -> bool:
        """Whether a session checked earlier still counts (the live socket asks now and then:
        signed out, password changed, disabled, locked or expired since)."""
        found = await self._store.session(session_id)
        if found is None:
            return False
        session, record = found
        return session.expires_at > self._clock.now() and not (record.disabled or record.locked)

    def csrf_ok(self, token: str, presented: str | None) -> bool:
        return oa.csrf_ok(self._csrf_secret, token, presented)

    async def logout(self, who: StaffSession) -> None:
        await self._store.end_session(
            who.session_id,
            Audit(self.actor(who), "operator.logout", who.operator.name, {}),
            self._clock.now(),
        )
