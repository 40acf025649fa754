"""Sampling: processes and the daemon itself sampled with psutil into the store's sink.

May import ``config``, ``logs`` and the root utilities; never ``alerts``,
``optimize``, ``views``, ``commands``, ``control`` or ``app``.
"""
