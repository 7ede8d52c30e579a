"""The newest messages of busy conversations and senders, kept in memory.

Moderating a message needs the conversation's previous messages (context) and the sender's
recent ones (spam behaviour). Reading and decrypting them from SQLite for every message costs
more than the rest of the send path, so the store keeps the newest few per conversation and
per sender here, decrypted, and answers from memory when it can prove the answer complete.

Correctness rules:

- An entry for a key (a conversation id or a sender uid) is a run of messages with no gaps,
  from its oldest to the newest stored message of that key. Entries are created only by a
  load from the database; ``add`` extends existing entries, never creates them.
- Messages are added and replaced *after* their transaction committed. A load installs its
  rows only if no mutation touched the key while it read (a generation counter per key), so a
  read that raced with a commit is used once and not kept.
- ``complete``: the entry reaches back to the first message of the key (the load returned
  fewer rows than it asked for, and nothing was trimmed since), so "fewer than asked" is a
  true answer rather than a cache miss.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from server.models import Message


@dataclass
class _Entry:
    messages: list[Message] = field(default_factory=list)  # ascending id, no gaps
    complete: bool = False


class RecentIndex:
    """A bounded LRU of entries, each holding at most ``per_key`` newest messages of a key,
    and at most ``max_messages`` messages in all (least recently used keys go first)."""

    def __init__(
        self,
        key_of: Callable[[Message], str],
        *,
        per_key: int,
        max_keys: int,
        max_messages: int | None = None,
    ) -> None:
        self._key_of = key_of
        self._per_key = per_key
        self._max_keys = max_keys
        self._max_messages = max_messages if max_messages is not None else per_key * max_keys
        self._count = 0  # messages held in all entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._generation: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ mutations

    def _touch(self, key: str) -> None:
        self._generation[key] = self._generation.get(key, 0) + 1
        if len(self._generation) > 4 * self._max_keys:
            # Generations of keys with no entry only matter during a load; forget old ones.
            for stale in [k for k in self._generation if k not in self._entries][: self._max_keys]:
                del self._generation[stale]

    def add(self, message: Message) -> None:
        """A newly committed message."""
        key = self._key_of(message)
        self._touch(key)
        entry = self._entries.get(key)
        if entry is None:
            return
        if not entry.messages or entry.messages[-1].id < message.id:
            entry.messages.append(message)  # the usual case: the newest message
        else:
            ids = [m.id for m in entry.messages]
            at = bisect.bisect_left(ids, message.id)
            if at < len(ids) and ids[at] == message.id:
                entry.messages[at] = message
                return
            entry.messages.insert(at, message)
        self._count += 1
        self._trim(entry)
        self._shrink()

    def replace(self, message: Message) -> None:
        """A committed change to a stored message (status, content, deletion)."""
        key = self._key_of(message)
        self._touch(key)
        entry = self._entries.get(key)
        if entry is None:
            return
        for i, old in enumerate(entry.messages):
            if old.id == message.id:
                entry.messages[i] = message
                return

    def clear(self) -> None:
        """Forget everything (user erasure and other bulk changes)."""
        for key in list(self._entries):
            self._touch(key)
        self._entries.clear()
        self._count = 0

    def _trim(self, entry: _Entry) -> None:
        extra = len(entry.messages) - self._per_key
        if extra > 0:
            del entry.messages[:extra]
            entry.complete = False
            self._count -= extra

    def _shrink(self) -> None:
        while self._entries and (
            len(self._entries) > self._max_keys or self._count > self._max_messages
        ):
            _, evicted = self._entries.popitem(last=False)
            self._count -= len(evicted.messages)

    def __len__(self) -> int:
        """Messages held."""
        return self._count

    # ------------------------------------------------------------------ loading

    def generation(self, key: str) -> int:
        """Take before a load; pass to ``install``."""
        return self._generation.get(key, 0)

    def install(
        self, key: str, generation: int, rows: Iterable[Message], *, complete: bool
    ) -> None:
        """Keep a load's rows (ascending id, the newest of the key) unless the key changed."""
        if self._generation.get(key, 0) != generation:
            return
        entry = _Entry(sorted(rows, key=lambda m: m.id), complete)
        old = self._entries.pop(key, None)
        if old is not None:
            self._count -= len(old.messages)
        self._count += len(entry.messages)
        self._trim(entry)
        self._entries[key] = entry
        self._shrink()

    # ------------------------------------------------------------------ queries

    def newest(
        self,
        key: str,
        want: Callable[[Message], bool],
        *,
        limit: int,
        reaches: Callable[[Message], bool] | None = None,
    ) -> list[Message] | None:
        """The newest ``limit`` messages of ``key`` passing ``want``, oldest first.

        None when the entry is missing or cannot prove the answer complete: fewer than
        ``limit`` found is only an answer if the entry is ``complete`` or ``reaches(oldest)``
        says the query needs nothing older than the entry's oldest message.
        """
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        picked: list[Message] = []
        for message in reversed(entry.messages):
            if want(message):
                picked.append(message)
                if len(picked) == limit:
                    break
        if (
            len(picked) < limit
            and not entry.complete
            and not (reaches is not None and entry.messages and reaches(entry.messages[0]))
        ):
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        picked.reverse()
        return picked


#: How many of the newest messages per conversation / sender are kept decrypted in memory
#: (at least the largest context window, 10, and the 20 the spam detectors are given).
RECENT_PER_CONVERSATION = 16
RECENT_PER_SENDER = 24
RECENT_MAX_MESSAGES = 150_000


class RecentMessages:
    """The two indexes the message repository keeps: by conversation and by sender.

    Bounded in messages (about 0.6 KB each, shared by both indexes): a miss only costs a
    database read.
    """

    def __init__(self) -> None:
        self.by_conversation = RecentIndex(
            lambda m: m.conversation_key,
            per_key=RECENT_PER_CONVERSATION,
            max_keys=8192,
            max_messages=RECENT_MAX_MESSAGES,
        )
        self.by_sender = RecentIndex(
            lambda m: m.sender,
            per_key=RECENT_PER_SENDER,
            max_keys=8192,
            max_messages=RECENT_MAX_MESSAGES,
        )

    def remember(self, message: Message, *, new: bool = False) -> None:
        """Keep both indexes true; called after the commit."""
        for index in (self.by_conversation, self.by_sender):
            if new:
                index.add(message)
            else:
                index.replace(message)

    def clear(self) -> None:
        """Forget everything (after an erasure removed messages)."""
        self.by_conversation.clear()
        self.by_sender.clear()
