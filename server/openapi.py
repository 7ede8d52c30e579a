"""The OpenAPI 3.1 description of the REST API, served at ``/api/v1/openapi.json``.

Written as data beside the routes (a route handler parses its own body; there is no schema
layer to generate it from). ``tests/server/test_openapi.py`` compares it with the app's route
table, so a route added without its description (or a description without its route) fails
the suite, and a schema-driven fuzz run over it checks that no input makes a 500.

One piece, past 400 lines: every operation is a few lines of data and splitting them by
resource would only scatter the shared parameter and schema helpers.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"
IDENT = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$"}
INT_MAX = 2**63 - 1
ID = {"type": "integer", "minimum": 1, "maximum": INT_MAX}

#: Who may call: the security requirement alternatives for each kind of caller.
AUTH: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "key": [{"apiKey": []}],
    "user": [{"bearer": []}],
    "any": [{"apiKey": []}, {"bearer": []}],
    "staff": [{"apiKey": []}, {"bearer": []}],  # a user token of a moderator or admin
    "admin": [{"apiKey": []}, {"bearer": []}],  # a user token of an admin
    # an operator's dashboard session (cookie; unsafe methods also send X-CSRF-Token)
    "operator": [{"staffSession": []}],
    "operator-admin": [{"apiKey": []}, {"bearer": []}, {"staffSession": []}],
}
AUTH_NOTE = {
    "staff": " The API key, or a moderator's or admin's token.",
    "admin": " The API key, or an admin's token.",
    "any": " The API key, or a user's token (what the user may do).",
    "operator": " An operator's dashboard session (HttpOnly cookie; unsafe methods send"
    " X-CSRF-Token).",
    "operator-admin": " The API key, an admin's token, or an admin operator's session.",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def arr(items: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **kw}


def string(**kw: Any) -> dict[str, Any]:
    return {"type": "string", **kw}


def enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or IDENT}


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    out = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        out["description"] = description
    return out


def limit(default: int, hi: int) -> dict[str, Any]:
    return query("limit", {"type": "integer", "minimum": 1, "maximum": hi, "default": default})


ERRORS = {
    "400": "malformed request (ERR_BAD_REQUEST)",
    "401": "no or bad credentials (ERR_AUTH_REQUIRED, ERR_AUTH_INVALID)",
    "403": "not allowed (ERR_FORBIDDEN, ERR_BLOCKED, ERR_NOT_A_MEMBER, ERR_BANNED, ERR_MUTED)",
    "404": "no such thing (ERR_NOT_FOUND)",
    "409": "conflict (ERR_CONFLICT)",
    "413": "body too large (ERR_TOO_LARGE)",
    "429": "rate limited (ERR_RATE_LIMITED, details.retryAfterMs)",
}


def op(
    summary: str,
    auth: str,
    *,
    params: tuple[dict[str, Any], ...] = (),
    body: dict[str, Any] | None = None,
    status: int = 200,
    returns: dict[str, Any] | None = None,
    tag: str,
    errors: tuple[str, ...] = ("400", "401", "403", "404"),
    content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One operation: who may call it, its parameters, JSON body and answer."""
    out: dict[str, Any] = {
        "summary": summary,
        "description": summary + AUTH_NOTE.get(auth, ""),
        "tags": [tag],
        "security": AUTH[auth],
        "parameters": list(params),
    }
    if body is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if content is not None:
        out["requestBody"] = {"required": True, "content": content}
    answer: dict[str, Any] = {"description": "done"}
    if status != 204:
        answer["content"] = {JSON: {"schema": returns or {"type": "object"}}}
    responses: dict[str, Any] = {str(status): answer}
    for code in errors:
        if auth == "none" and code in ("401", "403"):
            continue
        responses[code] = {
            "description": ERRORS[code],
            "content": {JSON: {"schema": ref("Error")}},
        }
    out["responses"] = responses
    return out


UID, GUID = path("uid"), path("guid")
MESSAGE_ID = path("messageId", ID)
TOKEN = string(minLength=1, maxLength=200)
RULE_ID, LIST_ID = path("ruleId", TOKEN), path("listId", TOKEN)

USER_BODY = obj(
    ("uid",),
    uid=IDENT,
    name=string(maxLength=200),
    role=enum("user", "moderator", "admin"),
    tags=arr(string()),
    metadata={"type": "object"},
)
SEND_BODY = obj(
    ("receiver", "receiverType", "messageType"),
    muid=string(maxLength=200),
    sender={**IDENT, "description": "with the API key: the acting user"},
    receiverType=enum("user", "group"),
    receiver=IDENT,
    category=enum("message", "custom"),
    messageType=string(minLength=1, maxLength=100),
    text=string(),
    mediaId=string(),
    data={},
    metadata={"type": "object"},
    tags=arr(string()),
    parentId=nullable(ID),
)
EMOJI = string(minLength=1, maxLength=32, pattern="^[^/\\s]+$")
RULE = {"type": "object", "description": "a rule object (docs/protocol.md, Rule object)"}
LIST = obj(
    ("name", "kind", "items"),
    id=string(),
    name=string(),
    kind=string(),
    items=arr(string()),
    allow=arr(string()),
)


def api_paths() -> dict[str, dict[str, Any]]:
    """Every ``/api/v1`` route: ``{path: {method: operation}}`` with paths under ``/api/v1``."""
    user = ref("User")
    group = ref("Group")
    message = obj(("message",), message=ref("Message"))
    uids = obj(("uids",), uids=arr(IDENT))
    p: dict[str, dict[str, Any]] = {
        "/openapi.json": {
            "get": op(
                "This description", "none", tag="meta", errors=(), returns={"type": "object"}
            )
        },
        "/users": {
            "post": op(
                "Create a user", "key", body=USER_BODY, status=201, returns=user, tag="users",
                errors=("400", "401", "403", "409"),
            ),
            "get": op(
                "Search the user directory by uid or name prefix, paged", "any", tag="users",
                params=(
                    query("search", string(maxLength=100)),
                    query("cursor", IDENT, "the `next` of the previous page"),
                    limit(20, 100),
                ),
                returns=obj(("users",), users=arr(user), next=nullable(string())),
            ),
        },
        "/users/{uid}": {
            "get": op("A user", "key", params=(UID,), returns=user, tag="users"),
            "patch": op(
                "Change a user's name, role, tags, metadata or server ban", "key",
                params=(UID,), returns=user, tag="users",
                body=obj(
                    name=string(maxLength=200), role=enum("user", "moderator", "admin"),
                    tags=arr(string()), metadata={"type": "object"}, banned={"type": "boolean"},
                ),
            ),
            "delete": op(
                "Delete a user (erase=true: their messages and media too)", "key",
                params=(UID, query("erase", {"type": "boolean"})), status=204, tag="users",
            ),
        },
        "/users/{uid}/tokens": {
            "post": op(
                "Issue a user token (JWT)", "key", params=(UID,), status=201, tag="users",
                body=obj(ttl={"type": "integer", "minimum": 1, "maximum": 365 * 86400}),
                returns=obj(
                    ("token", "expiresAt", "uid"), token=string(), expiresAt={"type": "integer"},
                    uid=IDENT,
                ),
            )
        },
        "/users/{uid}/export": {
            "get": op("Everything stored about a user, decrypted (GDPR)", "key", params=(UID,), tag="users")
        },
        "/me/blocked-users": {
            "get": op("The uids the caller blocks", "user", returns=uids, tag="blocking"),
            "post": op(
                "Block users", "user", tag="blocking", returns=uids,
                body=obj(("uids",), uids=arr(IDENT, minItems=1)),
            ),
        },
        "/me/blocked-users/{uid}": {
            "delete": op("Unblock a user", "user", params=(UID,), returns=uids, tag="blocking")
        },
        "/groups": {
            "post": op(
                "Create a group (a user token makes the caller its owner)", "any", status=201,
                returns=group, tag="groups", errors=("400", "401", "403", "404", "409"),
                body=obj(
                    ("guid",), guid=IDENT, name=string(maxLength=200),
                    type=enum("public", "private"), tags=arr(string()), owner=IDENT,
                ),
            )
        },
        "/groups/{guid}": {
            "get": op("A group and its members", "any", params=(GUID,), returns=group, tag="groups"),
            "patch": op(
                "Set a group's slow mode", "any", params=(GUID,), tag="groups",
                body=obj(("slowModeSeconds",), slowModeSeconds={"type": "integer", "minimum": 0}),
                returns=obj(guid=IDENT, slowModeSeconds={"type": "integer"}),
            ),
        },
        "/groups/{guid}/members": {
            "post": op(
                "Add a member", "any", params=(GUID,), status=201, returns=group, tag="groups",
                body=obj(("uid",), uid=IDENT, scope=enum("admin", "moderator", "participant")),
                errors=("400", "401", "403", "404", "409"),
            )
        },
        "/groups/{guid}/members/{uid}": {
            "patch": op(
                "Change a member's scope", "any", params=(GUID, UID), returns=group, tag="groups",
                body=obj(("scope",), scope=enum("admin", "moderator", "participant")),
            ),
            "delete": op("Kick a member", "any", params=(GUID, UID), status=204, tag="groups"),
        },
        "/groups/{guid}/bans": {
            "post": op(
                "Ban a user from a group", "any", params=(GUID,), status=201, tag="groups",
                body=obj(("uid",), uid=IDENT, reason=string()),
                returns=obj(guid=IDENT, uid=IDENT, banned={"type": "boolean"}),
            )
        },
        "/groups/{guid}/bans/{uid}": {
            "delete": op("Lift a group ban", "any", params=(GUID, UID), status=204, tag="groups")
        },
        "/conversations/{conversationId}/messages": {
            "get": op(
                "A page of a conversation's history, oldest first", "any", tag="messages",
                params=(
                    path("conversationId", string(minLength=1, maxLength=220)),
                    query("before", ID, "only messages with a smaller id"),
                    limit(50, 100),
                ),
                returns=obj(
                    ("messages", "hasMore"), messages=arr(ref("Message")),
                    hasMore={"type": "boolean"},
                ),
            )
        },
        "/messages": {
            "post": op(
                "Send a message (the body of message.send)", "any", body=SEND_BODY, status=201,
                returns=message, tag="messages", errors=("400", "401", "403", "404", "429"),
            )
        },
        "/messages/{messageId}": {
            "get": op("A message", "any", params=(MESSAGE_ID,), returns=message, tag="messages"),
            "patch": op(
                "Edit a message's text (its sender)", "user", params=(MESSAGE_ID,),
                body=obj(("text",), text=string()), returns=message, tag="messages",
            ),
            "delete": op("Delete a message", "any", params=(MESSAGE_ID,), returns=message, tag="messages"),
        },
        "/messages/{messageId}/flag": {
            "post": op(
                "Report a message to the moderators", "user", params=(MESSAGE_ID,), status=201,
                body=obj(("reason",), reason=string(), remarks=string(), category=string()),
                returns=obj(messageId={"type": "integer"}, reportId=string(), report={"type": "object"}), tag="messages",
            )
        },
        "/messages/{messageId}/reactions": {
            "get": op(
                "Who reacted with what, in the order each emoji was first used",
                "any",
                params=(MESSAGE_ID,),
                tag="reactions",
                returns=obj(
                    ("messageId", "reactions"),
                    messageId={"type": "integer"},
                    reactions=arr(obj(emoji=string(), count={"type": "integer"}, uids=arr(IDENT))),
                ),
            ),
            "post": op(
                "React with an emoji (201; 200 if the caller had already)",
                "user",
                params=(MESSAGE_ID,),
                status=201,
                tag="reactions",
                body=obj(("emoji",), emoji=EMOJI),
                returns=ref("Reaction"),
                errors=("400", "401", "403", "404", "409", "429"),
            ),
        },
        "/messages/{messageId}/reactions/{emoji}": {
            "delete": op(
                "Take back a reaction",
                "user",
                params=(MESSAGE_ID, path("emoji", EMOJI)),
                tag="reactions",
                returns=ref("Reaction"),
                errors=("400", "401", "403", "404", "409", "429"),
            )
        },
        "/messages/{messageId}/thread": {
            "get": op(
                "A thread: the parent message and a page of its replies, oldest first",
                "any",
                params=(MESSAGE_ID, query("before", ID, "only replies with a smaller id"), limit(50, 100)),
                tag="messages",
                returns=obj(
                    ("parent", "messages", "hasMore"),
                    parent=ref("Message"),
                    messages=arr(ref("Message")),
                    hasMore={"type": "boolean"},
                ),
            )
        },
        "/me/push-endpoints": {
            "get": op(
                "The caller's offline-push endpoints (one per device)", "user", tag="push",
                returns=obj(("endpoints",), endpoints=arr(ref("PushEndpoint"))),
            ),
            "post": op(
                "Register (or replace) a device's offline-push endpoint", "user", status=201,
                tag="push", returns=ref("PushEndpoint"),
                body=obj(
                    ("url",), kind=enum("unifiedpush", "webhook"), url=string(maxLength=2000),
                    deviceId=IDENT, includeText={"type": "boolean"},
                ),
            ),
        },
        "/me/push-endpoints/{endpointId}": {
            "delete": op(
                "Remove an offline-push endpoint", "user",
                params=(path("endpointId", TOKEN),), status=204, tag="push",
            )
        },
        "/me/conversations": {
            "get": op(
                "The caller's inbox: conversations, newest first", "user", tag="inbox",
                params=(limit(50, 100), query("before", string(), "the cursor of the previous page")),
                returns=obj(
                    ("conversations",), conversations=arr({"type": "object"}), next=nullable(string())
                ),
            )
        },
        "/media": {
            "post": op(
                "Upload a file (multipart field `file`)", "any", status=201, tag="media",
                params=(
                    query("kind", enum("image", "video", "audio", "file")),
                    query("uploader", IDENT, "with the API key: the user it belongs to"),
                ),
                content={
                    "multipart/form-data": {
                        "schema": obj(("file",), file=string(contentMediaType="application/octet-stream"))
                    }
                },
                returns=ref("Media"), errors=("400", "401", "403", "413"),
            )
        },
        "/media/{mediaId}": {
            "get": op(
                "A media object with fresh signed links", "user", params=(path("mediaId", TOKEN),),
                returns=ref("Media"), tag="media",
            ),
            "delete": op(
                "Delete a media file (quarantined or not)", "admin",
                params=(path("mediaId", TOKEN),), status=204, tag="media",
            ),
        },
        "/me/decisions": {
            "get": op(
                "The caller's decisions (statements of reasons)", "user", params=(limit(100, 500),),
                returns=obj(("decisions",), decisions=arr({"type": "object"})), tag="decisions",
            )
        },
        "/decisions/{decisionId}/appeal": {
            "post": op(
                "Appeal a decision", "user", params=(path("decisionId", TOKEN),), status=201,
                body=obj(note=string()), tag="decisions", errors=("400", "401", "403", "404", "409"),
                returns=obj(("appealId", "state"), appealId=string(), state=string()),
            )
        },
        "/moderation/appeals/{appealId}/decide": {
            "post": op(
                "Decide an appeal", "staff", params=(path("appealId", TOKEN),), tag="decisions",
                body=obj(("outcome", "reason"), outcome=enum("upheld", "rejected"), reason=string()),
                errors=("400", "401", "403", "404", "409"),
            )
        },
        "/users/{uid}/restrictions": {
            "get": op("A user's restrictions", "staff", params=(UID,), tag="decisions"),
            "post": op(
                "Mute or shadow-ban a user", "staff", params=(UID,), status=201, tag="decisions",
                body=obj(
                    ("kind",), kind=enum("mute", "shadow_ban"), guid=IDENT,
                    until={"type": "integer", "minimum": 0}, reason=string(),
                ),
            ),
        },
        "/users/{uid}/restrictions/{restrictionId}": {
            "delete": op(
                "Lift a restriction", "staff", params=(UID, path("restrictionId", TOKEN)),
                tag="decisions",
            )
        },
        "/users/{uid}/strikes": {
            "get": op("A user's decisions, appeals and restrictions", "staff", params=(UID,), tag="decisions")
        },
        "/moderation/terms": {
            "get": op("The terms catalogue", "staff", tag="decisions"),
            "put": op(
                "Replace the terms catalogue", "admin", tag="decisions",
                body=obj(("terms",), terms=arr({"type": "object"})),
            ),
        },
        "/moderation/rules": {
            "get": op("Every rule", "staff", tag="moderation", returns=obj(rules=arr(RULE))),
            "post": op(
                "Create a rule", "staff", body=RULE, status=201, returns=RULE, tag="moderation",
                errors=("400", "401", "403", "409"),
            ),
        },
        "/moderation/rules/{ruleId}": {
            "get": op("A rule", "staff", params=(RULE_ID,), returns=RULE, tag="moderation"),
            "put": op("Replace a rule", "staff", params=(RULE_ID,), body=RULE, returns=RULE, tag="moderation"),
            "delete": op("Delete a rule", "staff", params=(RULE_ID,), status=204, tag="moderation"),
        },
        "/moderation/rules/{ruleId}/revisions": {
            "get": op("A rule's revisions, newest first", "staff", params=(RULE_ID,), tag="moderation")
        },
        "/moderation/rules/{ruleId}/dry-run": {
            "post": op(
                "What a rule would have matched in stored history", "staff", params=(RULE_ID,),
                body=obj(days={"type": "integer", "minimum": 1, "maximum": 365}, rule=RULE),
                tag="moderation",
            )
        },
        "/moderation/rules/{ruleId}/reset": {
            "post": op(
                "Store the shipped default rule again (a new revision, or the rule re-created:"
                " 201)", "staff", params=(RULE_ID,), returns=RULE, tag="moderation",
                errors=("400", "401", "403", "404", "409"),
            )
        },
        "/moderation/defaults": {
            "get": op(
                "The rules and settings a fresh server starts with, each rule compared with the"
                " stored one", "staff", tag="moderation",
                returns=obj(rules=arr({"type": "object"}), settings={"type": "object"}),
            )
        },
        "/moderation/lists": {
            "get": op("Every list", "staff", tag="moderation", returns=obj(lists=arr(LIST))),
            "post": op(
                "Create a list", "staff", body=LIST, status=201, returns=LIST, tag="moderation",
                errors=("400", "401", "403", "409", "413"),
            ),
        },
        "/moderation/lists/{listId}": {
            "get": op("A list", "staff", params=(LIST_ID,), returns=LIST, tag="moderation"),
            "put": op("Replace a list", "staff", params=(LIST_ID,), body=LIST, returns=LIST, tag="moderation"),
            "delete": op("Delete a list", "staff", params=(LIST_ID,), status=204, tag="moderation"),
        },
        "/moderation/lists/{listId}/images": {
            "post": op(
                "Add an image's perceptual hashes to an image_hashes list", "staff",
                params=(LIST_ID,), status=201, tag="moderation",
                content={"multipart/form-data": {"schema": obj(("file",), file=string(contentMediaType="application/octet-stream"))}},
                errors=("400", "401", "403", "404", "413"),
            )
        },
        "/moderation/settings": {
            "get": op("Moderation settings", "staff", tag="moderation"),
            "put": op("Replace the moderation settings", "staff", body={"type": "object"}, tag="moderation"),
        },
        "/moderation/webhooks/deliveries": {
            "get": op(
                "The outgoing webhook delivery log, newest first", "staff", tag="moderation",
                params=(
                    query("status", enum("pending", "delivered", "failed")),
                    query("event", string()),
                    limit(100, 500),
                ),
            )
        },
        "/moderation/queue": {
            "get": op(
                "The review queue", "staff", tag="moderation",
                params=(
                    query("state", enum("review", "flagged", "reported", "disapproved", "appeals")),
                    limit(100, 500),
                ),
            )
        },
        "/moderation/messages/{messageId}/approve": {
            "post": op(
                "Approve a held message", "staff", params=(MESSAGE_ID,), returns=message,
                body=obj(reason=string()), tag="moderation", errors=("400", "401", "403", "404", "409"),
            )
        },
        "/moderation/messages/{messageId}/disapprove": {
            "post": op(
                "Disapprove a message", "staff", params=(MESSAGE_ID,), returns=message,
                body=obj(reason=string()), tag="moderation", errors=("400", "401", "403", "404", "409"),
            )
        },
        "/moderation/evaluate": {
            "post": op(
                "Every detector's confidences and the verdict the rules would give", "staff",
                tag="moderation",
                body=obj(
                    ("text",), text=string(), messageType=string(), sender=IDENT,
                    receiver=IDENT, receiverType=enum("user", "group"),
                ),
            )
        },
        "/moderation/messages/{messageId}/card": {
            "get": op(
                "The review card: the message, its context, the sender's history, reports and"
                " the detectors' scores", "staff", params=(MESSAGE_ID,), tag="moderation",
            )
        },
        "/operators/login": {
            "post": op(
                "Operator sign-in (dashboard); sets the session cookie", "none", tag="operators",
                body=obj(("name", "password"), name=string(), password=string(), code=string()),
                errors=("400", "401", "403", "429"),
            )
        },
        "/operators/login-options": {
            "get": op("How operators may sign in (demo accounts, OpenID Connect)", "none",
                      tag="operators", errors=()),
        },
        "/operators/oidc/start": {
            "get": op("Begin OpenID Connect sign-in (302 to the identity provider)", "none",
                      tag="operators", status=302, errors=("404",)),
        },
        "/operators/oidc/callback": {
            "get": op(
                "The identity provider's redirect back (302 to /dashboard)", "none",
                tag="operators", status=302, errors=("400", "403"),
                params=(query("code", string()), query("state", string())),
            )
        },
        "/operators/logout": {
            "post": op("Sign out (clears the cookie)", "operator", tag="operators", status=204),
        },
        "/operators/me": {
            "get": op("The signed-in operator and a CSRF token", "operator", tag="operators"),
        },
        "/operators/me/totp": {
            "post": op("Begin TOTP enrolment", "operator", tag="operators"),
        },
        "/operators/me/totp/confirm": {
            "post": op("Confirm TOTP enrolment; the recovery codes", "operator",
                       tag="operators", body=obj(("code",), code=string())),
        },
        "/operators": {
            "get": op("The operators", "operator-admin", tag="operators"),
            "post": op(
                "Add an operator", "operator-admin", tag="operators", status=201,
                body=obj(("name", "password"), name=string(), password=string(),
                         role=enum("viewer", "moderator", "admin"), groups=arr(IDENT)),
                errors=("400", "401", "403", "409"),
            ),
        },
        "/operators/{name}": {
            "get": op("One operator", "operator-admin", tag="operators",
                      params=(path("name", TOKEN),)),
            "patch": op(
                "Change an operator's role, groups, disabled or locked state", "operator-admin",
                tag="operators", params=(path("name", TOKEN),),
                body=obj(role=enum("viewer", "moderator", "admin"), groups=arr(IDENT),
                         disabled={"type": "boolean"}, locked={"type": "boolean"}),
            ),
        },
        "/operators/{name}/password": {
            "post": op("Set an operator's password", "operator-admin", tag="operators",
                       params=(path("name", TOKEN),), status=204,
                       body=obj(("password",), password=string())),
        },
        "/groups/{guid}/audit": {
            "get": op(
                "The audit records that concern the group (its moderators and up, or staff)",
                "user", params=(GUID, query("since", {"type": "integer", "minimum": 0, "maximum": INT_MAX})),
                tag="audit", returns=obj(("entries",), entries=arr({"type": "object"})),
            )
        },
        "/groups/{guid}/reports": {
            "get": op(
                "Open reports on the group's messages (the group's moderators and up, or staff)",
                "user", params=(GUID, query("limit", {"type": "integer", "minimum": 1, "maximum": 500})),
                tag="moderation",
            )
        },
        "/moderation/probation": {
            "get": op("New-account probation", "staff", tag="moderation"),
            "put": op(
                "Set new-account probation (held for review, or no links and media)", "admin",
                tag="moderation",
                body=obj(
                    days={"type": "integer", "minimum": 0, "maximum": 365},
                    messages={"type": "integer", "minimum": 0, "maximum": 10000},
                    mode=enum("review", "no_links_media"),
                ),
            ),
        },
        "/moderation/rules/{ruleId}/escalation": {
            "get": op("A rule's escalation ladder", "staff", params=(RULE_ID,), tag="moderation"),
            "put": op(
                "Set a rule's escalation ladder (warn -> mute -> kick -> ban)", "admin",
                params=(RULE_ID,), tag="moderation",
                body=obj(
                    windowSeconds={"type": "integer", "minimum": 60},
                    steps=arr(obj(("violations", "measure"),
                                  violations={"type": "integer", "minimum": 2},
                                  measure=enum("mute", "kick", "ban"),
                                  durationSeconds={"type": "integer", "minimum": 0})),
                ),
            ),
        },
        "/retention": {
            "get": op("The retention policy: the app's period, groups' own, holds", "admin", tag="retention"),
            "put": op(
                "Set the app's retention period (0: keep forever)", "admin", tag="retention",
                body=obj(("retentionSeconds",), retentionSeconds={"type": "integer", "minimum": 0}),
            ),
        },
        "/groups/{guid}/retention": {
            "put": op(
                "Set a group's own retention period (null: follow the app's)", "admin",
                params=(GUID,), tag="retention",
                body=obj(
                    ("retentionSeconds",),
                    retentionSeconds=nullable({"type": "integer", "minimum": 0}),
                ),
            )
        },
        "/retention/holds": {
            "post": op(
                "Hold a group or a 1:1 conversation from deletion", "admin", status=201,
                tag="retention",
                body=obj(
                    groupId=IDENT, uids=arr(IDENT, minItems=2, maxItems=2),
                    kind=string(), reason=string(),
                ),
            )
        },
        "/retention/holds/{holdId}": {
            "delete": op(
                "Release a hold", "admin", params=(path("holdId", TOKEN),), status=204,
                tag="retention",
            )
        },
        "/retention/run": {
            "post": op("Run the retention job now", "admin", tag="retention"),
        },
        "/audit": {
            "get": op(
                "The audit log", "admin", tag="audit",
                params=(query("since", {"type": "integer", "minimum": 0, "maximum": INT_MAX}),),
                returns=obj(("entries",), entries=arr({"type": "object"})),
            )
        },
    }  # fmt: skip
    return {f"/api/v1{k}": v for k, v in p.items()}


def other_paths() -> dict[str, dict[str, Any]]:
    """The HTTP routes outside ``/api/v1`` that clients call: health, metrics, media links."""
    token = query("token", string(), "the signed link's token")
    download = {
        "description": "the file's bytes (a Range request gets 206)",
        "content": {"application/octet-stream": {"schema": string(format="binary")}},
    }

    def media(summary: str) -> dict[str, Any]:
        get = {
            "summary": summary,
            "tags": ["media"],
            "security": [],
            "parameters": [path("mediaId", TOKEN), token],
            "responses": {
                "200": download,
                "206": download,
                "403": {
                    "description": "bad or expired token",
                    "content": {JSON: {"schema": ref("Error")}},
                },
                "404": {
                    "description": "no such media",
                    "content": {JSON: {"schema": ref("Error")}},
                },
                "416": {"description": "range not satisfiable"},
            },
        }
        return {"get": get, "head": {**get, "summary": summary + " (headers only)"}}

    return {
        "/healthz": {
            "get": {
                "summary": "Liveness and the number of connections",
                "tags": ["meta"],
                "security": [],
                "responses": {"200": {"description": "up", "content": {JSON: {"schema": obj(status=string(), connections={"type": "integer"})}}}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "tags": ["meta"],
                "security": [],
                "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {"schema": string()}}}},
            }
        },
        "/media/{mediaId}": media("Download a media file by its signed link"),
        "/media/{mediaId}/thumbnail": media("Download an image's or video's thumbnail"),
    }  # fmt: skip


COMPONENTS: dict[str, Any] = {
    "securitySchemes": {
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "staffSession": {"type": "apiKey", "in": "cookie", "name": "__Host-parley_staff"},
    },
    "schemas": {
        "Error": obj(
            ("code", "message", "details"),
            code=string(),
            message=string(),
            details={"type": "object"},
        ),
        "User": obj(
            ("uid", "name", "role"),
            uid=IDENT,
            name=string(),
            role=enum("user", "moderator", "admin"),
            tags=arr(string()),
            metadata={"type": "object"},
            createdAt={"type": "integer"},
            updatedAt={"type": "integer"},
            banned={"type": "boolean"},
        ),
        "Group": obj(
            ("guid", "name", "type"),
            guid=IDENT,
            name=string(),
            type=enum("public", "private"),
            tags=arr(string()),
            owner=nullable(IDENT),
            membersCount={"type": "integer"},
            members=arr(obj(uid=IDENT, scope=string())),
        ),
        "Message": obj(
            ("id", "conversationId", "sender", "receiver", "receiverType", "type"),
            id={"type": "integer"},
            muid=string(),
            conversationId=string(),
            sender=IDENT,
            receiver=IDENT,
            receiverType=enum("user", "group"),
            category=enum("message", "custom", "action"),
            type=string(),
            text=nullable(string()),
            attachment=nullable({"type": "object"}),
            data={},
            metadata={"type": "object"},
            tags=arr(string()),
            parentId=nullable({"type": "integer"}),
            reactions={
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "emoji -> count (history, thread pages, GET /messages/{id})",
            },
            myReactions=arr(string(), description="the viewer's own reactions (same places)"),
            replyCount={"type": "integer", "description": "delivered replies (same places)"},
            sentAt={"type": "integer"},
            updatedAt={"type": "integer"},
            editedAt={"type": "integer"},
            deletedAt={"type": "integer"},
            moderationStatus=enum("unmoderated", "pending", "approved", "disapproved"),
        ),
        "Reaction": obj(
            ("messageId", "conversationId", "uid", "emoji", "action", "reactions"),
            messageId={"type": "integer"},
            conversationId=string(),
            uid=IDENT,
            emoji=string(),
            action=enum("added", "removed"),
            reactions={"type": "object", "additionalProperties": {"type": "integer"}},
        ),
        "PushEndpoint": obj(
            ("endpointId", "deviceId", "kind", "url", "includeText", "createdAt"),
            endpointId=string(),
            deviceId=IDENT,
            kind=enum("unifiedpush", "webhook"),
            url=string(),
            includeText={"type": "boolean"},
            createdAt={"type": "integer"},
            secret=string(description="webhook endpoints, when registered: the HMAC key"),
        ),
        "Media": obj(
            ("mediaId",),
            mediaId=string(),
            name=string(),
            mimeType=string(),
            size={"type": "integer"},
            kind=string(),
            url=string(),
        ),
    },
}


def document(version: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Parley REST API",
            "version": version,
            "description": "The REST half of the Parley protocol (docs/protocol.md). The "
            "WebSocket at /ws is described there, not here.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": {**api_paths(), **other_paths()},
        "components": COMPONENTS,
    }
