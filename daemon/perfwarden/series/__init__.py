"""Series: rolling windows, the metric store, and the statistics read off them.

Windows, Student-t quantiles, summaries and intervals, trends, and expiry of quiet
series. May import ``config``, ``logs`` and the root utilities; never ``ingest``,
``alerts``, ``optimize``, ``views``, ``commands``, ``control`` or ``app``.
"""
