"""Where alerts go beyond the daemon's own log: Alertmanager's v2 API.

May import ``alerts``, ``series``, ``config``, ``logs`` and the label naming of
``views.exposition_text``; never ``optimize``, ``commands``, ``control`` or ``app``
(the composition root builds a route and subscribes it to the evaluator).
"""
