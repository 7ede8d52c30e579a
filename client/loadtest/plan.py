"""Who exists and who sends what to whom in a load test: pure and seeded, so a run can be
repeated and a test can compute what the server must deliver."""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass, field

KINDS = ("direct", "group", "media")

#: On the default English profanity list, so the default rules block a text carrying it.
DEFAULT_BLOCK_WORD = "shit"

_WORDS = (
    "apple river garden window yellow orange table coffee morning evening market station"
    " bridge castle forest meadow summer winter autumn spring rocket planet silver golden"
    " pencil candle lemon violet harbor island valley canyon desert glacier thunder breeze"
    " lantern compass feather marble velvet copper ribbon saddle anchor basket bottle"
    " button cabin cloud dolphin engine falcon guitar hammer jacket kettle ladder magnet"
    " needle olive parrot quilt rabbit"
)
VOCAB = tuple(_WORDS.split())


class PlanError(ValueError):
    """Options that cannot make a load test (too few users, an empty mix, ...)."""


@dataclass(frozen=True)
class Options:
    """What to load: ``users`` users, ``groups`` groups of ``group_size`` members, and
    ``messages`` messages whose kinds follow ``mix`` (weights by kind), ``blocked_share`` of
    the text ones carrying ``block_word``."""

    users: int = 20
    groups: int = 2
    group_size: int = 5
    messages: int = 200
    mix: tuple[tuple[str, float], ...] = (("direct", 0.6), ("group", 0.3), ("media", 0.1))
    blocked_share: float = 0.1
    block_word: str = DEFAULT_BLOCK_WORD
    seed: int = 7
    prefix: str = "lt"


@dataclass(frozen=True)
class Planned:
    """One message the run will send: ``muid`` is unique in the run, ``receivers`` are the
    uids that must get it if the server lets it through; ``blocked`` says it carries the
    block word, so the server is expected to block it."""

    seq: int
    muid: str
    kind: str
    sender: str
    receiver_type: str
    receiver: str
    receivers: tuple[str, ...]
    text: str
    blocked: bool


@dataclass(frozen=True)
class Plan:
    users: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    messages: tuple[Planned, ...]
    by_sender: dict[str, tuple[Planned, ...]] = field(default_factory=dict)

    def expected(self) -> dict[str, int]:
        """Counts a faithful server produces when it blocks exactly the planned messages."""
        blocked = sum(1 for m in self.messages if m.blocked)
        deliveries = sum(len(m.receivers) for m in self.messages if not m.blocked)
        by_kind = {k: sum(1 for m in self.messages if m.kind == k) for k in KINDS}
        return {"messages": len(self.messages), "blocked": blocked, "deliveries": deliveries} | {
            f"kind_{k}": n for k, n in by_kind.items()
        }


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``"direct=60,group=30,media=10"`` -> weights by kind (any positive scale)."""
    out: list[tuple[str, float]] = []
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in KINDS:
            raise PlanError(f"mix: expected kind=weight with kind in {', '.join(KINDS)}: {part!r}")
        try:
            weight = float(value)
        except ValueError:
            raise PlanError(f"mix: {value!r} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise PlanError(f"mix: {name} must be a finite weight >= 0")
        out.append((name, weight))
    if sum(w for _, w in out) <= 0:
        raise PlanError("mix: at least one kind needs a weight above 0")
    return tuple(out)


def _check(opts: Options) -> None:
    if opts.users < 2:
        raise PlanError("at least 2 users are needed")
    if opts.groups < 0 or opts.messages < 0:
        raise PlanError("groups and messages cannot be negative")
    if opts.groups and not 2 <= opts.group_size <= opts.users:
        raise PlanError(f"group size must be 2..{opts.users} (the number of users)")
    if not 0.0 <= opts.blocked_share <= 1.0:
        raise PlanError("the blocked share is a fraction in 0..1")
    if opts.blocked_share and not opts.block_word.strip():
        raise PlanError("a blocked share needs a block word")


def build_plan(opts: Options) -> Plan:
    """Users ``<prefix>-u<i>``, groups ``<prefix>-g<j>`` over consecutive users (wrapping),
    and the messages, dealt to senders in turn. A user in no group sends 1:1 instead."""
    _check(opts)
    rnd = random.Random(opts.seed)
    users = tuple(f"{opts.prefix}-u{i}" for i in range(opts.users))
    groups: dict[str, tuple[str, ...]] = {}
    member_of: dict[str, list[str]] = {u: [] for u in users}
    for g in range(opts.groups):
        guid = f"{opts.prefix}-g{g}"
        start = g * opts.group_size
        members = tuple(users[(start + j) % opts.users] for j in range(opts.group_size))
        groups[guid] = members
        for uid in members:
            member_of[uid].append(guid)
    kinds = [k for k, w in opts.mix if w > 0]
    weights = [w for _, w in opts.mix if w > 0]
    planned: list[Planned] = []
    for seq in range(opts.messages):
        sender = users[seq % opts.users]
        kind = rnd.choices(kinds, weights)[0]
        if kind == "group" and not member_of[sender]:
            kind = "direct"
        text = " ".join(rnd.choices(VOCAB, k=8))
        blocked = kind != "media" and rnd.random() < opts.blocked_share
        if blocked:
            text = f"{text} {opts.block_word}"
        if kind == "group":
            guid = rnd.choice(member_of[sender])
            rtype, receiver = "group", guid
            receivers = tuple(u for u in groups[guid] if u != sender)
        else:
            other = rnd.randrange(opts.users - 1)
            receiver = users[other if other < seq % opts.users else other + 1]
            rtype, receivers = "user", (receiver,)
        planned.append(
            Planned(
                seq=seq,
                muid=f"{opts.prefix}-m{seq}",
                kind=kind,
                sender=sender,
                receiver_type=rtype,
                receiver=receiver,
                receivers=receivers,
                text=text,
                blocked=blocked,
            )
        )
    by_sender: dict[str, list[Planned]] = {u: [] for u in users}
    for m in planned:
        by_sender[m.sender].append(m)
    return Plan(users, groups, tuple(planned), {u: tuple(ms) for u, ms in by_sender.items()})


def png(seq: int, size: int = 8) -> bytes:
    """A small valid PNG of one colour that depends on ``seq`` (an image to send)."""
    r, g, b = (seq * 97) % 256, (seq * 57) % 256, (seq * 31) % 256
    row = b"\x00" + bytes((r, g, b)) * size
    raw = row * size

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
