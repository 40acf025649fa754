"""The evaluator: observes series, steps their alert state machines, publishes events.

It runs after ingest for the series updated since its previous pass (so a violation
is seen at once, not at the next tick; :mod:`perfwarden.alerts.pacing` decides
when: at most once per ``evaluation.coalesce``, at once for a value past a level)
and on every evaluation tick for all series (so ``for`` hold times elapse and
silent series become ``no_data``).

The observation depends on ``evaluation.basis``: ``sample`` the newest value, ``mean``
the mean of the newest ``evaluation.window`` samples, ``ci`` their Student-t
confidence interval (none below ``statistics.min_samples``). Each costs O(window of
evaluation), independent of the series' full window.

Every transition is logged once as ``alert.<transition>`` and handed to subscribers
(the optimizer engine) as an :class:`AlertEvent` unless a silence matches.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from perfwarden.alerts.machine import (
    ACTIONS,
    AlertState,
    Level,
    SeriesAlert,
    Transition,
    Verdict,
    judge_observation,
    step,
)
from perfwarden.config.load import Basis, Bound, Config, MetricConfig
from perfwarden.logs.setup import get_logger
from perfwarden.series.recent import recent_moments
from perfwarden.series.tdist import two_sided_critical

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from perfwarden.series.store import MetricStore, Series

__all__ = ["AlertEvent", "Evaluator", "Silence", "Silences"]

_log = get_logger("perfwarden.alerts")
_LOUD = {Transition.FIRED, Transition.ESCALATED, Transition.NO_DATA}
_add_reduce = np.add.reduce
#: Series per pass from which their recent statistics are computed in bulk.
_BULK_FROM: Final = 2


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert transition, as subscribers inside the daemon receive it."""

    transition: Transition
    metric: str
    tags: dict[str, str]
    series: str
    state: AlertState
    level: Level | None
    previous_level: Level | None
    basis: Basis
    observed: tuple[float, float] | None
    threshold: float | None
    action: str | None
    at: float
    silenced: bool = False
    #: Why the alert ended when its value did not say so (``expired``).
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (also the log line's key/values)."""
        fields = {
            "metric": self.metric,
            "tags": self.tags,
            "series": self.series,
            "state": self.state.value,
            # "severity", not "level": every log line's "level" is its log level.
            "severity": self.level.value if self.level else None,
            "previous_severity": (
                self.previous_level.value if self.previous_level else None
            ),
            "basis": self.basis.value,
            "observed": list(self.observed) if self.observed else None,
            "threshold": self.threshold,
            "action": self.action,
            "silenced": self.silenced,
        }
        if self.reason is not None:
            fields["reason"] = self.reason
        return fields


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes the events of a metric's series (optionally only those with some tags)."""

    id: str
    metric: str
    matchers: dict[str, str]
    until: float
    created: float
    comment: str = ""

    def matches(self, metric: str, tags: dict[str, str]) -> bool:
        """Does this silence cover a series of ``metric`` with ``tags``?"""
        if metric != self.metric:
            return False
        return all(tags.get(k) == v for k, v in self.matchers.items())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "id": self.id,
            "metric": self.metric,
            "matchers": self.matchers,
            "until": self.until,
            "created": self.created,
            "comment": self.comment,
        }


@dataclass(slots=True)
class Silences:
    """Active silences; expired ones disappear when looked at."""

    wall: Callable[[], float] = time.time
    _items: dict[str, Silence] = field(default_factory=dict)

    def add(
        self, metric: str, matchers: dict[str, str], duration: float, comment: str = ""
    ) -> Silence:
        """Silence ``metric`` (the series matching ``matchers``) for ``duration``."""
        now = self.wall()
        silence_id = uuid.uuid4().hex[:8]
        silence = Silence(silence_id, metric, matchers, now + duration, now, comment)
        self._items[silence.id] = silence
        return silence

    def remove(self, silence_id: str) -> bool:
        """Lift a silence early; False when there is no such silence."""
        return self._items.pop(silence_id, None) is not None

    def active(self) -> list[Silence]:
        """Silences still in force (expired ones are forgotten)."""
        now = self.wall()
        for key in [k for k, s in self._items.items() if s.until <= now]:
            del self._items[key]
        return list(self._items.values())

    def restore(self, saved: Iterable[Silence]) -> None:
        """Re-install silences saved by a previous run (expired ones are skipped)."""
        now = self.wall()
        for silence in saved:
            if silence.until > now:
                self._items[silence.id] = silence

    def covers(self, metric: str, tags: dict[str, str]) -> bool:
        """Is a series of ``metric`` with ``tags`` silenced now?"""
        return any(s.matches(metric, tags) for s in self.active())


class Evaluator:
    """Alert states of every series with configured levels."""

    def __init__(
        self,
        store: MetricStore,
        config: Callable[[], Config],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._wall = wall
        self.alerts: dict[str, SeriesAlert] = {}
        self.observations: dict[str, tuple[float, float]] = {}
        #: Per series, the sample count at its last observation (sample basis).
        self._seen: dict[str, int] = {}
        self.silences = Silences(wall)
        self.subscribers: list[Callable[[AlertEvent], None]] = []
        #: Evaluations run (one per series per pass), for self-monitoring.
        self.evaluations = 0

    # -- observing ------------------------------------------------------------------

    def observe(
        self,
        series: Series,
        config: Config,
        bound: Bound = Bound.UPPER,
        recent: tuple[float, float] | None = None,
    ) -> tuple[float, float] | None:
        """The observation compared with thresholds on the configured basis.

        ``sample`` takes the worst value (by ``bound``) among those that arrived
        since the series was last observed, so how a sender batches its lines does
        not change what is judged; ``mean`` and ``ci`` need ``min_samples`` values.
        ``recent``: the mean and standard deviation of the newest
        ``evaluation.window`` samples when already computed (:func:`_bulk_recent`).
        """
        window = series.window
        size = len(window)
        if size == 0:
            return None
        evaluation = config.evaluation
        if evaluation.basis is Basis.SAMPLE:
            seen = self._seen.get(series.key, 0)
            self._seen[series.key] = window.total_count
            fresh = window.tail(min(size, max(window.total_count - seen, 1)))
            worst = float(fresh.max() if bound is Bound.UPPER else fresh.min())
            return (worst, worst)
        count = min(size, evaluation.window)
        if count < max(config.statistics.min_samples, 2):
            return None
        if recent is not None:
            mean, sd = recent
            if evaluation.basis is Basis.MEAN:
                return (mean, mean)
        else:
            values = window.tail(count)
            # np.mean and np.std's two passes, without their Python-level wrappers
            # (28 -> 8 us per series; passes judging many series use _bulk_recent).
            mean = float(_add_reduce(values)) / count
            if evaluation.basis is Basis.MEAN:
                return (mean, mean)
            deviations = values - mean
            sd = math.sqrt(float(np.vdot(deviations, deviations)) / (count - 1))
        half = two_sided_critical(config.statistics.confidence_level, count - 1) * sd
        half /= math.sqrt(count)
        return (mean - half, mean + half)

    # -- evaluating -----------------------------------------------------------------

    def evaluate(self, series_list: Iterable[Series]) -> None:
        """Observe and step each series (those of metrics with levels)."""
        config = self._config()
        now = self._clock()
        judged: list[tuple[Series, MetricConfig]] = []
        for series in series_list:
            metric = config.metrics.get(series.name)
            if metric is not None and metric.has_levels:
                judged.append((series, metric))
        recent = _bulk_recent([series for series, _ in judged], config)
        for series, metric in judged:
            self._evaluate_one(series, metric, config, now, recent.get(series.key))

    def evaluate_updated(self) -> None:
        """Evaluate the series that received samples since the last call."""
        updated = self._store.take_updated()
        if updated:
            self.evaluate(updated)

    def tick(self) -> None:
        """Periodic pass: hold times elapse, silent series become ``no_data``."""
        config = self._config()
        now = self._clock()
        missing_after = config.evaluation.missing_after
        for series in self._store:
            metric = config.metrics.get(series.name)
            if metric is None or not metric.has_levels:
                continue
            alert = self.alerts.get(series.key, SeriesAlert(since=now))
            if alert.state is AlertState.NO_DATA:
                continue
            if series.last_update and now - series.last_update > missing_after:
                silent = SeriesAlert(AlertState.NO_DATA, since=now)
                self._set(series, metric, config, alert, silent, Transition.NO_DATA)
                continue
            self._evaluate_one(series, metric, config, now)

    def _evaluate_one(
        self,
        series: Series,
        metric: MetricConfig,
        config: Config,
        now: float,
        recent: tuple[float, float] | None = None,
    ) -> None:
        self.evaluations += 1
        alert = self.alerts.get(series.key)
        if alert is None:
            alert = self.alerts[series.key] = SeriesAlert(since=now)
        observation = self.observe(series, config, metric.bound, recent)
        if observation is None:
            return
        self.observations[series.key] = observation
        if alert.state is AlertState.NO_DATA:
            resumed, transition = step(alert, _NEUTRAL, now, 0.0)
            self._set(series, metric, config, alert, resumed, transition)
            alert = resumed
        verdict = judge_observation(
            *observation,
            bound=metric.bound,
            warning=metric.warning,
            critical=metric.critical,
            hysteresis=config.evaluation.hysteresis,
        )
        hold = metric.for_ if metric.for_ is not None else config.evaluation.for_
        new, transition = step(alert, verdict, now, hold)
        if transition is not None or new is not alert:
            self._set(series, metric, config, alert, new, transition)

    def _set(  # noqa: PLR0917 - private; the call sites read clearly
        self,
        series: Series,
        metric: MetricConfig,
        config: Config,
        old: SeriesAlert,
        new: SeriesAlert,
        transition: Transition | None,
        reason: str | None = None,
    ) -> None:
        self.alerts[series.key] = new
        if transition is None:
            return
        level = new.level or old.level
        threshold = None
        if level is Level.CRITICAL:
            threshold = metric.critical
        elif level is Level.WARNING:
            threshold = metric.warning
        tags = series.tag_dict
        event = AlertEvent(
            transition=transition,
            metric=series.name,
            tags=tags,
            series=series.key,
            state=new.state,
            level=new.level,
            previous_level=old.level,
            basis=config.evaluation.basis,
            observed=self.observations.get(series.key),
            threshold=threshold,
            action=ACTIONS.get(new.level) if new.level else None,
            at=self._wall(),
            silenced=self.silences.covers(series.name, tags),
            reason=reason,
        )
        log = _log.warning if transition in _LOUD else _log.info
        log(f"alert.{transition.value}", **event.as_dict())
        if event.silenced:
            return
        for subscriber in list(self.subscribers):
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - one subscriber must not stop the others
                _log.exception("alert.subscriber_failed", subscriber=repr(subscriber))

    # -- reading --------------------------------------------------------------------

    def status_of(self, series: Series) -> str:
        """The series' status word for ``stats``.

        One of ``ok``, ``pending``, ``warning``, ``critical``, ``no_data``,
        ``insufficient_data`` or ``unconfigured``.
        """
        metric = self._config().metrics.get(series.name)
        if metric is None or not metric.has_levels:
            return "unconfigured"
        alert = self.alerts.get(series.key)
        if alert is None or series.key not in self.observations:
            return "insufficient_data"
        if alert.state is AlertState.FIRING and alert.level is not None:
            return alert.level.value
        return alert.state.value

    def seen(self, key: str) -> int | None:
        """The sample count at the series' last observation (sample basis)."""
        return self._seen.get(key)

    def restore_alert(
        self,
        key: str,
        alert: SeriesAlert,
        observation: tuple[float, float] | None,
        seen: int | None,
    ) -> None:
        """Install a saved alert state without a transition (no event, no log):
        a firing alert stays firing across a restart and does not fire again."""
        self.alerts[key] = alert
        if observation is not None:
            self.observations[key] = observation
        if seen is not None:
            self._seen[key] = seen

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the states of series whose key ``keep`` rejects."""
        for key in [k for k in self.alerts if not keep(k)]:
            del self.alerts[key]
            self.observations.pop(key, None)
            self._seen.pop(key, None)

    def retire(self, gone: Iterable[Series]) -> None:
        """Close, then forget, the alerts of series that left the store (expired):
        pending is cancelled, firing or no_data resolved, each as one event."""
        config, now = self._config(), self._clock()
        keys = set()
        for series in gone:
            keys.add(series.key)
            alert = self.alerts.get(series.key)
            metric = config.metrics.get(series.name)
            if alert is None or metric is None or alert.state is AlertState.OK:
                continue
            pending = alert.state is AlertState.PENDING
            closing = Transition.CANCELLED if pending else Transition.RESOLVED
            closed = SeriesAlert(since=now)
            self._set(series, metric, config, alert, closed, closing, "expired")
        self.forget(lambda key: key not in keys)


#: The verdict used when a series leaves ``no_data`` (its value is not looked at).
_NEUTRAL: Final = Verdict(violated=None, clear_of_warning=True, clear_of_critical=True)


def _bulk_recent(
    series_list: list[Series], config: Config
) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of the newest ``evaluation.window`` samples of
    every series that holds that many, in one numpy pass (``mean`` and ``ci``
    bases; :meth:`Evaluator.observe` computes the others itself)."""
    evaluation = config.evaluation
    count = evaluation.window
    if evaluation.basis is Basis.SAMPLE or count < config.statistics.min_samples:
        return {}
    full = [series for series in series_list if len(series.window) >= count]
    if len(full) < _BULK_FROM:
        return {}
    means, sds = recent_moments([series.window for series in full], count)
    return {
        series.key: (mean, sd)
        for series, mean, sd in zip(full, means, sds, strict=True)
    }
