"""Storage: the ports services depend on (``ports``, ``types``) and their implementations.

``sqlite/`` is the embedded default; another backend is a sibling package implementing the
same ports. Only the composition root (``server/app.py``) names an implementation.
"""
