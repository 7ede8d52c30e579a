"""Detectors: one module per detector behind the ``Detector`` protocol of ``base``.

``moderation.local_detectors.build_detectors()`` builds the local, I/O-free ones.
"""
