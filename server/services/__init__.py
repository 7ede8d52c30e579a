"""The chat services, one module per resource; see docs/architecture.md for the order they
are built in (users -> blocks, groups -> fanout -> verdicts -> moderation -> messaging)."""
