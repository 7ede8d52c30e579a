"""The Custom API provider (condition kind ``custom_api``): a signed POST to your webhook.

Request body, signed as in ``moderation.providers.signing``::

    {"contextMessages": [{"<uid>": "plain text"}, ..., {"<uid>": <Message object>}]}

the previous messages of the conversation as plain text, oldest first (as many as the
condition's context window, which the server sets from ``customApi.contextWindow``), then the
message under moderation in full, last. Expected answer (2xx, JSON)::

    {"isMatchingCondition": true, "confidence": 0.93, "reason": "..."}

``confidence`` (0..1, default 1 when matching) is compared with the condition's ``threshold``.
A timeout, a non-2xx status, a transport error or an answer of another shape is a provider
error and gets ``actionOnError``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx

from moderation.detectors.base import EXPENSIVE, DetectContext, Detector, message_text
from moderation.providers.guard import (
    GuardConfig,
    OnError,
    ProviderError,
    ProviderGuard,
    Reporter,
    error_detections,
)
from moderation.providers.signing import signed_headers
from moderation.rules import Condition
from moderation.types import Detection, MessageView

KIND = "custom_api"
#: Answers larger than this are a ``bad_response``.
MAX_ANSWER_BYTES = 1 << 20
USER_AGENT = "Parley-Moderation/1"

MessageResolver = Callable[[MessageView], Awaitable[Mapping[str, object]]]


@dataclass(frozen=True)
class CustomApiConfig:
    """``customApi`` settings; ``timeout`` in seconds."""

    url: str
    secret: str | None = field(default=None, repr=False)
    context_window: int = 5
    on_error: OnError = OnError.ALLOW
    guard: GuardConfig = field(default_factory=GuardConfig)


def view_json(view: MessageView) -> dict[str, object]:
    """A Message object (PROTOCOL.md) built from the engine's view, when no stored one exists."""
    return {
        "id": view.id,
        "muid": None,
        "conversationId": view.conversation_id,
        "sender": view.sender.uid,
        "receiver": view.receiver.id,
        "receiverType": view.receiver.type,
        "category": view.category,
        "type": view.message_type,
        "text": view.text,
        "attachment": None,
        "data": view.data,
        "metadata": {},
        "tags": [],
        "parentId": None,
        "sentAt": view.sent_at,
        "updatedAt": view.sent_at,
        "editedAt": 0,
        "deletedAt": 0,
        "moderationStatus": "pending",
    }


async def _from_view(view: MessageView) -> Mapping[str, object]:
    return view_json(view)


def request_body(message: Mapping[str, object], sender: str, context: list[MessageView]) -> bytes:
    """The raw JSON body POSTed for ``message`` with its ``context`` (oldest first)."""
    items: list[dict[str, object]] = [{m.sender.uid: message_text(m)} for m in context]
    items.append({sender: dict(message)})
    return json.dumps(
        {"contextMessages": items}, separators=(",", ":"), ensure_ascii=False
    ).encode()


def parse_answer(raw: bytes) -> tuple[bool, float, str]:
    """``(isMatchingCondition, confidence, reason)`` from an answer; raises ``ProviderError``."""

    def bad(why: str) -> ProviderError:
        return ProviderError(KIND, "bad_response", why)

    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad("answer is not JSON") from exc
    if not isinstance(body, dict):
        raise bad("answer is not a JSON object")
    matching = body.get("isMatchingCondition")
    if not isinstance(matching, bool):
        raise bad("'isMatchingCondition' must be true or false")
    confidence = body.get("confidence", 1.0 if matching else 0.0)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise bad("'confidence' must be a number")
    if not 0.0 <= confidence <= 1.0:
        raise bad("'confidence' must be between 0 and 1")
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise bad("'reason' must be a string")
    return matching, float(confidence), reason


class CustomApiProvider(Detector):
    """Detector for ``custom_api`` conditions; see the module docstring."""

    name = KIND
    cost = EXPENSIVE * 10
    reads: frozenset[str] = frozenset({"context"})
    categories: tuple[str, ...] = (KIND,)

    def __init__(
        self,
        config: CustomApiConfig,
        *,
        report: Reporter | None = None,
        resolve: MessageResolver = _from_view,
    ) -> None:
        self.config = config
        self.guard = (
            ProviderGuard(KIND, config.guard)
            if report is None
            else ProviderGuard(KIND, config.guard, report=report)
        )
        self._resolve = resolve
        self._client = httpx.AsyncClient(
            timeout=config.guard.timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """Ask the webhook; a failure yields ``actionOnError``'s detections, never raises."""
        try:
            matching, confidence, reason = await self.guard.call(
                lambda: self._ask(message, ctx), message_id=message.id
            )
        except ProviderError as err:
            return error_detections(KIND, err, self.config.on_error, condition.categories)
        score = confidence if matching else 0.0
        why = f"custom_api: {reason}" if reason else f"custom_api {score:.2f}"
        return [Detection(KIND, KIND, score, why if matching else "")]

    async def _ask(self, message: MessageView, ctx: DetectContext) -> tuple[bool, float, str]:
        full = await self._resolve(message)
        body = request_body(full, message.sender.uid, list(ctx.context))
        headers = {"Content-Type": "application/json", **signed_headers(self.config.secret, body)}
        try:
            async with self._client.stream(
                "POST", self.config.url, content=body, headers=headers
            ) as response:
                if not 200 <= response.status_code < 300:
                    raise ProviderError(KIND, "http_status", f"HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise ProviderError(KIND, "bad_response", "answer too large")
                    chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise ProviderError(KIND, "timeout", "the webhook timed out") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(KIND, "transport", f"{type(exc).__name__}: {exc}") from exc
        return parse_answer(b"".join(chunks))
