"""The pure parts of operator sign-in (``server/operator_auth.py``): roles, names, passwords,
TOTP steps with drift and replay, recovery codes, CSRF tokens, the failed-login policy."""

from __future__ import annotations

import pyotp
import pytest

from server import operator_auth as oa
from server.auth import API_KEY_PRINCIPAL, Principal, Role, StaffRole, staff_level

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # 160 bits: pyotp 2.10+ refuses under 112
T = 1_764_000_000  # a multiple of 30 s: step T // 30


@pytest.mark.parametrize(
    ("principal", "level"),
    [
        (API_KEY_PRINCIPAL, StaffRole.ADMIN),
        (Principal(uid="a", role=Role.ADMIN), StaffRole.ADMIN),
        (Principal(uid="m", role=Role.MODERATOR), StaffRole.MODERATOR),
        (Principal(uid="u", role=Role.USER), None),
        (Principal(uid=None, role=Role.USER, staff=StaffRole.VIEWER), StaffRole.VIEWER),
        (Principal(uid=None, role=Role.ADMIN, staff=StaffRole.ADMIN), StaffRole.ADMIN),
    ],
)
def test_staff_level(principal: Principal, level: StaffRole | None) -> None:
    assert staff_level(principal) is level


@pytest.mark.parametrize(
    ("value", "ok"),
    [("viewer", True), ("MODERATOR", True), ("admin", True), ("owner", False), (3, False)],
)
def test_role_parse(value: object, ok: bool) -> None:
    if ok:
        assert StaffRole.parse(value).label == str(value).lower()
    else:
        with pytest.raises(ValueError):
            StaffRole.parse(value)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("alice", True),
        ("a.b-c_d", True),
        ("0day", True),
        ("Alice", False),
        ("", False),
        ("-x", False),
        ("a b", False),
        ("a" * 65, False),
        ("op:x", False),
        (None, False),
    ],
)
def test_names(name: object, ok: bool) -> None:
    if ok:
        assert oa.check_name(name) == name
    else:
        with pytest.raises(ValueError):
            oa.check_name(name)


@pytest.mark.parametrize(
    ("password", "ok"), [("x" * 9, False), ("x" * 10, True), (1234567890, False)]
)
def test_password_length(password: object, ok: bool) -> None:
    if ok:
        assert oa.check_password(password) == password
    else:
        with pytest.raises(ValueError):
            oa.check_password(password)


def test_password_hashes_are_argon2id_salted_and_verify() -> None:
    one, two = oa.hash_password("hunter2hunter2"), oa.hash_password("hunter2hunter2")
    assert one.startswith("$argon2id$") and one != two
    assert oa.verify_password(one, "hunter2hunter2")
    assert not oa.verify_password(one, "hunter2hunter3")
    assert not oa.verify_password(None, "hunter2hunter2")  # unknown name
    assert not oa.verify_password("not a hash", "hunter2hunter2")


@pytest.mark.parametrize(
    ("at_code", "now", "last", "step"),
    [
        (T, T, 0, T // 30),  # this step
        (T - 30, T, 0, T // 30 - 1),  # one step late
        (T + 30, T, 0, T // 30 + 1),  # one step early
        (T - 60, T, 0, None),  # two steps late
        (T + 60, T, 0, None),
        (T, T, T // 30, None),  # replay: this step was used
        (T + 30, T, T // 30, T // 30 + 1),  # a later step still works
    ],
)
def test_totp_steps(at_code: int, now: int, last: int, step: int | None) -> None:
    code = pyotp.TOTP(SECRET).at(at_code)
    assert oa.totp_step(SECRET, code, now, last) == step


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_totp_malformed_codes(code: str) -> None:
    assert oa.totp_step(SECRET, code, T, 0) is None


def test_totp_code_with_spaces() -> None:
    code = pyotp.TOTP(SECRET).at(T)
    assert oa.totp_step(SECRET, f" {code[:3]} {code[3:]} ", T, 0) == T // 30


def test_recovery_codes_work_once() -> None:
    codes = oa.new_recovery_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    hashes = tuple(oa.hash_recovery(c) for c in codes)
    left = oa.use_recovery(hashes, codes[3].upper())
    assert left is not None and len(left) == 9 and oa.hash_recovery(codes[3]) not in left
    assert oa.use_recovery(left, codes[3]) is None
    assert oa.use_recovery(hashes, "wrong-code") is None


def test_csrf_tokens_are_bound_to_the_session_and_the_secret() -> None:
    token = oa.new_session_token()
    csrf = oa.csrf_token("secret", token)
    assert oa.csrf_ok("secret", token, csrf)
    assert not oa.csrf_ok("secret", oa.new_session_token(), csrf)
    assert not oa.csrf_ok("other", token, csrf)
    assert not oa.csrf_ok("secret", token, None)
    assert oa.session_id(token) != token and len(oa.session_id(token)) == 64


@pytest.mark.parametrize(
    ("failures", "since_last", "wait"),
    [
        (0, 0, 0.0),
        (3, 0, 0.0),  # three free failures
        (4, 0, 2.0),
        (4, 1, 1.0),
        (4, 2, 0.0),
        (5, 0, 4.0),
        (8, 0, 32.0),
        (30, 0, 900.0),  # capped
    ],
)
def test_login_policy_pauses_double(failures: int, since_last: int, wait: float) -> None:
    assert oa.LoginPolicy().wait(failures, T, T + since_last) == wait


def test_login_policy_without_pauses() -> None:
    assert oa.LoginPolicy(delay=0).wait(9, T, T) == 0.0
