"""Series expiry: series that received nothing for ``expire_after`` are forgotten.

Series come and go: the process sampler tags ``pid:<n>``, so a restarted process
starts new series; clients put request ids or pod names in tags. Without expiry the
dead ones would hold their windows, alert states, rows in ``state.db``, lines in
``/metrics`` and slots under ``statistics.max_series`` for ever, until new series
are dropped. As DogStatsD and statsd do, a series idle for longer than its metric's
``expire_after`` (``statistics.expire_after``, 1 h by default, unless the metric sets
its own; ``0`` or ``off``: never) is forgotten on the next evaluation tick:

- it leaves the store, which frees its slot at once; a later line for the same key
  starts a new, empty series;
- its alert is closed and forgotten: a pending one is ``alert.cancelled``, a firing
  or ``no_data`` one ``alert.resolved`` (logged and published like any transition);
- its rows leave ``state.db`` at the next checkpoint, so it does not come back after
  a restart (and the time the daemon was down does not count as idle).

Each tick that expires something is logged as ``series.expired`` at most every
:data:`LOG_PERIOD` seconds; expirations in between are folded into the next line::

    {"event": "series.expired", "count": 3, "more": 0,
     "series": [{"key": "memory_usage_mb|g|#pid:4121,process:api",
                 "metric": "memory_usage_mb", "idle_seconds": 3601.0}, ...],
     "by_metric": {"memory_usage_mb": 3}, ...}

``series`` names the first :data:`LOG_EXAMPLES` of them (a tick's longest idle
first), ``more`` counts the rest, ``by_metric`` counts them all by metric (the
:data:`LOG_EXAMPLES` most frequent metrics). ``perfwarden status --json`` counts every
expiry in ``series_expired``, ``/metrics`` in ``perfwarden_series_expired_total``.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from perfwarden.logs.setup import RateLimiter, get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from perfwarden.config.load import Config
    from perfwarden.series.store import MetricStore, Series

__all__ = ["LOG_EXAMPLES", "LOG_PERIOD", "Retirer", "SeriesExpiry"]

_log = get_logger("perfwarden.expiry")

#: Least seconds between two ``series.expired`` lines.
LOG_PERIOD: Final = 10.0
#: Series named one by one in a ``series.expired`` line (and metrics counted).
LOG_EXAMPLES: Final = 10


class Retirer(Protocol):
    """What closes the alerts of expired series (the alert evaluator)."""

    def retire(self, gone: Iterable[Series]) -> None: ...


class SeriesExpiry:
    """Forgets idle series everywhere the daemon keeps them; counts and logs it.

    ``forget_saved`` is told the keys of expired series (the state store's
    :meth:`~perfwarden.state.persistence.StateStore.forget`).
    """

    def __init__(
        self,
        store: MetricStore,
        evaluator: Retirer,
        forget_saved: Callable[[Iterable[str]], None],
        config: Callable[[], Config],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._evaluator = evaluator
        self._forget_saved = forget_saved
        self._config = config
        self._clock = clock
        #: Series expired since the daemon started.
        self.expired = 0
        self._limiter = RateLimiter(LOG_PERIOD, clock)
        self._examples: list[tuple[Series, float]] = []
        self._by_metric: collections.Counter[str] = collections.Counter()

    def sweep(self) -> list[tuple[Series, float]]:
        """Expire what is idle now (once per evaluation tick); return it with the
        idle seconds of each, longest idle first."""
        expired = self._store.expire(self._clock(), self._config().metric_expire_after)
        if expired:
            gone = [series for series, _ in expired]
            self._evaluator.retire(gone)
            self._forget_saved([series.key for series in gone])
            self.expired += len(expired)
            room = LOG_EXAMPLES - len(self._examples)
            self._examples.extend(expired[: max(room, 0)])
            self._by_metric.update(series.name for series in gone)
        if self._by_metric and self._limiter.allow():
            self._log()
        return expired

    def _log(self) -> None:
        count = self._by_metric.total()
        _log.info(
            "series.expired",
            count=count,
            more=count - len(self._examples),
            series=[_example(series, idle) for series, idle in self._examples],
            by_metric=dict(self._by_metric.most_common(LOG_EXAMPLES)),
            expired_total=self.expired,
        )
        self._examples = []
        self._by_metric.clear()


def _example(series: Series, idle: float) -> dict[str, Any]:
    return {"key": series.key, "metric": series.name, "idle_seconds": round(idle, 3)}
