"""Demo users and a demo group for a first run (``--demo``)."""

from __future__ import annotations

import contextlib
import logging

from server.auth import API_KEY_PRINCIPAL
from server.errors import Conflict
from server.models import Scope
from server.operator_auth import DEMO_PASSWORD
from server.services.groups import GroupService
from server.services.operators import OperatorService
from server.services.users import UserService

log = logging.getLogger(__name__)

DEMO_USERS = (
    ("alice", "Alice", "user"),
    ("bob", "Bob", "user"),
    ("carol", "Carol", "user"),
    ("mod", "Moderator Mo", "moderator"),
    ("admin", "Admin Ada", "admin"),
)


async def seed_demo(users: UserService, groups: GroupService) -> None:
    """Create the demo users and the public group ``lobby`` unless they exist."""
    for uid, name, role in DEMO_USERS:
        if not await users.exists(uid):
            await users.create_user(
                API_KEY_PRINCIPAL, uid=uid, name=name, role=role, tags=("demo",), metadata={}
            )
    if await groups.group("lobby") is None:
        await groups.create_group(
            API_KEY_PRINCIPAL,
            guid="lobby",
            name="Lobby",
            type_="public",
            tags=("demo",),
            owner="alice",
        )
        for uid in ("bob", "carol", "mod"):
            scope = Scope.MODERATOR if uid == "mod" else Scope.PARTICIPANT
            await groups.add_member(API_KEY_PRINCIPAL, "lobby", uid, scope)
    log.info("demo users: %s; group: lobby", ", ".join(u for u, _, _ in DEMO_USERS))


#: The dashboard's development sign-ins (issue 17): offered on the sign-in page in ``--demo``
#: mode only, instead of ever putting the API key in a browser.
DEMO_OPERATORS = (("admin", "admin"), ("moderator", "moderator"), ("viewer", "viewer"))


__all__ = ["DEMO_OPERATORS", "DEMO_PASSWORD", "seed_demo", "seed_demo_operators"]


async def seed_demo_operators(operators: OperatorService) -> None:
    """Create the demo operators (one per staff role) unless they exist."""
    for name, role in DEMO_OPERATORS:
        # One kept from an earlier demo start keeps whatever password it has now.
        with contextlib.suppress(Conflict):
            await operators.add("demo", name, role, DEMO_PASSWORD)
