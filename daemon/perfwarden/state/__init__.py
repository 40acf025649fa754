"""State: ``state.db``: the windows, alerts, learning and history that outlive restarts.

May import ``series``, ``alerts``, ``optimize``, ``config``, ``logs`` and the root
utilities; never ``ingest``, ``views``, ``commands``, ``control`` or ``app``.
"""
