"""perfwarden.alerts.passes: the evaluation tick in slices, with the same
transitions (no_data included), in the same order, as all at once."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.alerts.evaluator import AlertEvent, Evaluator
from perfwarden.alerts.passes import CHUNK, SlicedPasses
from perfwarden.config.load import Config, parse_config
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.store import MetricStore
from perfwarden.testing import FakeClock

#: Alerts hold 20 s before they fire; series silent for 60 s become no_data.
CONFIG = """\
version: 1
statistics: {{min_samples: 2}}
evaluation: {{basis: {basis}, window: 2, for: 20s, missing_after: 60}}
metrics:
  lat: {{unit: ms, bound: upper, warning: 10, critical: 20}}
"""


class Ticking:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self._times = itertools.count(0.0, step)

    def __call__(self) -> float:
        return next(self._times)


class Harness:
    """A store, an evaluator and the events it publishes, on a fake clock."""

    def __init__(self, basis: str = "sample") -> None:
        self.config: Config = parse_config(CONFIG.format(basis=basis))
        self.clock = FakeClock()
        self.store = MetricStore(self.config.metric_window, 100_000)
        self.evaluator = Evaluator(self.store, lambda: self.config, clock=self.clock)
        self.events: list[AlertEvent] = []
        self.evaluator.subscribers.append(self.events.append)

    def ingest(self, ids: list[int], value: float) -> None:
        """Two samples of ``value`` for each ``lat`` series of ``ids``, judged."""
        batch = Batch()
        lines = [f"lat:{value}|ms|#id:{i}" for i in ids] * 2
        parse("\n".join(lines).encode(), batch, 8192)
        self.store.ingest(batch, self.clock())
        self.evaluator.evaluate_updated()

    def seen(self) -> list[tuple[str, str]]:
        return [(e.series, e.transition.value) for e in self.events]


def incident(
    basis: str, silent: list[int], held: list[int], calm: list[int]
) -> Harness:
    """Series that went silent while pending, series pending past their hold,
    series that are fine; the clock 70 s on, a tick due."""
    harness = Harness(basis)
    harness.ingest(silent, 250.0)
    harness.clock.advance(30)
    harness.ingest(held, 250.0)
    harness.ingest(calm, 1.0)
    harness.clock.advance(40)
    harness.events.clear()
    return harness


def ids(start: int, count: int) -> list[int]:
    return list(range(start, start + count))


class TestSlicedTick:
    @settings(max_examples=25, deadline=None)
    @given(
        basis=st.sampled_from(["sample", "mean", "multiwindow"]),
        counts=st.tuples(*[st.integers(0, 3 * CHUNK)] * 3),
        step=st.sampled_from([0.0001, 0.001, 1.0]),
    )
    def test_a_tick_in_slices_makes_the_same_transitions_in_order(
        self, basis: str, counts: tuple[int, int, int], step: float
    ) -> None:
        """Silent series go no_data, held ones fire, as one tick at once does."""
        silent, held, calm = (
            ids(0, counts[0]),
            ids(1000, counts[1]),
            ids(2000, counts[2]),
        )
        whole, sliced = (incident(basis, silent, held, calm) for _ in range(2))
        whole.evaluator.tick()

        async def tick() -> SlicedPasses:
            passes = SlicedPasses(sliced.store, sliced.evaluator, clock=Ticking(step))
            await passes.tick()
            return passes

        passes = asyncio.run(tick())
        assert whole.seen() == sliced.seen()
        transitions = [t for _, t in sliced.seen()]
        assert counts[:2] == (transitions.count("no_data"), transitions.count("fired"))
        assert 1 == passes.judged == passes.queued
        if step == 1.0:  # every look at the clock ends the slice: a chunk a turn
            assert passes.slices == max(1, -(-sum(counts) // CHUNK))

    async def test_passes_started_meanwhile_queue_behind_the_tick(self) -> None:
        """A pass that starts while the tick is unfinished judges after it, and
        a command waits for the whole tick."""
        harness = incident("sample", [], ids(0, 3 * CHUNK), [])
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(1.0))
        ticking = asyncio.ensure_future(passes.tick())
        await asyncio.sleep(0)
        assert 0 < len(harness.events) < 3 * CHUNK  # the tick is under way
        harness.store.ingest(_batch("lat:250|ms|#id:new\nlat:250|ms|#id:new"), 0.0)
        passes.start()
        command = asyncio.ensure_future(passes.settled())
        await asyncio.sleep(0)
        assert not ticking.done()
        assert not command.done()
        await command
        assert ticking.done()
        # Every held series fired in the tick before the new one was judged.
        assert [("lat|ms|#id:new", "pending")] == harness.seen()[3 * CHUNK :]
        assert ["fired"] * 3 * CHUNK == [t for _, t in harness.seen()[: 3 * CHUNK]]

    async def test_on_tick_hears_the_time_the_tick_judges_as_of(self) -> None:
        """The recording's tick mark: the time the tick takes when it starts, after
        the passes queued before it, not when it was queued."""
        harness = incident("sample", [], ids(0, 3 * CHUNK), [])
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(1.0))
        heard: list[tuple[float, int]] = []
        passes.on_tick = lambda now: heard.append((now, len(harness.events)))
        harness.store.ingest(_batch("lat:250|ms|#id:new\nlat:250|ms|#id:new"), 0.0)
        passes.start()  # a slice now, the rest on later turns
        ticking = asyncio.ensure_future(passes.tick())
        harness.clock.advance(5)
        await ticking
        # The pass judged everything before the tick started, on the clock then.
        assert [(harness.clock(), 1)] == heard
        assert ("lat|ms|#id:new", "pending") == harness.seen()[0]

    async def test_a_series_that_left_the_store_is_not_ticked(self) -> None:
        """A series dropped during the tick (a reload) gets no transition."""
        harness = incident("sample", ids(0, 2 * CHUNK), [], [])
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(1.0))
        ticking = asyncio.ensure_future(passes.tick())
        await asyncio.sleep(0)
        assert CHUNK == len(harness.events)
        harness.store.drop_names(lambda name: name != "lat")
        await ticking
        assert CHUNK == len(harness.events)

    async def test_finish_ticks_everything_now(self) -> None:
        """At shutdown the rest of a tick is judged at once and its waiter told."""
        harness = incident("sample", ids(0, 3 * CHUNK), [], [])
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(1.0))
        ticking = asyncio.ensure_future(passes.tick())
        await asyncio.sleep(0)
        passes.finish()
        assert (0, 3 * CHUNK) == (passes.waiting, len(harness.events))
        await ticking


def _batch(text: str) -> Batch:
    batch = Batch()
    parse(text.encode(), batch, 8192)
    return batch
