"""The replay: history through a real store, evaluator and expiry on a simulated clock.

Chunks arrive in time order. Chunks with the same time form one batch, as one
ingest commit does live: the store takes it (``|T`` stamps count at their own
time, as live), then the evaluator judges the series it touched. Between batches
the evaluation ticks due run (:func:`~perfwarden.alerts.tick.evaluation_tick`, the
daemon's own tick) every ``evaluation.interval`` of simulated time. A recording
carries the daemon's tick marks, in order with the samples: a mark within half an
interval of a due tick runs that tick at the mark's time, so ticks fall exactly
where the daemon's fell. After the last chunk the ticks run on to the end of the
replay. The silences a recording noted (:mod:`perfwarden.recording.silences`) are
put in force through the evaluator's own silences at their time (those noted
before ``start`` too), so an alert silenced live is silenced here; the alert
events are collected with their ``silenced`` flag, silenced ones included.

Nothing here writes a file: the replay's store, alerts and expiry live in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from perfwarden.alerts.evaluator import AlertEvent, Evaluator, Silence
from perfwarden.alerts.tick import evaluation_tick
from perfwarden.ingest.statsd import Batch
from perfwarden.recording.recorder import TICK_KEY
from perfwarden.recording.silences import decode_silences, is_silences
from perfwarden.series.expiry import SeriesExpiry
from perfwarden.series.store import MetricStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from perfwarden.backtest.sources import Chunk
    from perfwarden.config.load import Config

__all__ = ["Replay", "ReplayResult", "SimulatedClock"]


class SimulatedClock:
    """The replay's time (unix seconds), for both the monotonic and the wall clock."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class ReplayResult:
    """What one replay saw and decided."""

    events: list[AlertEvent] = field(default_factory=list)
    samples: int = 0
    series: set[str] = field(default_factory=set)
    start: float | None = None
    end: float | None = None
    ticks: int = 0
    #: Lines the series cap dropped, as live.
    dropped: int = 0
    #: Every silence the history put in force, by id (``Silence.as_dict()``).
    silences: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Silence records that could not be read (skipped).
    bad_silence_records: int = 0


class Replay:
    """One config replayed over one history.

    ``metrics`` limits the replay to those metric names (empty: all); ``start`` and
    ``end`` (unix seconds) cut the history; ``progress`` is called with the
    simulated time now and then.
    """

    def __init__(
        self,
        config: Config,
        *,
        metrics: Iterable[str] = (),
        start: float | None = None,
        end: float | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = SimulatedClock()
        self.store = MetricStore(config.metric_window, config.statistics.max_series)
        self.evaluator = Evaluator(
            self.store, lambda: config, clock=self.clock, wall=self.clock
        )
        self.expiry = SeriesExpiry(
            self.store, self.evaluator, _forget_nothing, lambda: config, self.clock
        )
        self.result = ReplayResult()
        self.evaluator.watchers.append(self.result.events.append)
        self._metrics = frozenset(metrics)
        self._wanted: dict[str, bool] = {}
        self._start = start
        self._end = end
        self._progress = progress
        self._next_tick: float | None = None
        self._batches = 0

    def run(self, chunks: Iterable[Chunk]) -> ReplayResult:
        """Replay ``chunks`` (time-ordered) to the end; return what was decided."""
        result = self.result
        start, end = self._start, self._end
        batch = Batch()
        open_at: float | None = None  # the time of the batch being gathered
        seen: float | None = None
        samples = 0
        wanted = self._wanted
        for at, key, values, stamp in chunks:
            if start is not None and at < start:
                if is_silences(key):
                    self._silences(key)
                continue
            if end is not None and at > end:
                break
            seen = at
            if key == TICK_KEY:
                if open_at is not None:
                    self._commit(batch, open_at)
                    open_at = None
                self._tick_mark(at)
                continue
            keep = wanted.get(key)
            if keep is None:
                if is_silences(key):
                    if open_at is not None:
                        self._commit(batch, open_at)
                        open_at = None
                    if self._next_tick is not None:
                        self._ticks_until(at)
                    self.clock.now = max(self.clock.now, at)
                    self._silences(key)
                    continue
                keep = wanted[key] = self._want(key)
            if not keep:
                continue
            if at != open_at:
                if open_at is not None:
                    self._commit(batch, open_at)
                self._ticks_until(at)
                open_at = at
            if stamp is None:
                bucket = batch.values.get(key)
                if bucket is None:
                    # The store only takes len(), sum() and the window's
                    # extend() of it: a recording's array goes in as it is.
                    batch.values[key] = cast("list[float]", values)
                else:
                    batch.values[key] = [*bucket, *values]
            else:
                whole = int(stamp)
                batch.stamped.setdefault(key, []).extend((whole, v) for v in values)
            samples += len(values)
        if open_at is not None:
            self._commit(batch, open_at)
        # The history ends with its last chunk or tick mark (a recording goes on
        # ticking after the last sample, so hold times still elapse).
        finish = end if end is not None else seen
        if finish is not None:
            self._ticks_until(finish)
            self.clock.now = max(self.clock.now, finish)
        result.samples = samples
        result.series = {series.key for series in self.store} | {
            event.series for event in result.events
        }
        result.end = finish
        result.dropped = self.store.dropped_lines
        return result

    def _want(self, key: str) -> bool:
        return not self._metrics or key.partition("|")[0] in self._metrics

    def _silences(self, key: str) -> None:
        """Put exactly the silences of a record in force (expired ones lapse)."""
        try:
            noted = [_silence_of(item) for item in decode_silences(key)]
        except (ValueError, KeyError, TypeError):
            self.result.bad_silence_records += 1
            return
        silences = self.evaluator.silences
        kept = {silence.id for silence in noted}
        for silence in silences.active():
            if silence.id not in kept:
                silences.remove(silence.id)
        silences.restore(noted)
        for silence in noted:
            self.result.silences[silence.id] = silence.as_dict()

    def _commit(self, batch: Batch, at: float) -> None:
        self.clock.now = at
        if self.result.start is None:
            self.result.start = at
        self.store.ingest(batch, at)
        self.evaluator.evaluate_updated()
        batch.values.clear()
        batch.stamped.clear()
        self._batches += 1
        if self._progress is not None and self._batches % 4096 == 0:
            self._progress(at)

    def _tick_mark(self, at: float) -> None:
        """A tick the daemon ran at ``at``: the simulated tick due within half an
        interval of it runs exactly then, so ticks fall where the daemon's fell
        (a mark far from any due tick, as with another interval, changes nothing)."""
        half = self.config.evaluation.interval / 2
        if self._next_tick is None:
            self._next_tick = at
            if self.result.start is None:
                self.result.start = at
        self._ticks_until(at - half)
        if self._next_tick <= at + half:
            self._next_tick = at
            self._ticks_until(at)

    def _ticks_until(self, at: float) -> None:
        interval = self.config.evaluation.interval
        if self._next_tick is None:
            self._next_tick = at + interval
            if self.result.start is None:
                self.result.start = at
            return
        while self._next_tick <= at:
            self.clock.now = self._next_tick
            evaluation_tick(self.store, self.evaluator, self.expiry, interval)
            self.result.ticks += 1
            self._next_tick += interval


def _silence_of(item: dict[str, Any]) -> Silence:
    matchers = item["matchers"]
    if not isinstance(matchers, dict):
        msg = "matchers are not a mapping"
        raise TypeError(msg)
    return Silence(
        id=str(item["id"]),
        metric=str(item["metric"]),
        matchers={str(k): str(v) for k, v in matchers.items()},
        until=float(item["until"]),
        created=float(item["created"]),
        comment=str(item.get("comment", "")),
    )


def _forget_nothing(keys: Iterable[str]) -> None:
    """Expired series leave no saved state behind: a replay has none."""
    del keys
