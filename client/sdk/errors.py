"""The one error the SDK raises for a refusal by the server."""

from __future__ import annotations

from typing import Any


class ServerError(Exception):
    """An ``error`` frame or a REST error body: ``{code, message, details}``.

    ``status`` is the HTTP status for REST calls and ``None`` for WebSocket frames.
    """

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.status = status

    @classmethod
    def from_body(cls, body: object, *, status: int | None = None) -> ServerError:
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            details = body.get("details")
            return cls(
                body["code"],
                str(body.get("message", "")),
                details if isinstance(details, dict) else None,
                status=status,
            )
        return cls("ERR_INTERNAL", f"unexpected error body: {body!r}"[:300], status=status)
