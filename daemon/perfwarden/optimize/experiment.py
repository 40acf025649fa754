"""One experiment of the closed loop: baseline, apply, wait for samples, judge, revert.

An :class:`Experiment` is one applied proposal awaiting its verdict. This module
holds what happens to it, step by step, for :class:`~perfwarden.optimize.engine.
OptimizerEngine` to sequence:

- :func:`begin_experiment` snapshots the samples before the action: the violating
  series and every guard metric's series (``guard: true``, other metrics);
- :func:`apply_proposal` records every knob's original value first (tuned's
  discipline), durably in the write-ahead journal (:mod:`.journal`), then sets the
  new values (``optimizer:<strategy>`` provenance) or runs the plugin's action;
- :func:`wait_for_samples` waits for ``validation_samples`` new samples or the
  validation timeout; :func:`judge_experiment` compares before with after
  (:func:`perfwarden.optimize.verdict.judge`), and :func:`interference` says why the
  samples after do not measure the action when someone else turned its knobs
  meanwhile;
- :func:`revert` runs the action's revert, or :func:`restore_knobs` puts the
  originals back, unless someone changed a knob since the action.

Deciding whether to start one, and recording its outcome, are the engine's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from perfwarden.logs.setup import get_logger
from perfwarden.optimize.plugin_runtime import PluginCallError
from perfwarden.optimize.verdict import GuardCheck, Judgement, judge

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import numpy.typing as npt

    from perfwarden.config.load import Config
    from perfwarden.optimize.journal import ActionJournal
    from perfwarden.optimize.knobs import KnobStore
    from perfwarden.optimize.plugin_runtime import PluginHandle, PluginRuntime
    from perfwarden.plugin_api import KnobValue, Proposal, Violation
    from perfwarden.series.store import MetricStore, Series

__all__ = [
    "Experiment",
    "apply_proposal",
    "begin_experiment",
    "guard_series",
    "interference",
    "journal_entry",
    "judge_experiment",
    "restore_knobs",
    "revert",
    "wait_for_samples",
]

_log = get_logger("perfwarden.optimizer")
#: Seconds between two looks at the validated series' sample count.
_POLL: Final = 0.1


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


def begin_experiment(
    violation: Violation,
    handle: PluginHandle,
    proposal: Proposal,
    score: float,
    *,
    series: Series,
    depth: int,
    started: float,
    guards: list[tuple[str, Series]],
) -> Experiment:
    """The experiment for ``proposal``, with the last ``depth`` samples of ``series``
    and of each guard series as its baselines (nothing is applied yet)."""
    experiment = Experiment(
        correlation_id=violation.correlation_id,
        violation=violation,
        series_key=series.key,
        handle=handle,
        proposal=proposal,
        score=score,
        started=started,
        start_count=series.window.total_count,
        before=series.window.tail(min(len(series.window), depth)),
    )
    for name, guard in guards:
        experiment.guard_starts[name] = guard.window.total_count
        experiment.guard_before[name] = guard.window.tail(min(len(guard.window), depth))
    return experiment


def guard_series(
    store: MetricStore, config: Config, metric: str
) -> list[tuple[str, Series]]:
    """Every series of every guard metric other than ``metric``, by series key."""
    return [
        (series.key, series)
        for name, cfg in config.metrics.items()
        if cfg.guard and name != metric
        for series in store.by_name(name)
    ]


def journal_entry(
    experiment: Experiment, intended: Mapping[str, KnobValue], at: float
) -> dict[str, Any]:
    """The experiment's record in the write-ahead journal."""
    proposal = experiment.proposal
    return {
        "correlation_id": experiment.correlation_id,
        "metric": experiment.violation.metric,
        "strategy": proposal.strategy,
        "plugin": experiment.handle.name,
        "originals": dict(experiment.originals),
        "applied": dict(intended),
        "action": proposal.action.description if proposal.action else None,
        "at": at,
    }


async def apply_proposal(
    experiment: Experiment,
    runtime: PluginRuntime,
    knobs: KnobStore,
    journal: ActionJournal,
    wall: Callable[[], float],
) -> None:
    """Record the experiment durably, then run its action or set its knobs.

    Write-ahead: the originals and the values about to be set reach the journal
    before anything changes, so a daemon killed at any instant after comes back
    reverted. Raises ``OSError`` (the journal could not be written: nothing
    changed), :class:`~perfwarden.optimize.plugin_runtime.PluginCallError` (the
    action failed) or ``KeyError``/``TypeError``/``ValueError`` (a knob refused);
    knobs already set are then in :attr:`Experiment.applied`, for
    :func:`restore_knobs`.
    """
    proposal = experiment.proposal
    handle = experiment.handle
    if proposal.action is not None:
        journal.record(journal_entry(experiment, {}, wall()))
        await runtime.call(handle, "apply", proposal.action.apply)
        runtime.succeeded(handle, "apply")
    else:
        intended = {}
        for change in proposal.changes:
            experiment.originals[change.knob] = knobs.get(change.knob)
            intended[change.knob] = knobs.clamped(change.knob, change.value)
        journal.record(journal_entry(experiment, intended, wall()))
        for change in proposal.changes:
            experiment.applied[change.knob] = knobs.set(
                change.knob,
                change.value,
                source=f"optimizer:{proposal.strategy}",
                reason=f"{proposal.strategy} for {experiment.violation.metric}",
                correlation_id=experiment.correlation_id,
            )


async def wait_for_samples(
    experiment: Experiment,
    store: MetricStore,
    config: Config,
    clock: Callable[[], float],
) -> None:
    """Return once ``validation_samples`` new samples arrived, the series is gone or
    the validation timeout passed."""
    needed = config.optimizer.validation_samples
    deadline = experiment.started + config.optimizer.validation_timeout
    while True:
        series = store.get(experiment.series_key)
        if series is None:
            break
        if series.window.total_count - experiment.start_count >= needed:
            break
        if clock() >= deadline:
            break
        await asyncio.sleep(_POLL)


def interference(experiment: Experiment, knobs: KnobStore) -> str | None:
    """Why the samples after the action do not measure it, if they do not."""
    for knob, applied in experiment.applied.items():
        try:
            current = knobs.get(knob)
        except KeyError:
            return f"knob {knob} was removed during validation"
        if current != applied:
            return f"knob {knob} was changed by someone else during validation"
    return None


def _new_samples(series: Series | None, start: int) -> npt.NDArray[np.float64]:
    if series is None:
        return np.empty(0)
    fresh = min(series.window.total_count - start, len(series.window))
    return series.window.tail(fresh) if fresh > 0 else np.empty(0)


def judge_experiment(
    experiment: Experiment, store: MetricStore, config: Config
) -> Judgement:
    """The verdict on the samples since the action (guards included)."""
    violation = experiment.violation
    after = _new_samples(store.get(experiment.series_key), experiment.start_count)
    guards = []
    for key, start in experiment.guard_starts.items():
        series = store.get(key)
        metric = config.metrics.get(series.name) if series else None
        if series is None or metric is None:
            continue
        guards.append(
            GuardCheck(
                metric=series.label,  # user text: no internal type suffix
                bound=metric.bound.value,
                before=experiment.guard_before[key],
                after=_new_samples(series, start),
            )
        )
    return judge(
        experiment.before,
        after,
        bound=violation.bound,
        significance=config.optimizer.significance,
        guards=tuple(guards),
    )


async def revert(
    experiment: Experiment, runtime: PluginRuntime, knobs: KnobStore
) -> None:
    """Undo the experiment: the action's revert, or the knobs' original values."""
    proposal = experiment.proposal
    if proposal.action is not None:
        try:
            await runtime.call(experiment.handle, "revert", proposal.action.revert)
            runtime.succeeded(experiment.handle, "revert")
        except PluginCallError as exc:
            _log.error(
                "optimizer.revert_failed",
                correlation_id=experiment.correlation_id,
                plugin=experiment.handle.name,
                error=str(exc),
            )
        return
    restore_knobs(experiment, knobs)


def restore_knobs(experiment: Experiment, knobs: KnobStore) -> None:
    """Put back each knob's original value, unless someone changed it since."""
    for knob, original in experiment.originals.items():
        if knob not in experiment.applied:
            continue  # never set (the apply stopped before it): nothing to undo
        applied = experiment.applied[knob]
        try:
            current = knobs.get(knob)
        except KeyError:
            continue  # the knob was removed by a reload
        if current != applied:
            _log.warning(
                "optimizer.revert_skipped",
                correlation_id=experiment.correlation_id,
                knob=knob,
                reason="changed by someone else since the action",
                current=current,
            )
            continue
        knobs.set(
            knob,
            original,
            source="revert",
            reason=f"undo {experiment.proposal.strategy}",
            correlation_id=experiment.correlation_id,
        )
