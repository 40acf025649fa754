"""Ingest: the metric sockets, the DogStatsD parser, the receivers that feed the store.

Bytes in, parsed samples and per-reason line counts out. May import ``series``,
``logs``, ``config`` and the root utilities (``errors``, ``paths``); never
``alerts``, ``optimize``, ``views``, ``commands``, ``control`` or ``app``.
"""
