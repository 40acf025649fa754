"""Dispatch: a fired alert becomes a :class:`Violation` the plugins are asked about.

The dispatcher subscribes to the evaluator's event stream. On ``fired`` and
``escalated`` transitions (not silenced) it builds the violation (statistics,
trend, thresholds, a correlation id), asks the plugins the metric lists in
``optimizers:`` (or every plugin that ``handles()`` it) off the loop, and logs every
proposal as ``optimizer.proposed``. At most one dispatch per series is in flight.
Violations are built in slices of at most 5 ms between which the loop runs: an
incident fires thousands of alerts in one evaluation pass, and each violation's
statistics cost a fraction of a millisecond (5,000 of them held the loop a
second). What to do with the proposals is the closed loop's business (``on_proposals``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Final

from perfwarden.alerts.machine import AlertState, Level, Transition
from perfwarden.logs.setup import get_logger
from perfwarden.plugin_api import ObservedStats, OptimizerContext, Violation
from perfwarden.series.stats import summarize
from perfwarden.series.trend import label

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from perfwarden.alerts.evaluator import AlertEvent, Evaluator
    from perfwarden.config.load import Config
    from perfwarden.optimize.knobs import KnobStore
    from perfwarden.optimize.plugin_runtime import PluginHandle, PluginRuntime
    from perfwarden.plugin_api import Proposal
    from perfwarden.series.store import MetricStore

__all__ = ["Dispatcher", "proposal_fields"]

_log = get_logger("perfwarden.optimizer")
#: Loop time spent building violations before the loop runs again.
_SLICE: Final = 0.005


class Dispatcher:
    """Turns alert events into plugin proposals."""

    def __init__(
        self,
        store: MetricStore,
        runtime: PluginRuntime,
        knobs: KnobStore,
        config: Callable[[], Config],
        evaluator: Evaluator,
    ) -> None:
        self._evaluator = evaluator
        self._store = store
        self._runtime = runtime
        self._knobs = knobs
        self._config = config
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        #: Series whose dispatch waits for its violation to be built (in order).
        self._queued: dict[str, None] = {}
        self._starter: asyncio.Task[None] | None = None
        #: Called with the violation, the proposals and the violating series' key.
        self.on_proposals: (
            Callable[
                [Violation, list[tuple[PluginHandle, Proposal]], str], Awaitable[None]
            ]
            | None
        ) = None
        self.dispatched = 0

    def __call__(self, event: AlertEvent) -> None:
        """Evaluator subscriber: start a dispatch for a new or worse alert."""
        if event.transition not in {Transition.FIRED, Transition.ESCALATED}:
            return
        self._start(event.series)

    def redispatch(self, series_key: str) -> None:
        """Ask the plugins again about a series whose alert is still firing."""
        alert = self._evaluator.alerts.get(series_key)
        if alert is not None and alert.state is AlertState.FIRING:
            self._start(series_key)

    def _start(self, series_key: str) -> None:
        if series_key in self._in_flight or series_key in self._queued:
            return
        self._queued[series_key] = None
        if self._starter is None or self._starter.done():
            self._starter = asyncio.get_running_loop().create_task(
                self._start_queued(), name="dispatch:start"
            )

    async def _start_queued(self) -> None:
        slice_started = time.perf_counter()
        while self._queued:
            series_key = next(iter(self._queued))
            del self._queued[series_key]
            self._begin(series_key)
            if time.perf_counter() - slice_started >= _SLICE:
                await asyncio.sleep(0)  # let ingest and clients in
                slice_started = time.perf_counter()

    def _begin(self, series_key: str) -> None:
        if series_key in self._in_flight:
            return
        violation = self.violation_for(series_key)
        if violation is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._dispatch(violation, series_key), name=f"dispatch:{series_key}"
        )
        self._in_flight[series_key] = task
        task.add_done_callback(lambda _: self._in_flight.pop(series_key, None))

    def violation_for(self, series_key: str) -> Violation | None:
        """The plugin-facing view of a series' firing alert (None if not firing)."""
        series = self._store.get(series_key)
        alert = self._evaluator.alerts.get(series_key)
        observed = self._evaluator.observations.get(series_key)
        config = self._config()
        if series is None or alert is None or alert.level is None or observed is None:
            return None
        metric = config.metrics.get(series.name)
        if metric is None:
            return None
        threshold = metric.critical if alert.level is Level.CRITICAL else metric.warning
        if threshold is None:
            return None
        statistics = config.statistics
        summary = summarize(
            series.window, statistics.confidence_level, statistics.min_samples
        )
        trend = label(
            series.window.values(),
            bound=metric.bound,
            target=metric.target,
            interval=summary.interval,
        )
        return Violation(
            metric=series.name,
            tags=series.tag_dict,
            severity=alert.level.value,
            basis=config.evaluation.basis.value,
            bound=metric.bound.value,
            observed=observed,
            threshold=threshold,
            target=metric.target,
            unit=metric.unit,
            trend=trend,
            stats=ObservedStats(
                sample_size=summary.sample_size,
                mean=summary.mean,
                ci_low=summary.ci_low,
                ci_high=summary.ci_high,
                p50=summary.p50,
                p95=summary.p95,
                p99=summary.p99,
                min=summary.min,
                max=summary.max,
            ),
            correlation_id=self._evaluator.correlation_id(series_key),
        )

    def context_for(self, handle: PluginHandle) -> OptimizerContext:
        """The read-only knob view given to one plugin."""
        return OptimizerContext(
            knobs=self._knobs.values(), specs=self._knobs.specs, options=handle.options
        )

    async def _dispatch(self, violation: Violation, series_key: str) -> None:
        self.dispatched += 1
        metric = self._config().metrics.get(violation.metric)
        names = metric.optimizers if metric is not None else ()
        pairs = await self._runtime.propose(violation, self.context_for, names or None)
        for handle, proposal in pairs:
            _log.info(
                "optimizer.proposed",
                correlation_id=violation.correlation_id,
                metric=violation.metric,
                tags=dict(violation.tags),
                severity=violation.severity,
                plugin=handle.name,
                **proposal_fields(proposal),
            )
        if not pairs:
            _log.info(
                "optimizer.no_proposal",
                correlation_id=violation.correlation_id,
                metric=violation.metric,
                asked=list(names)
                if names
                else [h.name for h in self._runtime.active()],
            )
        if self.on_proposals is not None:
            await self.on_proposals(violation, pairs, series_key)

    async def drain(self) -> None:
        """Wait for dispatches in flight (at shutdown); queued ones are dropped."""
        self._queued.clear()
        if self._starter is not None:
            await self._starter
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)


def proposal_fields(proposal: Proposal) -> dict[str, Any]:
    """A proposal's log / JSON fields."""
    return {
        "strategy": proposal.strategy,
        "expected_improvement": proposal.expected_improvement,
        "rationale": proposal.rationale,
        "changes": {change.knob: change.value for change in proposal.changes},
        "action": proposal.action.description if proposal.action else None,
    }
