"""Operator accounts against the real server (issue 17): sign-in with argon2 passwords, TOTP and
recovery codes, the hardened session cookie, CSRF, failed logins slowing down then locking,
the staff roles at each boundary, the ``parley operators`` command, and the audit log naming
the person (its hash chain still verifying).

The session cookie is Secure, so an HTTP client keeps it for ``https`` only; these tests hold
it themselves (``Staff``) and send it back as a browser on a trusted origin would.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyotp
import pytest

from tests.conftest import ROOT, ServerProcess, World, unique
from tests.e2e.test_moderation_flow import rule, word_rule

PASSWORD = "correct horse battery"


class Staff:
    """One operator's browser: the session cookie and the CSRF token it was given."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.url + "/api/v1", timeout=15)
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.set_cookie = ""

    async def login(
        self, name: str, password: str = PASSWORD, code: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"name": name, "password": password}
        if code is not None:
            body["code"] = code
        r = await self.http.post("/operators/login", json=body)
        if r.status_code == 200:
            self.set_cookie = r.headers["set-cookie"]
            self.cookie = self.set_cookie.split(";")[0].split("=", 1)[1]
            self.csrf = r.json()["csrfToken"]
        return r

    async def call(self, method: str, path: str, *, csrf: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if self.cookie is not None:
            headers["cookie"] = f"__Host-parley_staff={self.cookie}"
        if csrf and self.csrf is not None and method not in ("GET", "HEAD"):
            headers["x-csrf-token"] = self.csrf
        return await self.http.request(method, path, headers=headers, **kw)

    async def close(self) -> None:
        await self.http.aclose()


def api_key(server: ServerProcess) -> dict[str, str]:
    return {"x-api-key": server.api_key}


async def add_operator(server: ServerProcess, role: str, name: str | None = None) -> str:
    name = name or f"{role}-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.url + "/api/v1") as http:
        r = await http.post(
            "/operators",
            json={"name": name, "role": role, "password": PASSWORD},
            headers=api_key(server),
        )
        assert r.status_code == 201, r.text
    return name


@pytest.fixture
async def staff(server: ServerProcess) -> AsyncIterator[list[Staff]]:
    made: list[Staff] = []
    yield made
    for s in made:
        await s.close()


async def signed_in(server: ServerProcess, made: list[Staff], role: str) -> tuple[Staff, str]:
    name = await add_operator(server, role)
    s = Staff(server)
    made.append(s)
    r = await s.login(name)
    assert r.status_code == 200, r.text
    return s, name


async def held_in_queue(world: World, message_id: int) -> None:
    """Wait until the pipeline has judged the message and it is in the review queue."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        queue = await world.rest.request("GET", "/moderation/queue", params={"limit": 500})
        if any(i["message"]["id"] == message_id for i in queue["items"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} never reached the review queue")


async def held_message(world: World) -> int:
    """A message the review rule holds, from a fresh pair of users."""
    word = unique("holdme")
    await word_rule(world, word, ["review"])
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    sent = await a.send_text(bob, f"say {word}")
    await held_in_queue(world, int(sent["id"]))
    return int(sent["id"])


async def audit(server: ServerProcess) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.url + "/api/v1") as http:
        r = await http.get("/audit", params={"since": 0}, headers=api_key(server))
        return list(r.json()["entries"])


async def test_sign_in_sets_a_hardened_cookie_and_never_returns_the_token(
    server: ServerProcess, staff: list[Staff]
) -> None:
    s, name = await signed_in(server, staff, "viewer")
    attrs = [a.strip().lower() for a in s.set_cookie.split(";")]
    assert s.set_cookie.startswith("__Host-parley_staff=")
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= set(attrs)
    assert not any(a.startswith("domain") for a in attrs)
    me = await s.call("GET", "/operators/me")
    assert me.status_code == 200
    assert me.json()["operator"]["name"] == name and me.json()["operator"]["role"] == "viewer"
    assert me.json()["csrfToken"] == s.csrf
    assert s.cookie is not None and s.cookie not in (await s.login(name)).text
    anonymous = Staff(server)
    staff.append(anonymous)
    r = await anonymous.call("GET", "/operators/me")
    assert r.status_code == 401 and r.json()["code"] == "ERR_AUTH_REQUIRED"
    wrong = await anonymous.login(name, "not the password")
    assert wrong.status_code == 401 and wrong.json()["code"] == "ERR_AUTH_INVALID"
    unknown = await anonymous.login("nobody-" + uuid.uuid4().hex[:6], PASSWORD)
    assert unknown.status_code == 401 and unknown.json()["message"] == wrong.json()["message"]
    # Sign-out ends the session on the server, not only in the browser.
    out = await s.call("POST", "/operators/logout")
    assert out.status_code == 204 and "max-age=0" in out.headers["set-cookie"].lower()
    assert (await s.call("GET", "/operators/me")).status_code == 401


async def test_unsafe_requests_need_the_csrf_token_and_the_same_origin(
    world: World, staff: list[Staff]
) -> None:
    server = world.server
    s, _ = await signed_in(server, staff, "moderator")
    message_id = await held_message(world)
    path = f"/moderation/messages/{message_id}/approve"
    bare = await s.call("POST", path, json={}, csrf=False)
    assert bare.status_code == 403 and bare.json()["details"]["csrf"] is True
    forged = await s.call("POST", path, json={}, csrf=False, headers={"x-csrf-token": "0" * 64})
    assert forged.status_code == 403
    cross = await s.call("POST", path, json={}, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["message"]
    queue = await s.call("GET", "/moderation/queue?limit=500")  # reads need no token
    assert message_id in {i["message"]["id"] for i in queue.json()["items"]}
    done = await s.call("POST", path, json={}, headers={"origin": server.url})
    assert done.status_code == 200, done.text
    assert done.json()["message"]["moderationStatus"] == "approved"
    # Someone else's token does not fit this session.
    other, _ = await signed_in(server, staff, "moderator")
    mixed = await s.call("POST", path, json={}, csrf=False, headers={"x-csrf-token": other.csrf})
    assert mixed.status_code == 403
    # A cookie alone never stands in for a user token on the chat routes.
    r = await s.call("GET", "/me/decisions")
    assert r.status_code == 401


async def test_totp_enrolment_codes_replay_and_recovery_codes(
    server: ServerProcess, staff: list[Staff]
) -> None:
    s, name = await signed_in(server, staff, "moderator")
    begun = await s.call("POST", "/operators/me/totp", json={})
    assert begun.status_code == 200
    secret = begun.json()["secret"]
    assert begun.json()["uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(secret)
    bad = await s.call("POST", "/operators/me/totp/confirm", json={"code": "000000"})
    if totp.now() != "000000":
        assert bad.status_code == 400 and bad.json()["details"]["field"] == "code"
    confirmed = await s.call("POST", "/operators/me/totp/confirm", json={"code": totp.now()})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recoveryCodes"]
    assert len(codes) == 10 and len(set(codes)) == 10

    fresh = Staff(server)
    staff.append(fresh)
    needs = await fresh.login(name)
    assert needs.status_code == 401 and needs.json()["code"] == "ERR_AUTH_REQUIRED"
    assert needs.json()["details"]["totp"] is True
    wrong = await fresh.login(name, code="123456" if totp.now() != "123456" else "654321")
    assert wrong.status_code == 401 and wrong.json()["code"] == "ERR_AUTH_INVALID"
    # The next step's code (one step of drift is accepted): the confirmation used this one.
    ahead = totp.at(time.time() + 30)
    ok = await fresh.login(name, code=ahead)
    assert ok.status_code == 200, ok.text
    other = Staff(server)
    staff.append(other)
    replay = await other.login(name, code=ahead)
    assert replay.status_code == 401
    recovered = await fresh.login(name, code=codes[0])
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["operator"]["recoveryCodesLeft"] == 9
    again = await fresh.login(name, code=codes[0])
    assert again.status_code == 401
    actions = [
        (e["action"], e["details"].get("method"))
        for e in await audit(server)
        if e["target"] == name
    ]
    assert ("operator.login", "totp") in actions and ("operator.login", "recovery") in actions


@pytest.fixture(scope="module")
def strict_server(server_factory: type[ServerProcess]) -> ServerProcess:
    """Long pauses after failed sign-ins (30 s, doubling), and the demo operators."""
    return server_factory(  # type: ignore[call-arg]
        "--rate-limit", "0", "--demo", env={"PARLEY_OPERATOR_LOGIN_DELAY": "30"}
    )


@pytest.fixture(scope="module")
def locking_server(server_factory: type[ServerProcess]) -> ServerProcess:
    """No pauses, and a lock at the 5th failure in a row."""
    return server_factory(  # type: ignore[call-arg]
        "--rate-limit",
        "0",
        env={"PARLEY_OPERATOR_LOGIN_DELAY": "0", "PARLEY_OPERATOR_LOCK_AFTER": "5"},
    )


async def test_failed_sign_ins_slow_down(strict_server: ServerProcess) -> None:
    name = await add_operator(strict_server, "moderator")
    s = Staff(strict_server)
    try:
        for _ in range(4):  # three free failures, then the fourth starts a pause
            r = await s.login(name, "wrong password!")
            assert r.status_code == 401
        paused = await s.login(name)  # even the right password waits
        assert paused.status_code == 429 and paused.json()["code"] == "ERR_RATE_LIMITED"
        assert 0 < paused.json()["details"]["retryAfterMs"] <= 30_001
    finally:
        await s.close()
    failed = [e for e in await audit(strict_server) if e["action"] == "operator.login_failed"]
    assert sum(e["target"] == name for e in failed) == 4
    assert all(e["details"]["client"] == "127.0.0.1" for e in failed)


async def test_failed_sign_ins_lock_the_account_until_an_admin_unlocks_it(
    locking_server: ServerProcess,
) -> None:
    name = await add_operator(locking_server, "moderator")
    s = Staff(locking_server)
    try:
        for _ in range(5):
            assert (await s.login(name, "wrong password!")).status_code == 401
        locked = await s.login(name)
        assert locked.status_code == 403 and locked.json()["details"]["locked"] is True
        entries = [e for e in await audit(locking_server) if e["target"] == name]
        assert [e["action"] for e in entries if e["action"] == "operator.locked"] == [
            "operator.locked"
        ]
        assert entries[-1]["action"] == "operator.login_locked"
        async with httpx.AsyncClient(base_url=locking_server.url + "/api/v1") as http:
            r = await http.patch(
                f"/operators/{name}", json={"locked": False}, headers=api_key(locking_server)
            )
            assert r.status_code == 200 and r.json()["locked"] is False
        assert (await s.login(name)).status_code == 200
    finally:
        await s.close()


async def test_demo_mode_offers_development_sign_ins(strict_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=strict_server.url + "/api/v1") as http:
        options = (await http.get("/operators/login-options")).json()
    assert options["demo"] is True
    assert {a["role"] for a in options["demoAccounts"]} == {"viewer", "moderator", "admin"}
    account = next(a for a in options["demoAccounts"] if a["role"] == "moderator")
    s = Staff(strict_server)
    try:
        assert (await s.login(account["name"], account["password"])).status_code == 200
    finally:
        await s.close()


async def test_outside_demo_mode_no_sign_in_is_offered_and_the_page_asks_for_no_key(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        options = (await http.get("/api/v1/operators/login-options")).json()
        page = (await http.get("/dashboard")).text
        script = (await http.get("/static/dashboard.js")).text
    assert options == {"demo": False, "demoAccounts": [], "oidc": False}
    assert "api-key" not in page.lower() and "API key" not in page
    assert "X-API-Key" not in script


ROLE_CASES = [
    # (role, method, path, body, allowed)
    ("viewer", "GET", "/moderation/queue", None, True),
    ("viewer", "GET", "/audit?since=0", None, True),
    ("viewer", "GET", "/moderation/rules", None, True),
    ("viewer", "POST", "/moderation/messages/{held}/approve", {}, False),
    ("viewer", "POST", "/moderation/rules", "rule", False),
    ("moderator", "POST", "/moderation/messages/{held}/approve", {}, True),
    ("moderator", "POST", "/moderation/rules", "rule", False),
    ("moderator", "POST", "/moderation/lists", "list", False),
    ("moderator", "PUT", "/moderation/settings", {}, False),
    ("moderator", "GET", "/operators", None, False),
    ("admin", "POST", "/moderation/rules", "rule", True),
    ("admin", "POST", "/moderation/lists", "list", True),
    ("admin", "PUT", "/moderation/settings", {}, True),
    ("admin", "GET", "/operators", None, True),
]


@pytest.mark.parametrize(("role", "method", "path", "body", "allowed"), ROLE_CASES)
async def test_role_boundaries(
    world: World,
    staff: list[Staff],
    role: str,
    method: str,
    path: str,
    body: Any,
    allowed: bool,
) -> None:
    server = world.server
    s, name = await signed_in(server, staff, role)
    if "{held}" in path:
        path = path.format(held=await held_message(world))
    if body == "rule":
        list_id = unique("l")
        await world.rest.create_list(
            {"id": list_id, "name": "words", "kind": "keywords", "items": ["zzz"]}
        )
        body = {**rule(unique("rr"), list_id=list_id, actions=["flag"]), "enabled": False}
    elif body == "list":
        body = {"id": unique("l"), "name": "l", "kind": "keywords", "items": ["a"], "allow": []}
    r = await s.call(method, path, json=body) if body is not None else await s.call(method, path)
    if allowed:
        assert r.status_code in (200, 201), r.text
    else:
        assert r.status_code == 403 and r.json()["code"] == "ERR_FORBIDDEN", r.text
    if allowed and method != "GET":
        # The audit log names the person, not "api-key".
        entries = await audit(server)
        assert entries[-1]["actor"] == f"operator:{name}"


async def test_the_app_backend_api_key_keeps_full_access(world: World) -> None:
    message_id = await held_message(world)
    approved = await world.rest.approve(message_id)
    assert approved["moderationStatus"] == "approved"
    entries = (await world.rest.audit(since=0))["entries"]
    assert any(e["actor"] == "api-key" and e["target"] == str(message_id) for e in entries)


def cli(server: ServerProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    db = [a for a in server.args if a.startswith("postgresql://")]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            *args,
            "--data-dir",
            str(server.data_dir),
            *(["--database-url", db[0]] if db else []),
        ],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_operators_command_adds_changes_and_disables_accounts(
    server: ServerProcess,
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    added = cli(
        server, "operators", "add", name, "--role", "admin", "--password-stdin", stdin=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    twice = cli(server, "operators", "add", name, "--password-stdin", stdin=PASSWORD)
    assert twice.returncode == 1 and "already exists" in twice.stderr
    short = cli(server, "operators", "passwd", name, "--password-stdin", stdin="short")
    assert short.returncode == 1 and "password" in short.stderr
    s = Staff(server)
    try:
        assert (await s.login(name)).status_code == 200
        assert (await s.call("GET", "/operators")).status_code == 200
        changed = cli(server, "operators", "passwd", name, stdin="a new long password")
        assert changed.returncode == 0, changed.stderr
        assert (await s.call("GET", "/operators/me")).status_code == 401  # sessions ended
        assert (await s.login(name)).status_code == 401
        assert (await s.login(name, "a new long password")).status_code == 200
        assert cli(server, "operators", "disable", name).returncode == 0
        assert (await s.call("GET", "/operators/me")).status_code == 401
        assert (await s.login(name, "a new long password")).status_code == 401
        listed = cli(server, "operators", "list")
        assert f"{name}\tadmin\tno-totp\tdisabled" in listed.stdout
    finally:
        await s.close()
    entries = [e for e in await audit(server) if e["target"] == name]
    assert [e["action"] for e in entries if e["actor"] == "cli"] == [
        "operator.add",
        "operator.passwd",
        "operator.update",
    ]
    verified = cli(server, "audit", "verify")
    assert verified.returncode == 0 and "audit chain holds" in verified.stdout


async def test_admins_manage_operators_over_the_api(
    server: ServerProcess, staff: list[Staff]
) -> None:
    admin, admin_name = await signed_in(server, staff, "admin")
    name = f"made-{uuid.uuid4().hex[:6]}"
    r = await admin.call(
        "POST", "/operators", json={"name": name, "role": "viewer", "password": PASSWORD}
    )
    assert r.status_code == 201 and "password" not in r.text.lower().replace("passwordless", "")
    bad = await admin.call(
        "POST", "/operators", json={"name": "X Y", "role": "viewer", "password": PASSWORD}
    )
    assert bad.status_code == 400 and bad.json()["details"]["field"] == "name"
    viewer = Staff(server)
    staff.append(viewer)
    assert (await viewer.login(name)).status_code == 200
    promoted = await admin.call("PATCH", f"/operators/{name}", json={"role": "moderator"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "moderator"
    # A new role ends the old sessions: the next sign-in carries the new one.
    assert (await viewer.call("GET", "/operators/me")).status_code == 401
    assert (await viewer.login(name)).json()["operator"]["role"] == "moderator"
    entry = next(e for e in reversed(await audit(server)) if e["action"] == "operator.update")
    assert entry["actor"] == f"operator:{admin_name}" and entry["target"] == name


async def test_server_moderators_keep_the_contracts_access(world: World) -> None:
    """Operator roles are tiered; server users keep the contract's rules: a moderator (JWT)
    still edits lists, and the audit log stays for admins."""
    moderator = await world.user("chatmod", role="moderator")
    async with httpx.AsyncClient(base_url=world.server.url + "/api/v1") as http:
        auth = {"authorization": f"Bearer {await world.token(moderator)}"}
        made = await http.post(
            "/moderation/lists",
            json={"id": unique("l"), "name": "m", "kind": "keywords", "items": ["x"]},
            headers=auth,
        )
        assert made.status_code == 201, made.text
        assert made.json()["id"] in {
            e["target"] for e in await audit(world.server) if e["actor"] == moderator
        }
        assert (await http.get("/audit", headers=auth)).status_code == 403


async def test_group_moderators_see_and_act_on_their_groups_only(
    world: World, staff: list[Staff]
) -> None:
    server = world.server
    word = unique("grpword")
    await word_rule(world, word, ["review"])
    owner, other = await world.user("gown"), await world.user("goth")
    mine, theirs = unique("g-mine"), unique("g-theirs")
    for guid in (mine, theirs):
        await world.rest.request(
            "POST", "/groups", json={"guid": guid, "name": guid, "type": "public", "owner": owner}
        )
    a = await world.connect(owner)
    in_mine = int((await a.send_text(mine, f"{word} here", receiver_type="group"))["id"])
    in_theirs = int((await a.send_text(theirs, f"{word} there", receiver_type="group"))["id"])
    direct = int((await a.send_text(other, f"{word} to you"))["id"])
    for message_id in (in_mine, in_theirs, direct):
        await held_in_queue(world, message_id)

    name = f"gmod-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=server.url + "/api/v1") as http:
        bad = await http.post(
            "/operators",
            json={"name": name, "role": "admin", "password": PASSWORD, "groups": [mine]},
            headers=api_key(server),
        )
        assert bad.status_code == 400 and bad.json()["details"]["field"] == "groups"
        made = await http.post(
            "/operators",
            json={"name": name, "role": "moderator", "password": PASSWORD, "groups": [mine]},
            headers=api_key(server),
        )
        assert made.status_code == 201 and made.json()["groups"] == [mine]
    s = Staff(server)
    staff.append(s)
    assert (await s.login(name)).status_code == 200
    queue = await s.call("GET", "/moderation/queue?limit=500")
    ids = {i["message"]["id"] for i in queue.json()["items"]}
    assert in_mine in ids and in_theirs not in ids and direct not in ids
    for message_id in (in_theirs, direct):
        r = await s.call("POST", f"/moderation/messages/{message_id}/approve", json={})
        assert r.status_code == 404
        card = await s.call("GET", f"/moderation/messages/{message_id}/card")
        assert card.status_code == 404
    assert (await s.call("GET", f"/moderation/messages/{in_mine}/card")).status_code == 200
    done = await s.call("POST", f"/moderation/messages/{in_mine}/approve", json={})
    assert done.status_code == 200
    assert (await s.call("GET", "/audit")).status_code == 403
    global_mute = await s.call(
        "POST", f"/users/{other}/restrictions", json={"kind": "mute", "until": 0, "reason": "x"}
    )
    assert global_mute.status_code == 403
    group_mute = await s.call(
        "POST",
        f"/users/{other}/restrictions",
        json={"kind": "mute", "guid": mine, "until": 0, "reason": "x"},
    )
    assert group_mute.status_code == 201, group_mute.text
