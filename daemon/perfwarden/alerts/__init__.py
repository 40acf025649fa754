"""Alerts: the per-series alert state machine, the evaluator that drives it, reports.

Judges series against their thresholds and publishes alert events. May import
``series``, ``config``, ``logs`` and the root utilities; never ``ingest``,
``optimize``, ``views``, ``commands``, ``control`` or ``app``.
"""
