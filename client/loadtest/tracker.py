"""Frames in, counters, latencies and the verification out: no I/O, so the checks themselves
are tested by feeding frames (a duplicate, a leak) and reading the verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from client.loadtest.plan import Planned

DELIVERABLE = ("unmoderated", "approved")
FINAL = ("unmoderated", "approved", "disapproved")


@dataclass
class Track:
    """One planned message as the run has seen it so far."""

    planned: Planned
    sent_at: float = 0.0
    acked_at: float = 0.0
    message_id: int | None = None
    status: str = ""
    error: str = ""
    deliveries: Counter[str] = field(default_factory=Counter)
    done: bool = False

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def complete(self) -> bool:
        """Nothing more is expected for it: refused, blocked, or delivered to everyone."""
        if self.error:
            return True
        if not self.acked_at or not self.final:
            return False
        if self.status == "disapproved":
            return True
        return all(self.deliveries[u] for u in self.planned.receivers)


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    """``n``, ``p50``, ``p95``, ``p99`` and ``max`` in milliseconds (nearest rank)."""
    s = sorted(values)
    if not s:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}

    def at(q: float) -> float:
        rank = max(1, -(-len(s) * q // 1))  # ceil(n * q), at least 1
        return round(s[int(rank) - 1] * 1000, 2)

    return {"n": len(s), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)}


class Tracker:
    """Matches the frames each user's connection receives to the planned messages.

    Feed it :meth:`sending` before a frame goes out and :meth:`on_frame` for every frame
    that arrives (with the uid of the connection and the arrival time); :meth:`summary`
    gives the counters, the latencies and the verification.
    """

    def __init__(
        self, messages: Iterable[Planned], on_complete: Callable[[int], None] | None = None
    ) -> None:
        self.on_complete = on_complete  # called with the count of complete messages
        self.tracks: dict[str, Track] = {m.muid: Track(m) for m in messages}
        self.ack_s: list[float] = []
        self.delivery_s: list[float] = []
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.completed = 0
        self.first_sent = 0.0
        self.last_event = 0.0
        self.stored: dict[str, Any] | None = None
        self._blocked = 0  # disapproved so far (the live display's count)

    # ------------------------------------------------------------------ input

    def sending(self, muid: str, now: float) -> None:
        """A ``message.send`` for ``muid`` goes out now (a retry keeps the first time)."""
        track = self.tracks[muid]
        if not track.sent_at:
            track.sent_at = now
            self.counters["sent"] += 1
            self.first_sent = self.first_sent or now
        else:
            self.counters["retries"] += 1

    def failed(self, muid: str, reason: str, now: float) -> None:
        """The message will not be stored: the server refused it, or no answer came."""
        track = self.tracks[muid]
        if track.error or track.acked_at:
            return
        track.error = reason
        self.errors[reason] += 1
        self._progress(track, now)

    def on_frame(self, uid: str, frame: Mapping[str, Any], now: float) -> None:
        kind = frame.get("type")
        message = frame.get("message")
        msg: Mapping[str, Any] = message if isinstance(message, Mapping) else {}
        muid = msg.get("muid")
        track = self.tracks.get(muid) if isinstance(muid, str) else None
        if kind in ("message.sent", "message.moderated", "message") and track is None:
            self.counters["foreign_frames"] += 1  # not this run's (another client, old data)
            return
        if kind == "message.sent" and track is not None:
            if track.acked_at:
                self.counters["duplicate_acks"] += 1
                return
            track.acked_at = now
            track.message_id = msg.get("id") if isinstance(msg.get("id"), int) else None
            self.ack_s.append(now - track.sent_at)
            self.counters["acked"] += 1
            if msg.get("moderationStatus") in FINAL and not track.final:
                track.status = str(msg["moderationStatus"])
        elif kind == "message.moderated" and track is not None:
            if track.status in ("approved", "disapproved"):
                self.counters["duplicate_verdicts"] += 1
            status = str(msg.get("moderationStatus", ""))
            self._blocked += (status == "disapproved") - (track.status == "disapproved")
            track.status = status
        elif kind == "message" and track is not None:
            if uid == track.planned.sender:
                self.counters["own_copies"] += 1  # a sender's other connection; not a delivery
                return
            track.deliveries[uid] += 1
            if track.deliveries[uid] == 1 and uid in track.planned.receivers:
                self.counters["delivered"] += 1
                self.delivery_s.append(now - track.sent_at)
        elif kind == "error":
            frame_id = frame.get("id")
            if isinstance(frame_id, str) and frame_id in self.tracks:
                return  # answered through failed() by the sender loop
            self.errors[str(frame.get("code") or "ERR_UNKNOWN")] += 1
            return
        else:
            return
        if track is not None:
            self._progress(track, now)

    def _progress(self, track: Track, now: float) -> None:
        self.last_event = now
        if not track.done and track.complete():
            track.done = True
            self.completed += 1
            if self.on_complete is not None:
                self.on_complete(self.completed)

    def check_stored(self, stored: Iterable[Mapping[str, Any]]) -> None:
        """Compare with the messages the server returns in history (each sender's view of
        the conversations it sent to): every acked message stored once, by its muid, with
        the status its frames gave."""
        seen: dict[str, set[int]] = {}
        status: dict[str, str] = {}
        for msg in stored:
            muid = msg.get("muid")
            if isinstance(muid, str) and muid in self.tracks and isinstance(msg.get("id"), int):
                seen.setdefault(muid, set()).add(msg["id"])
                status[muid] = str(msg.get("moderationStatus", ""))
        acked = [t for t in self.tracks.values() if t.acked_at]
        self.stored = {
            "checked": len(acked),
            "missing": sum(1 for t in acked if t.planned.muid not in seen),
            "duplicates": sum(len(ids) - 1 for ids in seen.values()),
            "status_mismatch": sum(
                1
                for t in acked
                if t.planned.muid in status and t.final and status[t.planned.muid] != t.status
            ),
            "id_mismatch": sum(
                1
                for t in acked
                if t.message_id is not None
                and t.planned.muid in seen
                and seen[t.planned.muid] != {t.message_id}
            ),
            # refused with an error frame, yet stored (a timeout that was stored is no fault)
            "stored_despite_refusal": sum(
                1
                for t in self.tracks.values()
                if t.error.startswith("ERR_") and t.planned.muid in seen
            ),
        }

    # ------------------------------------------------------------------ output

    def live(self) -> dict[str, int]:
        """What a progress display shows while the run goes on."""
        return {
            "delivered": self.counters["delivered"],
            "blocked": self._blocked,
            "errors": sum(self.errors.values()),
        }

    def verification(self) -> dict[str, Any]:
        """What the run proves: exactly-once delivery, no leak of a blocked message, and
        (after :meth:`check_stored`) that history agrees with the frames."""
        duplicates = leaked = unexpected = missing = 0
        leaked_muids: list[str] = []
        for t in self.tracks.values():
            wanted = set(t.planned.receivers)
            for uid, n in t.deliveries.items():
                if t.status == "disapproved":
                    leaked += n
                    leaked_muids.append(t.planned.muid)
                elif uid not in wanted:
                    unexpected += n
                else:
                    duplicates += n - 1
            if t.acked_at and t.status in DELIVERABLE:
                missing += sum(1 for u in wanted if not t.deliveries[u])
        stored_ok = None
        if self.stored is not None:
            stored_ok = not any(v for k, v in self.stored.items() if k != "checked")
        return {
            "exactly_once": duplicates == 0 and missing == 0 and unexpected == 0,
            "no_blocked_delivered": leaked == 0,
            "history_matches": stored_ok,
            "duplicate_deliveries": duplicates,
            "missing_deliveries": missing,
            "unexpected_deliveries": unexpected,
            "leaked_deliveries": leaked,
            "leaked_muids": sorted(set(leaked_muids))[:20],
            "stored": self.stored,
        }

    def summary(self) -> dict[str, Any]:
        tracks = self.tracks.values()
        blocked = sum(1 for t in tracks if t.status == "disapproved")
        statuses = Counter(t.status or "none" for t in tracks if t.acked_at)
        elapsed = max(self.last_event - self.first_sent, 0.0) if self.first_sent else 0.0
        completed_ok = sum(1 for t in tracks if t.done and not t.error)
        return {
            "sent": self.counters["sent"],
            "acked": self.counters["acked"],
            "delivered": self.counters["delivered"],
            "blocked": blocked,
            "errors": sum(self.errors.values()),
            "errors_by_code": dict(self.errors),
            "completed": completed_ok,
            "incomplete": sum(1 for t in tracks if t.sent_at and not t.done),
            "no_verdict": statuses.get("pending", 0),
            "blocked_as_planned": sum(
                1 for t in tracks if t.planned.blocked and t.status == "disapproved"
            ),
            "planned_block_passed": sum(
                1 for t in tracks if t.planned.blocked and t.status in DELIVERABLE
            ),
            "blocked_unplanned": sum(
                1 for t in tracks if not t.planned.blocked and t.status == "disapproved"
            ),
            "statuses": dict(statuses),
            "elapsed_s": round(elapsed, 3),
            "msgs_per_s": round(completed_ok / elapsed, 1) if elapsed > 0 else None,
            "deliveries_per_s": round(self.counters["delivered"] / elapsed, 1)
            if elapsed > 0
            else None,
            "send_to_ack_ms": percentiles(self.ack_s),
            "send_to_delivery_ms": percentiles(self.delivery_s),
            "counters": {
                k: v for k, v in self.counters.items() if k not in ("sent", "acked", "delivered")
            },
            "verification": self.verification(),
        }
