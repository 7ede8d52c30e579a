"""Storage: the ports services depend on (``ports``, ``types``) and their implementations.

``sqlite/`` is the embedded default; ``postgres/`` (``--database-url``) is a sibling package
implementing the same ports; both seal message content with ``sealing``. Only the composition
root (``server/app.py``) names an implementation.
"""
