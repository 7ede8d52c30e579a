"""Server frames as the SDK hands them to callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One server frame: its ``type`` and the whole decoded frame in ``data``."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str | None:
        """The client frame id this frame answers, if any."""
        value = self.data.get("id")
        return value if isinstance(value, str) else None

    @property
    def message(self) -> dict[str, Any]:
        """The Message object of ``message*`` frames (``{}`` for other frames)."""
        value = self.data.get("message")
        return value if isinstance(value, dict) else {}
