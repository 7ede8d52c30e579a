"""``OperatorService`` over a real SQLite store on a fake clock: failed sign-ins pause for
doubling times and then lock, sessions expire, and every step is in the audit chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest

from server.audit_chain import verify
from server.crypto import KeyRing
from server.demo import DEMO_PASSWORD, seed_demo_operators
from server.errors import AuthInvalid, BadRequest, Forbidden, RateLimited
from server.operator_auth import LoginPolicy
from server.services.operators import OperatorService
from server.storage.sqlite import SqliteStorage
from server.storage.sqlite.audit_rows import read_audit
from tests.server.test_services import FakeClock

PASSWORD = "a long enough password"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    s = SqliteStorage(tmp_path / "parley.db", KeyRing.generate())
    await s.open()
    yield s
    await s.close()


async def test_failed_sign_ins_pause_then_lock(store: SqliteStorage, tmp_path: Path) -> None:
    clock = FakeClock()
    ops = OperatorService(
        store.operators, clock=clock, csrf_secret="s", policy=LoginPolicy(lock_after=6)
    )
    await ops.add("cli", "mo", "moderator", PASSWORD)
    for _ in range(3):
        with pytest.raises(AuthInvalid):
            await ops.login("mo", "wrong", None, client="c")
    with pytest.raises(AuthInvalid):  # the 4th failure: now a 2 s pause
        await ops.login("mo", "wrong", None, client="c")
    with pytest.raises(RateLimited) as paused:
        await ops.login("mo", PASSWORD, None, client="c")
    assert paused.value.retry_after_ms == 2001
    clock.advance(2)
    with pytest.raises(AuthInvalid):  # the 5th: a 4 s pause
        await ops.login("mo", "wrong", None, client="c")
    clock.advance(3)
    with pytest.raises(RateLimited):
        await ops.login("mo", PASSWORD, None, client="c")
    clock.advance(1)
    with pytest.raises(AuthInvalid):  # the 6th locks
        await ops.login("mo", "wrong", None, client="c")
    clock.advance(3600)
    with pytest.raises(Forbidden):
        await ops.login("mo", PASSWORD, None, client="c")
    await ops.update("operator:root", "mo", {"locked": False})
    result = await ops.login("mo", PASSWORD, None, client="c")
    assert result.operator.failures == 0
    session = await ops.authenticate(result.token)
    assert session.principal.label == "operator:mo"
    clock.advance(12 * 3600)
    with pytest.raises(AuthInvalid):
        await ops.authenticate(result.token)

    await store.close()
    rows = read_audit(tmp_path / "parley.db")
    actions = [r["action"] for r in rows]
    assert actions.count("operator.login_failed") == 6
    assert actions.count("operator.locked") == 1
    assert actions.count("operator.login_locked") == 1
    assert actions[-1] == "operator.login"
    assert verify(rows).ok
    await store.open()  # the fixture closes it again


async def test_changes_to_a_missing_operator_write_nothing(store: SqliteStorage) -> None:
    ops = OperatorService(store.operators, clock=FakeClock(), csrf_secret="s")
    before = len(await store.audit.audit_since(0, 1000))
    with pytest.raises(Exception, match="no operator"):
        await ops.set_disabled("cli", "ghost", True)
    assert len(await store.audit.audit_since(0, 1000)) == before


async def test_a_totp_code_signs_in_once_even_when_two_sign_ins_race(
    store: SqliteStorage,
) -> None:
    clock = FakeClock()
    ops = OperatorService(store.operators, clock=clock, csrf_secret="s")
    await ops.add("cli", "racer", "moderator", PASSWORD)
    enrolment, codes = await ops.reset_totp("cli", "racer")
    code = pyotp.TOTP(enrolment.secret).at(clock.now())
    results = await asyncio.gather(
        ops.login("racer", PASSWORD, code, client="a"),
        ops.login("racer", PASSWORD, code, client="b"),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert sum(isinstance(r, AuthInvalid) for r in results) == 1
    recovered = await asyncio.gather(
        ops.login("racer", PASSWORD, codes[0], client="a"),
        ops.login("racer", PASSWORD, codes[0], client="b"),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in recovered) == 1
    assert len((await ops.get("racer")).recovery) == 9


async def test_the_demo_password_signs_in_only_in_demo_mode(store: SqliteStorage) -> None:
    clock = FakeClock()
    demo = OperatorService(store.operators, clock=clock, csrf_secret="s", demo=True)
    await seed_demo_operators(demo)
    assert (await demo.login("moderator", DEMO_PASSWORD, None, client="c")).operator.role == (
        "moderator"
    )
    # The same data dir served without --demo: the demo accounts open nothing.
    real = OperatorService(store.operators, clock=clock, csrf_secret="s")
    with pytest.raises(AuthInvalid, match="demo"):
        await real.login("moderator", DEMO_PASSWORD, None, client="c")
    with pytest.raises(BadRequest):
        await real.set_password("cli", "moderator", DEMO_PASSWORD)
    await real.set_password("cli", "moderator", PASSWORD)
    assert (await real.login("moderator", PASSWORD, None, client="c")).operator.name == "moderator"
