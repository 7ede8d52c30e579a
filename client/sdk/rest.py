"""The REST half of the SDK: thin async wrappers over ``/api/v1`` (httpx).

Over 400 lines on purpose: one method of a few lines per endpoint, in the order of
docs/protocol.md's REST reference."""

from __future__ import annotations

import asyncio
import os
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from client.sdk.errors import ServerError


class RestClient:
    """Calls ``/api/v1`` with the app's API key (server to server) or a user's JWT.

    Every method returns the decoded JSON body; a non-2xx answer raises
    :class:`ServerError` with the server's ``code``, ``message``, ``details`` and status.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
    ) -> None:
        headers: dict[str, str] = {}
        if api_key is not None:
            headers["X-API-Key"] = api_key
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers=headers,
            verify=verify,
            timeout=timeout,
        )
        # Media links carry their own credential (the signed token): fetched without the API
        # key or the bearer token, so neither can leak to wherever a link points.
        self._media = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), verify=verify, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._media.aclose()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        response = await self._http.request(method, path, json=json, params=params)
        if response.status_code >= 400:
            try:
                body: object = response.json()
            except ValueError:
                body = response.text
            raise ServerError.from_body(body, status=response.status_code)
        if not response.content:
            return None
        return response.json()

    # ------------------------------------------------------------------ users and privacy

    async def create_user(
        self,
        uid: str,
        name: str,
        *,
        role: str = "user",
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {
            "uid": uid,
            "name": name,
            "role": role,
            "tags": tags or [],
            "metadata": metadata or {},
        }
        result: dict[str, Any] = await self.request("POST", "/users", json=body)
        return result

    async def get_user(self, uid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/users/{uid}")
        return result

    async def update_user(self, uid: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PATCH", f"/users/{uid}", json=fields)
        return result

    async def delete_user(self, uid: str, *, erase: bool = False) -> Any:
        params = {"erase": "true"} if erase else None
        return await self.request("DELETE", f"/users/{uid}", params=params)

    async def issue_token(self, uid: str, *, ttl: int | None = None) -> str:
        body = {} if ttl is None else {"ttl": ttl}
        result = await self.request("POST", f"/users/{uid}/tokens", json=body)
        return str(result["token"])

    async def export_user(self, uid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/users/{uid}/export")
        return result

    # ------------------------------------------------------------------ blocking (as a user)

    async def blocked_users(self) -> list[str]:
        result = await self.request("GET", "/me/blocked-users")
        return list(result["uids"])

    async def block(self, *uids: str) -> list[str]:
        result = await self.request("POST", "/me/blocked-users", json={"uids": list(uids)})
        return list(result["uids"])

    async def unblock(self, uid: str) -> list[str]:
        result = await self.request("DELETE", f"/me/blocked-users/{uid}")
        return list(result["uids"])

    # ------------------------------------------------------------------ inbox and directory

    async def conversations(
        self, *, limit: int | None = None, before: str | None = None
    ) -> dict[str, Any]:
        """The caller's conversations, newest first (a user token):
        ``{"conversations": [{conversationId, conversationType, with, lastMessage,
        unreadCount, updatedAt}], "next": str | None}``; pass ``next`` as ``before`` for the
        following page."""
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if before is not None:
            params["before"] = before
        result: dict[str, Any] = await self.request("GET", "/me/conversations", params=params)
        return result

    async def search_users(
        self, search: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """Users whose uid or name starts with ``search`` (case-insensitive), by uid:
        ``{"users": [{uid, name, ...}], "next": str | None}``; pass ``next`` as ``cursor``
        for the following page."""
        params: dict[str, Any] = {"search": search}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        result: dict[str, Any] = await self.request("GET", "/users", params=params)
        return result

    # ------------------------------------------------------------------ groups

    async def create_group(
        self,
        guid: str,
        name: str,
        *,
        type: str = "public",
        tags: list[str] | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"guid": guid, "name": name, "type": type, "tags": tags or []}
        if owner is not None:
            body["owner"] = owner
        result: dict[str, Any] = await self.request("POST", "/groups", json=body)
        return result

    async def get_group(self, guid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/groups/{guid}")
        return result

    async def add_member(
        self, guid: str, uid: str, *, scope: str = "participant"
    ) -> dict[str, Any]:
        body = {"uid": uid, "scope": scope}
        result: dict[str, Any] = await self.request("POST", f"/groups/{guid}/members", json=body)
        return result

    async def set_scope(self, guid: str, uid: str, scope: str) -> dict[str, Any]:
        path = f"/groups/{guid}/members/{uid}"
        result: dict[str, Any] = await self.request("PATCH", path, json={"scope": scope})
        return result

    async def kick(self, guid: str, uid: str) -> Any:
        return await self.request("DELETE", f"/groups/{guid}/members/{uid}")

    async def ban(self, guid: str, uid: str, *, reason: str = "") -> Any:
        return await self.request(
            "POST", f"/groups/{guid}/bans", json={"uid": uid, "reason": reason}
        )

    async def unban(self, guid: str, uid: str) -> Any:
        return await self.request("DELETE", f"/groups/{guid}/bans/{uid}")

    # ------------------------------------------------------------------ messages

    async def history_page(
        self, conversation_id: str, *, before: int | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """One page: the newest ``limit`` messages below ``before``, oldest first, and
        whether older ones remain: ``{"messages": [...], "hasMore": bool}``."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        path = f"/conversations/{conversation_id}/messages"
        result: dict[str, Any] = await self.request("GET", path, params=params)
        return result

    async def history(
        self, conversation_id: str, *, before: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The messages of one page (see :meth:`history_page`)."""
        page = await self.history_page(conversation_id, before=before, limit=limit)
        return list(page["messages"])

    async def send_message(self, **body: Any) -> dict[str, Any]:
        """``POST /messages``; with the API key, ``sender`` names the acting user."""
        result = await self.request("POST", "/messages", json=body)
        return dict(result["message"])

    async def get_message(self, message_id: int) -> dict[str, Any]:
        return dict((await self.request("GET", f"/messages/{message_id}"))["message"])

    async def flag_message(self, message_id: int, reason: str, remarks: str = "") -> dict[str, Any]:
        body = {"reason": reason, "remarks": remarks}
        result: dict[str, Any] = await self.request(
            "POST", f"/messages/{message_id}/flag", json=body
        )
        return result

    async def react(self, message_id: int, emoji: str) -> dict[str, Any]:
        """``POST /messages/{id}/reactions``: the message's counts after it (user token)."""
        path = f"/messages/{message_id}/reactions"
        return dict(await self.request("POST", path, json={"emoji": emoji}))

    async def unreact(self, message_id: int, emoji: str) -> dict[str, Any]:
        """``DELETE /messages/{id}/reactions/{emoji}`` (the emoji is percent-encoded)."""
        path = f"/messages/{message_id}/reactions/{quote(emoji, safe='')}"
        return dict(await self.request("DELETE", path))

    async def reactions(self, message_id: int) -> list[dict[str, Any]]:
        """Who reacted with what: ``[{emoji, count, uids}]``."""
        return list((await self.request("GET", f"/messages/{message_id}/reactions"))["reactions"])

    async def thread(
        self, message_id: int, *, before: int | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """A thread: ``{"parent", "messages" (replies, oldest first), "hasMore"}``."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        path = f"/messages/{message_id}/thread"
        return dict(await self.request("GET", path, params=params))

    # ------------------------------------------------------------------ offline push

    async def register_push(
        self,
        url: str,
        *,
        kind: str = "unifiedpush",
        device_id: str = "default",
        include_text: bool = False,
    ) -> dict[str, Any]:
        """Register this device's push endpoint (user token): a UnifiedPush/ntfy-style
        ``url`` or a ``webhook`` (the answer then carries its signing ``secret``). The same
        ``device_id`` again replaces the device's endpoint."""
        body = {"url": url, "kind": kind, "deviceId": device_id, "includeText": include_text}
        return dict(await self.request("POST", "/me/push-endpoints", json=body))

    async def push_endpoints(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/me/push-endpoints"))["endpoints"])

    async def unregister_push(self, endpoint_id: str) -> None:
        await self.request("DELETE", f"/me/push-endpoints/{quote(endpoint_id, safe='')}")

    # ------------------------------------------------------------------ media

    async def upload(
        self,
        file: str | os.PathLike[str] | bytes,
        *,
        name: str | None = None,
        content_type: str | None = None,
        kind: str | None = None,
        uploader: str | None = None,
    ) -> dict[str, Any]:
        """``POST /media``: upload a file (a path, streamed from disk, or bytes).

        Returns ``{mediaId, name, mimeType, size, kind, url, urlExpiresAt, ...}``; ``url`` is
        a signed link for the uploader (see :meth:`download`). ``kind`` (``image``, ``video``,
        ``audio``, ``file``) says what the file is meant to be; the server checks the content.
        With the API key, ``uploader`` names the user the file belongs to.
        """
        params: dict[str, str] = {}
        if kind is not None:
            params["kind"] = kind
        if uploader is not None:
            params["uploader"] = uploader
        ctype = content_type or "application/octet-stream"
        if isinstance(file, bytes):
            filename, size = name or "file", len(file)
        else:
            path = Path(file)
            filename, size = name or path.name, (await asyncio.to_thread(path.stat)).st_size
        boundary = "parley-" + uuid.uuid4().hex
        # The browser's escaping of a name in a form-data header (WHATWG HTML).
        quoted = filename.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
            f' filename="{quoted}"\r\nContent-Type: {ctype}\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def body() -> AsyncIterator[bytes]:
            """The multipart body, the file streamed from disk in 256 KiB pieces."""
            yield head
            if isinstance(file, bytes):
                yield file
            else:
                fh = await asyncio.to_thread(Path(file).open, "rb")
                try:
                    while piece := await asyncio.to_thread(fh.read, 256 * 1024):
                        yield piece
                finally:
                    fh.close()
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        response = await self._http.post("/media", content=body(), headers=headers, params=params)
        return dict(self._check(response))

    async def media(self, media_id: str) -> dict[str, Any]:
        """``GET /media/{mediaId}``: the media object with fresh signed links."""
        result: dict[str, Any] = await self.request("GET", f"/media/{media_id}")
        return result

    async def download(self, url: str, *, byte_range: tuple[int, int] | None = None) -> bytes:
        """The bytes behind a signed media link (``url`` as the server gave it, relative to
        the server's root or absolute); ``byte_range`` asks for bytes first..last."""
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else None
        response = await self._media.get(url, headers=headers)
        self._check(response)
        return response.content

    @staticmethod
    def _check(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body: object = response.json()
            except ValueError:
                body = response.text
            raise ServerError.from_body(body, status=response.status_code)
        if not response.content or not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return None
        return response.json()

    # ------------------------------------------------------------------ moderation

    async def list_rules(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/moderation/rules"))["rules"])

    async def get_rule(self, rule_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/moderation/rules/{rule_id}")
        return result

    async def create_rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/moderation/rules", json=rule)
        return result

    async def update_rule(self, rule_id: str, rule: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PUT", f"/moderation/rules/{rule_id}", json=rule
        )
        return result

    async def delete_rule(self, rule_id: str) -> Any:
        return await self.request("DELETE", f"/moderation/rules/{rule_id}")

    async def rule_revisions(self, rule_id: str) -> dict[str, Any]:
        path = f"/moderation/rules/{rule_id}/revisions"
        result: dict[str, Any] = await self.request("GET", path)
        return result

    async def dry_run(self, rule_id: str, *, days: int = 7) -> dict[str, Any]:
        path = f"/moderation/rules/{rule_id}/dry-run"
        result: dict[str, Any] = await self.request("POST", path, json={"days": days})
        return result

    async def rule_defaults(self) -> dict[str, Any]:
        """The shipped default rules and settings, each rule compared with the stored one."""
        result: dict[str, Any] = await self.request("GET", "/moderation/defaults")
        return result

    async def reset_rule(self, rule_id: str) -> dict[str, Any]:
        """Store the shipped default rule ``rule_id`` again (re-created if deleted)."""
        path = f"/moderation/rules/{rule_id}/reset"
        result: dict[str, Any] = await self.request("POST", path)
        return result

    async def list_lists(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/moderation/lists"))["lists"])

    async def get_list(self, list_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/moderation/lists/{list_id}")
        return result

    async def create_list(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", "/moderation/lists", json=body)
        return result

    async def update_list(self, list_id: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PUT", f"/moderation/lists/{list_id}", json=body
        )
        return result

    async def delete_list(self, list_id: str) -> Any:
        return await self.request("DELETE", f"/moderation/lists/{list_id}")

    async def get_settings(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/moderation/settings")
        return result

    async def put_settings(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PUT", "/moderation/settings", json=body)
        return result

    async def webhook_deliveries(
        self, *, status: str | None = None, event: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The outgoing webhook delivery log, newest first (staff only)."""
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if event is not None:
            params["event"] = event
        result: dict[str, Any] = await self.request(
            "GET", "/moderation/webhooks/deliveries", params=params
        )
        return list(result["deliveries"])

    # ------------------------------------------------------------------ decisions and appeals

    async def my_decisions(self) -> list[dict[str, Any]]:
        """The caller's own decisions (statements of reasons), newest first (user token)."""
        return list((await self.request("GET", "/me/decisions"))["decisions"])

    async def appeal(self, decision_id: str, note: str = "") -> dict[str, Any]:
        """Appeal a decision: ``{"appealId", "state": "open"}`` (409 twice, 410 too late)."""
        path = f"/decisions/{decision_id}/appeal"
        return dict(await self.request("POST", path, json={"note": note}))

    async def decide_appeal(self, appeal_id: str, outcome: str, reason: str) -> dict[str, Any]:
        """Staff: ``outcome`` is ``upheld`` or ``rejected``."""
        path = f"/moderation/appeals/{appeal_id}/decide"
        return dict(await self.request("POST", path, json={"outcome": outcome, "reason": reason}))

    async def restrict(
        self,
        uid: str,
        kind: str,
        *,
        until: int = 0,
        reason: str = "",
        guid: str | None = None,
    ) -> dict[str, Any]:
        """Staff: mute or shadow-ban ``uid`` (``guid``: in one group only; ``until`` 0: no end)."""
        body: dict[str, Any] = {"kind": kind, "until": until, "reason": reason}
        if guid is not None:
            body["guid"] = guid
        return dict(await self.request("POST", f"/users/{uid}/restrictions", json=body))

    async def lift_restriction(self, uid: str, restriction_id: str) -> dict[str, Any]:
        path = f"/users/{uid}/restrictions/{restriction_id}"
        return dict(await self.request("DELETE", path))

    async def strikes(self, uid: str) -> dict[str, Any]:
        """Staff: a user's decisions (with details), appeals and restrictions."""
        return dict(await self.request("GET", f"/users/{uid}/strikes"))

    async def set_slow_mode(self, guid: str, seconds: int) -> dict[str, Any]:
        path = f"/groups/{guid}"
        return dict(await self.request("PATCH", path, json={"slowModeSeconds": seconds}))

    async def terms(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/moderation/terms"))["terms"])

    async def put_terms(self, terms: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(
            (await self.request("PUT", "/moderation/terms", json={"terms": terms}))["terms"]
        )

    async def queue(self, state: str = "review") -> dict[str, Any]:
        """``{"state", "items"}`` of the review queue in ``state``."""
        result: dict[str, Any] = await self.request(
            "GET", "/moderation/queue", params={"state": state}
        )
        return result

    async def approve(self, message_id: int) -> dict[str, Any]:
        path = f"/moderation/messages/{message_id}/approve"
        return dict((await self.request("POST", path, json={}))["message"])

    async def disapprove(self, message_id: int, *, reason: str = "") -> dict[str, Any]:
        path = f"/moderation/messages/{message_id}/disapprove"
        return dict((await self.request("POST", path, json={"reason": reason}))["message"])

    async def evaluate(
        self,
        text: str,
        *,
        message_type: str = "text",
        sender: str | None = None,
        receiver: str | None = None,
        receiver_type: str = "user",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "messageType": message_type}
        body["receiverType"] = receiver_type
        if sender is not None:
            body["sender"] = sender
        if receiver is not None:
            body["receiver"] = receiver
        result: dict[str, Any] = await self.request("POST", "/moderation/evaluate", json=body)
        return result

    async def audit(self, *, since: int = 0) -> dict[str, Any]:
        """``{"entries": [...]}`` of the audit log from ``since`` (Unix seconds)."""
        result: dict[str, Any] = await self.request("GET", "/audit", params={"since": since})
        return result
