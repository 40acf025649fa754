"""The closed loop: choose a proposal, apply it, validate it, keep or revert, learn.

On the proposals for a violation the engine scores each by ``expected_improvement *
learned weight`` and applies the best one that is allowed:

- one action in flight per metric, and none on a knob another action is validating
  (strategies that turn the same knob conflict by construction);
- a cooldown per metric between two actions, and a global budget of actions per
  sliding hour (slow to tighten);
- strategies already tried without success during this alert are skipped, so a
  still-firing alert walks through the strategies (the seed's progressive
  ``optimize_context_loading``); the list is forgotten when the alert resolves;
- ``optimizer.mode: dry-run`` logs the choice and applies nothing.

Applying records every knob's original value first (tuned's discipline), sets the
new values (``optimizer:<strategy>`` provenance) or runs the plugin's action, and
snapshots the samples before. After ``validation_samples`` new samples (or the
validation timeout) :func:`perfwarden.experiment.judge` gives the verdict; reverts
restore the originals (unless someone changed the knob meanwhile), outcomes update
:class:`~perfwarden.learning.Learning`. One ``correlation_id`` links the alert's
dispatch, the proposals, the action, the verdict and the learning update.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from perfwarden.alerts import AlertState, Transition
from perfwarden.config import OptimizerMode
from perfwarden.dispatch import proposal_fields
from perfwarden.experiment import (
    MIN_SAMPLES,
    GuardCheck,
    Judgement,
    Verdict,
    judge,
)
from perfwarden.logs import get_logger
from perfwarden.plugin_runtime import PluginCallError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from perfwarden.config import Config
    from perfwarden.evaluator import AlertEvent, Evaluator
    from perfwarden.knobs import KnobStore
    from perfwarden.learning import Learning
    from perfwarden.plugin_api import KnobValue, Proposal, Violation
    from perfwarden.plugin_runtime import PluginHandle, PluginRuntime
    from perfwarden.store import MetricStore, Series

__all__ = ["Experiment", "OptimizerEngine"]

_log = get_logger("perfwarden.optimizer")
_POLL: Final = 0.1
_HISTORY: Final = 500


@dataclass(slots=True)
class Experiment:
    """One applied action awaiting its verdict."""

    correlation_id: str
    violation: Violation
    series_key: str
    handle: PluginHandle
    proposal: Proposal
    score: float
    started: float
    start_count: int
    before: npt.NDArray[np.float64]
    originals: dict[str, KnobValue] = field(default_factory=dict)
    applied: dict[str, KnobValue] = field(default_factory=dict)
    guard_starts: dict[str, int] = field(default_factory=dict)
    guard_before: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    @property
    def knobs(self) -> set[str]:
        """Knobs this experiment holds."""
        return {change.knob for change in self.proposal.changes}


class OptimizerEngine:
    """Decides, applies, validates and learns."""

    def __init__(
        self,
        *,
        store: MetricStore,
        evaluator: Evaluator,
        runtime: PluginRuntime,
        knobs: KnobStore,
        learning: Learning,
        config: Callable[[], Config],
        redispatch: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._evaluator = evaluator
        self._runtime = runtime
        self._knobs = knobs
        self.learning = learning
        self._config = config
        self._redispatch = redispatch
        self._clock = clock
        self._wall = wall
        self.in_flight: dict[str, Experiment] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_action: dict[str, float] = {}
        self._actions: collections.deque[float] = collections.deque()
        self._tried: dict[str, set[str]] = {}
        self.history: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_HISTORY
        )
        #: Bumped on every change of :attr:`history` (state checkpoints use it).
        self.history_version = 0

    # -- alert stream ---------------------------------------------------------------

    def on_alert(self, event: AlertEvent) -> None:
        """Evaluator subscriber: a resolved alert forgets the strategies tried."""
        if event.transition in {Transition.RESOLVED, Transition.CANCELLED}:
            self._tried.pop(event.metric, None)

    # -- deciding -------------------------------------------------------------------

    async def on_proposals(
        self, violation: Violation, pairs: list[tuple[PluginHandle, Proposal]]
    ) -> None:
        """Choose among ``pairs`` for ``violation`` and start an experiment."""
        cid = violation.correlation_id
        metric = violation.metric
        config = self._config()
        now = self._clock()
        series = self._series_for(violation)
        blocked = self._blocked(metric, now, config)
        if blocked is not None:
            reason, retry = blocked
            _log.info(
                "optimizer.skipped", correlation_id=cid, metric=metric, reason=reason
            )
            if retry is not None and series is not None:
                asyncio.get_running_loop().call_later(
                    retry + 0.01, self._redispatch, series.key
                )
            return
        if series is not None and len(series.window) < MIN_SAMPLES:
            # Nothing to compare with yet: ask again once a baseline has arrived.
            reason = f"waiting for a baseline of {MIN_SAMPLES} samples"
            _log.info(
                "optimizer.skipped", correlation_id=cid, metric=metric, reason=reason
            )
            asyncio.get_running_loop().call_later(
                max(config.optimizer.cooldown, 1.0), self._redispatch, series.key
            )
            return
        tried = self._tried.get(metric, set())
        busy = {knob for e in self.in_flight.values() for knob in e.knobs}
        candidates = []
        for handle, proposal in pairs:
            if proposal.strategy in tried:
                continue
            if busy & {change.knob for change in proposal.changes}:
                continue
            weight = self.learning.weight(proposal.strategy, metric)
            candidates.append(
                (proposal.expected_improvement * weight, handle, proposal)
            )
        if not candidates:
            if not pairs:
                reason = "no proposal"
            elif tried:
                # The progressive sequence is exhausted: start it over later.
                retry = 10 * config.optimizer.cooldown
                reason = f"every strategy tried during this alert; again in {retry:g}s"
                if series is not None:
                    asyncio.get_running_loop().call_later(
                        retry, self._restart_sequence, metric, series.key
                    )
            else:
                reason = "every proposal conflicts with an action in flight"
            _log.info(
                "optimizer.skipped", correlation_id=cid, metric=metric, reason=reason
            )
            return
        candidates.sort(key=lambda c: c[0], reverse=True)
        score, handle, proposal = candidates[0]
        if score <= 0:
            _log.info(
                "optimizer.skipped", correlation_id=cid, metric=metric, reason="no gain"
            )
            return
        if config.optimizer.mode is OptimizerMode.DRY_RUN:
            _log.info(
                "optimizer.dry_run",
                correlation_id=cid,
                metric=metric,
                plugin=handle.name,
                score=round(score, 4),
                **proposal_fields(proposal),
            )
            return
        await self._apply(violation, handle, proposal, score)

    def _restart_sequence(self, metric: str, series_key: str) -> None:
        self._tried.pop(metric, None)
        self._redispatch(series_key)

    def _blocked(
        self, metric: str, now: float, config: Config
    ) -> tuple[str, float | None] | None:
        """Why no action may start now, and when to ask again (None: on its own)."""
        if metric in self.in_flight:
            # The running experiment's conclusion asks again if still firing.
            return "an action is already being validated for this metric", None
        if len(self.in_flight) >= config.optimizer.concurrent_actions:
            # Actions on different knobs still confound each other's measurements
            # (a compression change moves latency too): by default one at a time.
            return "another action is being validated", None
        last = self._last_action.get(metric)
        cooldown = config.optimizer.cooldown
        if last is not None and now - last < cooldown:
            return f"cooldown ({cooldown:g}s)", last + cooldown - now
        while self._actions and now - self._actions[0] > 3600:
            self._actions.popleft()
        budget = config.optimizer.max_actions_per_hour
        if len(self._actions) >= budget:
            retry = 3600 - (now - self._actions[0]) if self._actions else 3600.0
            return f"budget of {budget} actions an hour used", retry
        return None

    # -- applying -------------------------------------------------------------------

    async def _apply(
        self,
        violation: Violation,
        handle: PluginHandle,
        proposal: Proposal,
        score: float,
    ) -> None:
        cid = violation.correlation_id
        series = self._series_for(violation)
        if series is None:
            return
        config = self._config()
        depth = max(config.optimizer.validation_samples, 1)
        experiment = Experiment(
            correlation_id=cid,
            violation=violation,
            series_key=series.key,
            handle=handle,
            proposal=proposal,
            score=score,
            started=self._clock(),
            start_count=series.window.total_count,
            before=series.window.tail(min(len(series.window), depth)),
        )
        for name, guard_series in self._guard_series(violation.metric):
            experiment.guard_starts[name] = guard_series.window.total_count
            experiment.guard_before[name] = guard_series.window.tail(
                min(len(guard_series.window), depth)
            )
        try:
            if proposal.action is not None:
                await self._runtime.call(handle, "apply", proposal.action.apply)
                self._runtime.succeeded(handle)
            else:
                for change in proposal.changes:
                    experiment.originals[change.knob] = self._knobs.get(change.knob)
                for change in proposal.changes:
                    experiment.applied[change.knob] = self._knobs.set(
                        change.knob,
                        change.value,
                        source=f"optimizer:{proposal.strategy}",
                        reason=cid,
                    )
        except (PluginCallError, KeyError, TypeError, ValueError) as exc:
            self._restore(experiment)
            _log.warning(
                "optimizer.apply_failed",
                correlation_id=cid,
                metric=violation.metric,
                plugin=handle.name,
                strategy=proposal.strategy,
                error=str(exc),
            )
            self._tried.setdefault(violation.metric, set()).add(proposal.strategy)
            return
        now = self._clock()
        self._last_action[violation.metric] = now
        self._actions.append(now)
        self.in_flight[violation.metric] = experiment
        handle.counts["applied"] += 1
        _log.info(
            "optimizer.applied",
            correlation_id=cid,
            metric=violation.metric,
            tags=dict(violation.tags),
            plugin=handle.name,
            score=round(score, 4),
            weight=round(self.learning.weight(proposal.strategy, violation.metric), 4),
            strategy=proposal.strategy,
            changes={
                knob: {"from": experiment.originals[knob], "to": value}
                for knob, value in experiment.applied.items()
            },
            action=proposal.action.description if proposal.action else None,
            baseline_samples=len(experiment.before),
            validation_samples=config.optimizer.validation_samples,
        )
        task = asyncio.get_running_loop().create_task(
            self._validate(experiment), name=f"validate:{cid}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _series_for(self, violation: Violation) -> Series | None:
        for series in self._store.by_name(violation.metric):
            if series.tag_dict == dict(violation.tags):
                return series
        return None

    def _guard_series(self, metric: str) -> list[tuple[str, Series]]:
        config = self._config()
        return [
            (series.key, series)
            for name, cfg in config.metrics.items()
            if cfg.guard and name != metric
            for series in self._store.by_name(name)
        ]

    # -- validating -----------------------------------------------------------------

    async def _validate(self, experiment: Experiment) -> None:
        config = self._config()
        needed = config.optimizer.validation_samples
        deadline = experiment.started + config.optimizer.validation_timeout
        while True:
            series = self._store.get(experiment.series_key)
            if series is None:
                break
            if series.window.total_count - experiment.start_count >= needed:
                break
            if self._clock() >= deadline:
                break
            await asyncio.sleep(_POLL)
        judgement = self._judge(experiment)
        interfered = self._interference(experiment)
        if interfered is not None:
            judgement = dataclasses.replace(
                judgement, verdict=Verdict.INCONCLUSIVE, reason=interfered
            )
        await self._conclude(experiment, judgement)

    def _interference(self, experiment: Experiment) -> str | None:
        """Why the samples after the action do not measure it, if they do not."""
        for knob, applied in experiment.applied.items():
            try:
                current = self._knobs.get(knob)
            except KeyError:
                return f"knob {knob} was removed during validation"
            if current != applied:
                return f"knob {knob} was changed by someone else during validation"
        return None

    def _new_samples(
        self, series: Series | None, start: int
    ) -> npt.NDArray[np.float64]:
        if series is None:
            return np.empty(0)
        fresh = min(series.window.total_count - start, len(series.window))
        return series.window.tail(fresh) if fresh > 0 else np.empty(0)

    def _judge(self, experiment: Experiment) -> Judgement:
        config = self._config()
        violation = experiment.violation
        after = self._new_samples(
            self._store.get(experiment.series_key), experiment.start_count
        )
        guards = []
        for key, start in experiment.guard_starts.items():
            series = self._store.get(key)
            metric = config.metrics.get(series.name) if series else None
            if series is None or metric is None:
                continue
            guards.append(
                GuardCheck(
                    metric=series.key,
                    bound=metric.bound.value,
                    before=experiment.guard_before[key],
                    after=self._new_samples(series, start),
                )
            )
        return judge(
            experiment.before,
            after,
            bound=violation.bound,
            significance=config.optimizer.significance,
            guards=tuple(guards),
        )

    async def _conclude(self, experiment: Experiment, judgement: Judgement) -> None:
        violation = experiment.violation
        metric = violation.metric
        handle = experiment.handle
        strategy = experiment.proposal.strategy
        if judgement.verdict is not Verdict.KEPT:
            await self._revert(experiment)
        self.in_flight.pop(metric, None)
        self._last_action[metric] = self._clock()
        handle.counts[judgement.verdict.value] += 1
        if judgement.verdict is Verdict.KEPT:
            self._tried.pop(metric, None)
        else:
            self._tried.setdefault(metric, set()).add(strategy)
        event = {
            Verdict.KEPT: "optimizer.kept",
            Verdict.REVERTED: "optimizer.reverted",
            Verdict.INCONCLUSIVE: "optimizer.inconclusive",
        }[judgement.verdict]
        _log.info(
            event,
            correlation_id=experiment.correlation_id,
            metric=metric,
            tags=dict(violation.tags),
            plugin=handle.name,
            strategy=strategy,
            **judgement.as_dict(),
        )
        self.learning.record(
            strategy=strategy,
            plugin=handle.name,
            metric=metric,
            tags=violation.tags,
            verdict=judgement.verdict.value,
            improvement=judgement.improvement,
        )
        weight = self.learning.weight(strategy, metric)
        _log.info(
            "learning.updated",
            correlation_id=experiment.correlation_id,
            strategy=strategy,
            metric=metric,
            verdict=judgement.verdict.value,
            weight=round(weight, 4),
            counted=judgement.verdict is not Verdict.INCONCLUSIVE,
        )
        self.history.append(
            {
                "correlation_id": experiment.correlation_id,
                "metric": metric,
                "tags": dict(violation.tags),
                "plugin": handle.name,
                "strategy": strategy,
                "changes": dict(experiment.applied),
                "originals": dict(experiment.originals),
                "at": self._wall(),
                **judgement.as_dict(),
            }
        )
        self.history_version += 1
        self._continue_if_firing(experiment)

    def restore_history(self, rows: list[dict[str, Any]]) -> None:
        """Put back the outcome records a previous run saved (oldest first)."""
        self.history.extend(rows)
        self.history_version += 1

    def _continue_if_firing(self, experiment: Experiment) -> None:
        """Ask again for every series still firing (this one included)."""
        cooldown = self._config().optimizer.cooldown
        loop = asyncio.get_running_loop()
        for key, alert in self._evaluator.alerts.items():
            if alert.state is AlertState.FIRING:
                delay = cooldown if key == experiment.series_key else 0.0
                loop.call_later(delay, self._redispatch, key)

    async def _revert(self, experiment: Experiment) -> None:
        proposal = experiment.proposal
        if proposal.action is not None:
            try:
                await self._runtime.call(
                    experiment.handle, "revert", proposal.action.revert
                )
                self._runtime.succeeded(experiment.handle)
            except PluginCallError as exc:
                _log.error(
                    "optimizer.revert_failed",
                    correlation_id=experiment.correlation_id,
                    plugin=experiment.handle.name,
                    error=str(exc),
                )
            return
        self._restore(experiment)

    def _restore(self, experiment: Experiment) -> None:
        for knob, original in experiment.originals.items():
            applied = experiment.applied.get(knob)
            try:
                current = self._knobs.get(knob)
            except KeyError:
                continue  # the knob was removed by a reload
            if applied is not None and current != applied:
                _log.warning(
                    "optimizer.revert_skipped",
                    correlation_id=experiment.correlation_id,
                    knob=knob,
                    reason="changed by someone else since the action",
                    current=current,
                )
                continue
            self._knobs.set(
                knob, original, source="revert", reason=experiment.correlation_id
            )

    async def shutdown(self) -> None:
        """Revert every unvalidated action (nothing unproven outlives the daemon)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for experiment in list(self.in_flight.values()):
            await self._revert(experiment)
            _log.info(
                "optimizer.reverted",
                correlation_id=experiment.correlation_id,
                metric=experiment.violation.metric,
                strategy=experiment.proposal.strategy,
                verdict="reverted",
                reason="daemon stopping before the verdict",
            )
        self.in_flight.clear()

    def status(self) -> dict[str, Any]:
        """In-flight experiments and the action budget, for ``status``."""
        return {
            "mode": self._config().optimizer.mode.value,
            "in_flight": [
                {
                    "correlation_id": e.correlation_id,
                    "metric": e.violation.metric,
                    "strategy": e.proposal.strategy,
                    "plugin": e.handle.name,
                }
                for e in self.in_flight.values()
            ],
            "actions_last_hour": len(self._actions),
            "history": len(self.history),
        }
