"""Detectors that do I/O: the Custom API webhook and OpenAI (moderation endpoint and prompts).

Each provider is a ``Detector`` wrapped in a ``ProviderGuard`` (timeout, concurrency limit,
circuit breaker) and applies its ``actionOnError`` policy itself, so a failing provider never
raises into the engine. Pure of server imports: the server passes configuration, the API key
and a ``Reporter`` for metrics and failure events.
"""
