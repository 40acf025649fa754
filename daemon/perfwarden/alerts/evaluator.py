"""The evaluator: observes series, steps their alert state machines, publishes events.

It runs after ingest for the series updated since its previous pass (so a violation
is seen at once, not at the next tick; :mod:`perfwarden.alerts.pacing` decides
when: at most once per ``evaluation.coalesce``, at once for a value past a level)
and on every evaluation tick for all series (so ``for`` hold times elapse and
silent series become ``no_data``).

The observation depends on ``evaluation.basis``: ``sample`` each new value, ``mean``
the mean of the newest ``evaluation.window`` samples, ``ci`` their
autocorrelation-aware confidence interval (none below ``statistics.min_samples``),
``multiwindow`` (the default) a short and a long window at once
(:mod:`perfwarden.alerts.observation`). Each costs O(window of evaluation),
independent of the series' full window.

A hold counted in samples (``for: 3 samples``) counts the samples each evaluation
judged, so it does not depend on how the data was batched or paced: on ``sample``
every new value is judged on its own (the newest 256 of a batch; older ones of a
huge batch together), on the window bases every new sample of a batch whose
observation violates counts.

Every transition is logged once as ``alert.<transition>`` and handed to subscribers
(the optimizer engine) as an :class:`AlertEvent` unless a silence matches; the
state changes at once, the publishing goes through :attr:`Evaluator.deliver`
(the daemon's publishes in slices, :mod:`perfwarden.alerts.publisher`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from perfwarden.alerts.bulk_judge import (
    UNJUDGED,
    Judged,
    Unjudged,
    judge_one,
    judge_pass,
)
from perfwarden.alerts.machine import (
    ACTIONS,
    AlertState,
    Level,
    SeriesAlert,
    Transition,
    Verdict,
    step,
)
from perfwarden.alerts.observation import (
    Judgement,
    judge_windows,
    verdict_of,
    window_observation,
)
from perfwarden.alerts.silences import Silence, Silences
from perfwarden.config.load import Basis, Bound, Config, MetricConfig
from perfwarden.logs.setup import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from perfwarden.series.store import MetricStore, Series

__all__ = ["AlertEvent", "Evaluator", "Silence", "Silences"]

_log = get_logger("perfwarden.alerts")
_LOUD = {Transition.FIRED, Transition.ESCALATED, Transition.NO_DATA}
#: Correlation ids: 48 random bits as uuid4().hex[:12] had, without its system
#: call per id (5,000 alerts firing at once make 5,000 ids).
_IDS: Final = random.Random()  # noqa: S311 - an id, not a secret
#: On the sample basis, the newest values of a batch judged one by one.
_MAX_SINGLE_STEPS: Final = 256


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
    #: One id per episode (pending or firing until back to ok), shared with the
    #: optimizer's decisions for it.
    correlation_id: str | None = None

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
        if self.correlation_id is not None:
            fields["correlation_id"] = self.correlation_id
        return fields


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
        #: Told of every event, silenced ones included (a backtest's timeline).
        self.watchers: list[Callable[[AlertEvent], None]] = []
        #: Where a transition's event goes: :meth:`publish` at once, unless the
        #: daemon publishes in slices (:mod:`perfwarden.alerts.publisher`).
        self.deliver: Callable[[AlertEvent], None] = self.publish
        #: Evaluations run (one per series per pass), for self-monitoring.
        self.evaluations = 0
        self._correlation_ids: dict[str, str] = {}

    def now(self) -> float:
        """The evaluator's clock (the time a tick judges as of)."""
        return self._clock()

    # -- observing ------------------------------------------------------------------

    def observe(
        self, series: Series, config: Config, bound: Bound = Bound.UPPER
    ) -> tuple[float, float] | None:
        """The observation compared with thresholds on the configured basis.

        ``sample`` takes the worst value (by ``bound``) among those that arrived
        since the series was last observed, so how a sender batches its lines does
        not change what is judged; ``mean``, ``ci`` and ``multiwindow`` need
        ``min_samples`` values (``multiwindow``: the observation of whichever
        window lies further on the bad side).
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
        if evaluation.basis is Basis.MULTIWINDOW:
            metric = config.metrics.get(series.name) or _UNLEVELLED
            judgement = judge_windows(window, config, metric)
            return None if judgement is None else judgement.observation
        return window_observation(window, config)

    # -- evaluating -----------------------------------------------------------------

    def evaluate(self, series_list: Iterable[Series]) -> None:
        """Observe and step each series (those of metrics with levels).

        On the window bases the series are judged first, all at once
        (:mod:`perfwarden.alerts.bulk_judge`, the same judgements as one by
        one), then stepped one by one in order.
        """
        config = self._config()
        now = self._clock()
        chosen = []
        for series in series_list:
            metric = config.metrics.get(series.name)
            if metric is not None and metric.has_levels:
                chosen.append((series, metric))
        judgements = judge_pass(chosen, self.alerts, config)
        for index, (series, metric) in enumerate(chosen):
            # A sample counts at its own time: a line stamped with |T judges
            # its series as of that stamp (the store caps it at arrival).
            at = min(now, series.last_update) if series.last_update else now
            judged = UNJUDGED if judgements is None else judgements[index]
            self._evaluate_one(series, metric, config, at, judged)

    def evaluate_updated(self) -> None:
        """Evaluate the series that received samples since the last call."""
        updated = self._store.take_updated()
        if updated:
            self.evaluate(updated)

    def tick(self) -> None:
        """Periodic pass: hold times elapse, silent series become ``no_data``."""
        self.tick_series(list(self._store), self._clock())

    def tick_series(self, series_list: Iterable[Series], now: float) -> None:
        """The periodic pass over ``series_list`` as of ``now``: a tick in parts
        (:mod:`perfwarden.alerts.passes`) makes the same transitions in the
        same order as :meth:`tick` at once (each series' judgement depends on
        its own state alone)."""
        config = self._config()
        missing_after = config.evaluation.missing_after
        due: list[tuple[Series, MetricConfig, SeriesAlert | None]] = []
        for series in series_list:
            metric = config.metrics.get(series.name)
            if metric is None or not metric.has_levels:
                continue
            alert = self.alerts.get(series.key, SeriesAlert(since=now))
            if alert.state is AlertState.NO_DATA:
                continue
            silent = series.last_update and now - series.last_update > missing_after
            due.append((series, metric, alert if silent else None))
        judged = [(series, metric) for series, metric, gone in due if gone is None]
        judgements = iter(judge_pass(judged, self.alerts, config) or ())
        for series, metric, gone in due:
            if gone is not None:
                silent_alert = SeriesAlert(AlertState.NO_DATA, since=now)
                self._set(
                    series, metric, config, gone, silent_alert, Transition.NO_DATA
                )
                continue
            self._evaluate_one(series, metric, config, now, next(judgements, UNJUDGED))

    def _evaluate_one(
        self,
        series: Series,
        metric: MetricConfig,
        config: Config,
        now: float,
        judged: Judgement | Unjudged | None = UNJUDGED,
    ) -> None:
        """Judge (unless ``judged`` already) and step one series."""
        self.evaluations += 1
        alert = self.alerts.get(series.key)
        if alert is None:
            alert = self.alerts[series.key] = SeriesAlert(since=now)
        now = max(now, alert.since)  # a late stamp does not step back in time
        window = series.window
        fresh = window.total_count - self._seen.get(series.key, 0)
        if judged is UNJUDGED and len(window) == 0:  # judged: None when empty
            return
        if config.evaluation.basis is Basis.SAMPLE:
            self._seen[series.key] = window.total_count
            alert = self._resume(series, metric, config, alert, now)
            self._step_values(series, metric, config, alert, now, fresh)
            return
        judgement = (
            self._judge(series, metric, config, alert) if judged is UNJUDGED else judged
        )
        if judgement is None:
            return
        self._seen[series.key] = window.total_count
        self.observations[series.key] = judgement.observation
        if alert.state is AlertState.OK and judgement.verdict.violated is None:
            return  # stays ok, as step() would say (the common case, cheaper)
        alert = self._resume(series, metric, config, alert, now)
        self._advance(series, metric, config, alert, judgement.verdict, now, fresh)

    def _judge(
        self, series: Series, metric: MetricConfig, config: Config, alert: SeriesAlert
    ) -> Judgement | None:
        settled = alert.state is AlertState.OK
        return judge_one(Judged(series.window, metric, settled), config)

    def _resume(
        self,
        series: Series,
        metric: MetricConfig,
        config: Config,
        alert: SeriesAlert,
        now: float,
    ) -> SeriesAlert:
        """Leave ``no_data`` (data came back) before judging the data."""
        if alert.state is not AlertState.NO_DATA:
            return alert
        resumed, transition = step(alert, _NEUTRAL, now, 0.0)
        self._set(series, metric, config, alert, resumed, transition)
        return resumed

    def _step_values(  # noqa: PLR0917 - private; one call site
        self,
        series: Series,
        metric: MetricConfig,
        config: Config,
        alert: SeriesAlert,
        now: float,
        fresh: int,
    ) -> None:
        """The sample basis: each new value judged on its own, in order."""
        window = series.window
        values = window.tail(min(len(window), max(fresh, 1)))
        upper = metric.bound is Bound.UPPER
        worst = float(values.max() if upper else values.min())
        self.observations[series.key] = (worst, worst)
        verdict = verdict_of((worst, worst), metric, config.evaluation.hysteresis)
        if fresh <= 1 or (alert.state is AlertState.OK and verdict.violated is None):
            self._advance(series, metric, config, alert, verdict, now, min(fresh, 1))
            return
        older = values[:-_MAX_SINGLE_STEPS]
        if older.size:
            value = float(older.max() if upper else older.min())
            verdict = verdict_of((value, value), metric, config.evaluation.hysteresis)
            alert = self._advance(
                series, metric, config, alert, verdict, now, int(older.size)
            )
        for value in values[-_MAX_SINGLE_STEPS:].tolist():
            self.observations[series.key] = (value, value)
            verdict = verdict_of((value, value), metric, config.evaluation.hysteresis)
            alert = self._advance(series, metric, config, alert, verdict, now, 1)

    def _advance(  # noqa: PLR0917 - private; the call sites read clearly
        self,
        series: Series,
        metric: MetricConfig,
        config: Config,
        alert: SeriesAlert,
        verdict: Verdict,
        now: float,
        samples: int,
    ) -> SeriesAlert:
        hold, hold_samples = metric.hold(config.evaluation)
        new, transition = step(
            alert, verdict, now, hold, samples=samples, hold_samples=hold_samples
        )
        if transition is not None or new is not alert:
            self._set(series, metric, config, alert, new, transition)
        return new

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
            correlation_id=self.correlation_id(series.key),
        )
        if new.state is AlertState.OK:
            self._correlation_ids.pop(series.key, None)
        self.deliver(event)

    def publish(self, event: AlertEvent) -> None:
        """Log ``event`` and tell the watchers, then (unless silenced) the
        subscribers."""
        transition = event.transition
        log = _log.warning if transition in _LOUD else _log.info
        log(f"alert.{transition.value}", **event.as_dict())
        for watcher in self.watchers:
            watcher(event)
        if event.silenced:
            return
        for subscriber in list(self.subscribers):
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - one subscriber must not stop the others
                _log.exception("alert.subscriber_failed", subscriber=repr(subscriber))

    def correlation_id(self, series_key: str) -> str:
        """The id of the series' current alert episode (made on first use)."""
        cid = self._correlation_ids.get(series_key)
        if cid is None:
            cid = f"{_IDS.getrandbits(48):012x}"
            self._correlation_ids[series_key] = cid
        return cid

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
        """The sample count at the series' last observation."""
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
            self._correlation_ids.pop(key, None)

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
#: Stands in for the metric of a series observed without configured levels.
_UNLEVELLED: Final = MetricConfig(name="", bound=Bound.UPPER)
