"""Parley clients: the async Python SDK (``client.sdk``) and the static web clients (``client.web``)."""
