"""The closed loop: choose a proposal, apply it, validate it, keep or revert, learn.

:class:`OptimizerEngine` runs the loop on the proposals the dispatcher gathers for a
violation, and keeps its records:

- *choose* (rules and ranking in :mod:`.optimizer_policy`): the proposal with the
  best ``expected_improvement * learned weight`` that is allowed (one action in
  flight per metric, none on a knob another action is validating, a cooldown per
  metric, an hourly budget, no strategy already tried during this alert). A blocked
  choice is asked again when it may succeed; a series without a baseline of
  ``MIN_SAMPLES`` samples waits for one; ``optimizer.mode: dry-run`` logs the choice
  and applies nothing;
- *apply, validate, keep or revert* (write-ahead: the experiment is in the
  :mod:`.journal` before any knob changes, and leaves it once settled; the steps of an
  :class:`~perfwarden.optimize.experiment.Experiment` in
  :mod:`.optimizer_experiment`, re-exported here): originals recorded before any
  change, the verdict of :func:`perfwarden.optimize.verdict.judge` after
  ``validation_samples`` new samples or the validation timeout, a revert unless the
  action was kept;
- *learn and record*: the outcome updates
:class:`~perfwarden.optimize.learning.Learning`,
  joins the :attr:`~OptimizerEngine.history` of actions, and every series still
  firing is dispatched again. Stopping the daemon reverts what is not yet validated.

One ``correlation_id`` links the alert's dispatch, the proposals, the action, the
verdict and the learning update.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from typing import TYPE_CHECKING, Any, Final

from perfwarden.alerts.machine import AlertState, Transition
from perfwarden.config.load import OptimizerMode
from perfwarden.logs.setup import get_logger
from perfwarden.optimize.dispatch import proposal_fields
from perfwarden.optimize.experiment import (
    Experiment,
    apply_proposal,
    begin_experiment,
    guard_series,
    interference,
    judge_experiment,
    restore_knobs,
    revert,
    wait_for_samples,
)
from perfwarden.optimize.journal import ActionJournal, revert_unfinished
from perfwarden.optimize.plugin_runtime import PluginCallError
from perfwarden.optimize.policy import ActionPolicy, rank
from perfwarden.optimize.verdict import MIN_SAMPLES, Verdict

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.alerts.evaluator import AlertEvent, Evaluator
    from perfwarden.config.load import Config
    from perfwarden.optimize.knobs import KnobStore
    from perfwarden.optimize.learning import Learning
    from perfwarden.optimize.plugin_runtime import PluginHandle, PluginRuntime
    from perfwarden.optimize.verdict import Judgement
    from perfwarden.plugin_api import Proposal, Violation
    from perfwarden.series.store import MetricStore, Series

__all__ = ["Experiment", "OptimizerEngine"]

_log = get_logger("perfwarden.optimizer")
_HISTORY: Final = 500


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
        journal: ActionJournal | None = None,
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
        self.journal = journal if journal is not None else ActionJournal(None)
        #: Correlation ids the journal reverted at start (state.db's copy skips them).
        self.reverted_at_start: set[str] = set()
        self._clock = clock
        self._wall = wall
        self.in_flight: dict[str, Experiment] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._policy = ActionPolicy()
        self.history: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_HISTORY
        )
        #: Bumped on every change of :attr:`history` (state checkpoints use it).
        self.history_version = 0

    @property
    def runtime(self) -> PluginRuntime:
        """The plugin runtime (its counters are saved with the learning)."""
        return self._runtime

    # -- alert stream ---------------------------------------------------------------

    def on_alert(self, event: AlertEvent) -> None:
        """Evaluator subscriber: a resolved alert forgets the strategies tried."""
        if event.transition in {Transition.RESOLVED, Transition.CANCELLED}:
            self._policy.forget_tried(event.metric)

    # -- deciding -------------------------------------------------------------------

    async def on_proposals(
        self,
        violation: Violation,
        pairs: list[tuple[PluginHandle, Proposal]],
        series_key: str,
    ) -> None:
        """Choose among ``pairs`` for ``violation`` of the series ``series_key`` and
        start an experiment."""
        cid = violation.correlation_id
        metric = violation.metric
        config = self._config()
        now = self._clock()
        # By key: a search among the metric's series per violation was quadratic
        # in an incident across thousands of them (5,000: the loop stalled minutes).
        series = self._store.get(series_key)
        blocked = self._policy.blocked(metric, now, config, self.in_flight)
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
        tried = self._policy.tried(metric)
        busy = {knob for e in self.in_flight.values() for knob in e.knobs}
        candidates = rank(
            pairs,
            tried=tried,
            busy=busy,
            weight=lambda strategy: self.learning.weight(strategy, metric),
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
        if series is not None:
            await self._apply(violation, series, handle, proposal, score)

    def _restart_sequence(self, metric: str, series_key: str) -> None:
        self._policy.forget_tried(metric)
        self._redispatch(series_key)

    # -- applying -------------------------------------------------------------------

    async def _apply(
        self,
        violation: Violation,
        series: Series,
        handle: PluginHandle,
        proposal: Proposal,
        score: float,
    ) -> None:
        cid = violation.correlation_id
        config = self._config()
        experiment = begin_experiment(
            violation,
            handle,
            proposal,
            score,
            series=series,
            depth=max(config.optimizer.validation_samples, 1),
            started=self._clock(),
            guards=guard_series(self._store, self._config(), violation.metric),
        )
        try:
            await apply_proposal(
                experiment, self._runtime, self._knobs, self.journal, self._wall
            )
        except (PluginCallError, OSError, KeyError, TypeError, ValueError) as exc:
            restore_knobs(experiment, self._knobs)
            self.journal.settle(cid)
            _log.warning(
                "optimizer.apply_failed",
                correlation_id=cid,
                metric=violation.metric,
                plugin=handle.name,
                strategy=proposal.strategy,
                error=str(exc),
            )
            self._policy.mark_tried(violation.metric, proposal.strategy)
            return
        now = self._clock()
        self._policy.started(violation.metric, now)
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

    # -- validating -----------------------------------------------------------------

    async def _validate(self, experiment: Experiment) -> None:
        await wait_for_samples(experiment, self._store, self._config(), self._clock)
        judgement = judge_experiment(experiment, self._store, self._config())
        interfered = interference(experiment, self._knobs)
        if interfered is not None:
            judgement = dataclasses.replace(
                judgement, verdict=Verdict.INCONCLUSIVE, reason=interfered
            )
        await self._conclude(experiment, judgement)

    async def _conclude(self, experiment: Experiment, judgement: Judgement) -> None:
        violation = experiment.violation
        metric = violation.metric
        handle = experiment.handle
        strategy = experiment.proposal.strategy
        if judgement.verdict is not Verdict.KEPT:
            await revert(experiment, self._runtime, self._knobs)
        self.journal.settle(experiment.correlation_id)
        self.in_flight.pop(metric, None)
        self._policy.concluded(metric, self._clock())
        handle.counts[judgement.verdict.value] += 1
        if judgement.verdict is Verdict.KEPT:
            self._policy.forget_tried(metric)
        else:
            self._policy.mark_tried(metric, strategy)
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

    def revert_unfinished(self) -> list[str]:
        """At start: revert what the journal says a previous run left in flight;
        the correlation ids handled."""
        entries = self.journal.load()
        handled = revert_unfinished(
            entries,
            self._knobs,
            reason="the daemon stopped before the verdict (restored at start)",
        )
        if entries:
            self.journal.clear()
        self.reverted_at_start.update(handled)
        return handled

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

    async def shutdown(self) -> None:
        """Revert every unvalidated action (nothing unproven outlives the daemon)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for experiment in list(self.in_flight.values()):
            await revert(experiment, self._runtime, self._knobs)
            self.journal.settle(experiment.correlation_id)
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
                    "knobs": sorted(e.knobs),
                    "changes": dict(e.applied),
                    "originals": dict(e.originals),
                }
                for e in self.in_flight.values()
            ],
            "actions_last_hour": self._policy.actions_last_hour,
            "history": len(self.history),
        }
