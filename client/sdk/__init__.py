"""The async Python SDK for Parley: :class:`ParleyClient` (WebSocket) and
:class:`RestClient` (``/api/v1``). It imports neither ``server`` nor ``moderation``."""

from client.sdk.errors import ServerError
from client.sdk.events import Event
from client.sdk.rest import RestClient
from client.sdk.ws import ParleyClient

__all__ = ["Event", "ParleyClient", "RestClient", "ServerError"]
