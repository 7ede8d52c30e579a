"""Parley's pure moderation engine: rules, word lists, detectors, verdicts and the pipeline.

Nothing here imports ``server`` or ``client``; the engine and rules do no I/O.
"""
