"""Detectors: one module per detector behind the ``Detector`` protocol of ``base``.

``moderation.engine.default_detectors()`` builds the local, I/O-free ones.
"""
