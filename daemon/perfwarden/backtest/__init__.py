"""Backtest: replay history through the daemon's own judgement on a simulated clock.

:mod:`.sources` reads history (the recording, DogStatsD lines with ``|T`` stamps,
CSV exports) into time-ordered chunks and reports bad input by file and line;
:mod:`.replay` feeds them to a real :class:`~perfwarden.series.store.MetricStore`,
:class:`~perfwarden.alerts.evaluator.Evaluator` and
:class:`~perfwarden.series.expiry.SeriesExpiry`, ticking as the daemon does
(:func:`~perfwarden.alerts.tick.evaluation_tick`), so ``for:``, ``missing_after``,
hysteresis and expiry behave exactly as live; :mod:`.timeline` turns the alert
events into per-series timelines, summaries and the difference between two configs.

May import ``ingest`` (the parser), ``series``, ``alerts``, ``recording``, ``config``,
``logs`` and the root utilities; never ``optimize``, ``views``, ``commands``,
``control``, ``state`` or ``app``: a backtest writes nothing to the live state.
"""
