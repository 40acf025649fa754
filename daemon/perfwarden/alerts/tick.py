"""One evaluation tick, the same for the live daemon and the backtest's replay.

Counts and sets become their per-interval samples, every series with levels is
judged (hold times elapse, silent series become ``no_data``), then idle series
expire. The daemon runs it every ``evaluation.interval`` on its clock; the replay
runs it at the same intervals of simulated time, all at once
(:func:`evaluation_tick`); the daemon judges in slices between its other work
(:func:`sliced_evaluation_tick`, the same steps, the same transitions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfwarden.alerts.evaluator import Evaluator
    from perfwarden.alerts.passes import SlicedPasses
    from perfwarden.series.expiry import SeriesExpiry
    from perfwarden.series.store import MetricStore

__all__ = ["evaluation_tick", "sliced_evaluation_tick"]


def evaluation_tick(
    store: MetricStore, evaluator: Evaluator, expiry: SeriesExpiry, interval: float
) -> None:
    """Roll the interval's counts and sets, judge every series, expire idle ones."""
    store.roll_interval(interval)
    store.take_updated()
    evaluator.tick()
    expiry.sweep()


async def sliced_evaluation_tick(
    store: MetricStore, passes: SlicedPasses, expiry: SeriesExpiry, interval: float
) -> None:
    """:func:`evaluation_tick` with the judging in slices of the loop's time,
    queued behind the evaluation passes that wait (:meth:`SlicedPasses.tick`)."""
    store.roll_interval(interval)
    store.take_updated()
    await passes.tick()
    expiry.sweep()
