"""Parley: a self-hostable real-time chat server with inline moderation."""

__version__ = "0.1.0"
