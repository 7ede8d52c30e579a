"""The OpenAI provider (condition kind ``openai``), through the official ``openai`` package.

Two modes, chosen per condition:

- no ``prompt``: the moderation endpoint (``moderationModel``, default
  ``omni-moderation-latest``). Every category OpenAI scores is reported under its API name
  (``hate``, ``hate/threatening``, ``self-harm/intent``, ...); the condition's ``categories``
  and ``threshold`` pick what matches, and per-category thresholds are several conditions of
  one rule. Calls are shared between the conditions of one message.
- ``prompt`` (and optional ``model``): a chat completion with structured output
  (``response_format`` json_schema: violates, confidence, category, reason) judging the
  message, with the conversation's previous messages (the context window) for context.
  Reported as category ``prompt`` and as the category the model names.

Images: what the local image detector looks at (``moderation.image_data.images_of``: an
image message's uploaded image, a video's sampled frames, or an image inline in ``data``) is
sent as ``image_url`` parts (``data:`` URLs) with the text. A prompt rule gets every frame in
one request; the moderation endpoint is asked once per frame and the worst frame decides
(its time in the reason). Remote URLs are never fetched or forwarded. Any OpenAI-compatible
server works through ``base_url``.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONSchema

from moderation.detectors.base import EXPENSIVE, DetectContext, Detector, message_text
from moderation.errors import Undecided
from moderation.image_data import frame_data_url, frame_label, images_of
from moderation.providers.guard import (
    GuardConfig,
    OnError,
    ProviderError,
    ProviderGuard,
    Reporter,
    error_detections,
)
from moderation.rules import Condition
from moderation.types import Detection, Frame, MessageView

KIND = "openai"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"
#: The categories of the moderation endpoint, by their API names.
MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
PROMPT_CATEGORY = "prompt"
VERDICT_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "violates": {"type": "boolean"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "category": {"type": "string"},
        "reason": {"type": "string"},
    },
    "required": ["violates", "confidence", "category", "reason"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = ResponseFormatJSONSchema(
    type="json_schema",
    json_schema={"name": "moderation_verdict", "strict": True, "schema": VERDICT_SCHEMA},
)
SYSTEM_PREAMBLE = (
    "You are a content moderator for a chat service. Decide whether the message to judge "
    "violates the policy below. Earlier messages are context only; judge only the last one. "
    "Answer with JSON: violates (boolean), confidence (0..1, how sure you are that it "
    "violates), category (a short snake_case name), reason (one sentence).\n\nPolicy:\n"
)
_CACHE_SIZE = 256


@dataclass(frozen=True)
class OpenAIConfig:
    """``openai`` settings plus the API key (which never leaves the process otherwise)."""

    api_key: str = field(repr=False)
    base_url: str | None = None
    model: str = DEFAULT_MODEL
    moderation_model: str = DEFAULT_MODERATION_MODEL
    on_error: OnError = OnError.ALLOW
    guard: GuardConfig = field(default_factory=GuardConfig)


def parse_verdict(content: str | None) -> tuple[bool, float, str, str]:
    """``(violates, confidence, category, reason)`` from a structured answer."""

    def bad(why: str) -> ProviderError:
        return ProviderError(KIND, "bad_response", why)

    if not content:
        raise bad("empty completion")
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise bad("completion is not JSON") from exc
    if not isinstance(body, dict):
        raise bad("completion is not a JSON object")
    violates, confidence = body.get("violates"), body.get("confidence")
    category, reason = body.get("category") or "", body.get("reason") or ""
    if not isinstance(violates, bool):
        raise bad("'violates' must be true or false")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise bad("'confidence' must be a number")
    if not isinstance(category, str) or not isinstance(reason, str):
        raise bad("'category' and 'reason' must be strings")
    return violates, min(max(float(confidence), 0.0), 1.0), category.strip().lower(), reason


def prompt_messages(
    prompt: str,
    message: MessageView,
    context: Sequence[MessageView],
    image: str | Sequence[str] | None = None,
) -> list[ChatCompletionMessageParam]:
    """The chat messages sent for a prompt rule: the policy, then context and the message
    (with its images, ``data:`` URLs, as ``image_url`` parts: one, or a video's frames)."""
    images = [image] if isinstance(image, str) else list(image or ())
    lines = [f"{m.sender.uid}: {message_text(m)}" for m in context]
    user = (
        ("Conversation so far (oldest first):\n" + "\n".join(lines) + "\n\n" if lines else "")
        + "Message to judge:\n"
        + f"{message.sender.uid}: {message_text(message)}"
        + (
            "\n(the message carries the attached image)"
            if len(images) == 1
            else f"\n(the message is a video: the {len(images)} images are frames of it, in order)"
            if images
            else ""
        )
    )
    system = ChatCompletionSystemMessageParam(role="system", content=SYSTEM_PREAMBLE + prompt)
    if not images:
        return [system, ChatCompletionUserMessageParam(role="user", content=user)]
    parts: list[ChatCompletionContentPartParam] = [
        ChatCompletionContentPartTextParam(type="text", text=user),
        *(
            ChatCompletionContentPartImageParam(type="image_url", image_url={"url": url})
            for url in images
        ),
    ]
    return [system, ChatCompletionUserMessageParam(role="user", content=parts)]


def moderation_input(text: str, image: str | None) -> str | list[dict[str, Any]]:
    """The moderation endpoint's ``input``: the text, or text and image parts."""
    if image is None:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text.strip() else []
    parts.append({"type": "image_url", "image_url": {"url": image}})
    return parts


class OpenAIProvider(Detector):
    """Detector for ``openai`` conditions; see the module docstring."""

    name = KIND
    cost = EXPENSIVE * 10
    reads: frozenset[str] = frozenset({"context"})
    categories: tuple[str, ...] = MODERATION_CATEGORIES

    def __init__(
        self,
        config: OpenAIConfig,
        *,
        report: Reporter | None = None,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self.config = config
        self.guard = (
            ProviderGuard(KIND, config.guard)
            if report is None
            else ProviderGuard(KIND, config.guard, report=report)
        )
        self._client = client or AsyncOpenAI(
            api_key=config.api_key,
            base_url=config.base_url or None,
            timeout=config.guard.timeout,
            max_retries=0,
        )
        self._moderations: OrderedDict[tuple[int, str], asyncio.Task[list[Detection]]] = (
            OrderedDict()
        )

    async def aclose(self) -> None:
        for task in self._moderations.values():
            task.cancel()
        self._moderations.clear()
        await self._client.close()

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """Ask OpenAI; a failure yields ``actionOnError``'s detections, never raises."""
        text = message_text(message)
        try:
            frames = await images_of(message)
        except Exception as exc:  # media that cannot be decoded: held, never approved
            raise Undecided(KIND, f"the media could not be decoded: {exc}") from exc
        images = [(f, url) for f in frames if (url := frame_data_url(f)) is not None]
        if not text.strip() and not images:
            return []  # nothing to judge
        prompt = str(condition.param("prompt", "")).strip()
        try:
            if prompt:
                model = str(condition.param("model", "")) or self.config.model
                urls = [url for _, url in images]
                return await self.guard.call(
                    lambda: self._judge(prompt, model, message, ctx, urls),
                    message_id=message.id,
                )
            if len(images) <= 1:
                image = images[0][1] if images else None
                return list(await self._moderation(message.id, text, image))
            return await self._moderate_frames(message.id, text, images)
        except ProviderError as err:
            return error_detections(KIND, err, self.config.on_error, condition.categories)

    async def _moderate_frames(
        self, message_id: int, text: str, images: Sequence[tuple[Frame, str]]
    ) -> list[Detection]:
        """A video: the moderation endpoint once per frame (the caption with the first); per
        category the worst frame's score, its time in the reason."""
        results = await asyncio.gather(
            *(
                self._moderation(message_id, text if i == 0 else "", url)
                for i, (_, url) in enumerate(images)
            )
        )
        worst: dict[str, Detection] = {}
        for (frame, _), found in zip(images, results, strict=True):
            for d in found:
                best = worst.get(d.category)
                if best is None or d.confidence > best.confidence:
                    why = f"{d.category} {d.confidence:.2f}{frame_label(frame)}"
                    worst[d.category] = Detection(KIND, d.category, d.confidence, why)
        return list(worst.values())

    # ----------------------------------------------------------------- moderation endpoint

    def _moderation(
        self, message_id: int, text: str, image: str | None
    ) -> asyncio.Task[list[Detection]]:
        key = (message_id, text if image is None else text + "\0" + image)
        task = self._moderations.get(key)
        if task is None or task.cancelled():
            task = asyncio.ensure_future(
                self.guard.call(lambda: self._moderate(text, image), message_id=message_id)
            )
            self._moderations[key] = task
            # A failure is not remembered: the next message (or try-out) asks again.
            task.add_done_callback(lambda t: self._forget_failed(key, t))
            while len(self._moderations) > _CACHE_SIZE:
                self._moderations.popitem(last=False)
        return task

    def _forget_failed(self, key: tuple[int, str], task: asyncio.Task[list[Detection]]) -> None:
        if (task.cancelled() or task.exception() is not None) and self._moderations.get(
            key
        ) is task:
            del self._moderations[key]

    async def _moderate(self, text: str, image: str | None) -> list[Detection]:
        try:
            response = await self._client.moderations.create(
                model=self.config.moderation_model,
                input=moderation_input(text, image),  # type: ignore[arg-type]
            )
        except openai.OpenAIError as exc:
            raise _provider_error(exc) from exc
        if not response.results:
            raise ProviderError(KIND, "bad_response", "no moderation result")
        scores = response.results[0].category_scores.to_dict()
        out: list[Detection] = []
        for category, score in scores.items():
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise ProviderError(KIND, "bad_response", f"score of {category!r} is not a number")
            out.append(Detection(KIND, category, min(max(float(score), 0.0), 1.0)))
        return out

    # ----------------------------------------------------------------- prompt rules

    async def _judge(
        self,
        prompt: str,
        model: str,
        message: MessageView,
        ctx: DetectContext,
        image: Sequence[str],
    ) -> list[Detection]:
        try:
            completion = await self._client.chat.completions.create(
                model=model,
                messages=prompt_messages(prompt, message, ctx.context, image),
                response_format=RESPONSE_FORMAT,
            )
        except openai.OpenAIError as exc:
            raise _provider_error(exc) from exc
        if not completion.choices:
            raise ProviderError(KIND, "bad_response", "no completion choice")
        violates, confidence, category, reason = parse_verdict(
            completion.choices[0].message.content
        )
        score = confidence if violates else 0.0
        why = f"openai ({category or PROMPT_CATEGORY}): {reason}" if violates else ""
        names = dict.fromkeys(c for c in (PROMPT_CATEGORY, category) if c)
        return [Detection(KIND, c, score, why) for c in names]


def _provider_error(exc: openai.OpenAIError) -> ProviderError:
    """A ``ProviderError`` for an OpenAI client error, without response bodies or keys."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(KIND, "timeout", "OpenAI request timed out")
    if isinstance(exc, openai.APIStatusError):
        return ProviderError(KIND, "http_status", f"HTTP {exc.status_code}")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(KIND, "transport", "could not connect to the OpenAI endpoint")
    return ProviderError(KIND, "error", type(exc).__name__)
