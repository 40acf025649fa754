"""perfwarden.alerts.passes and .publisher: an evaluation pass and its events in
slices, with the same transitions, in the same order, as all at once."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from perfwarden.alerts.evaluator import AlertEvent, Evaluator
from perfwarden.alerts.passes import CHUNK, SlicedPasses
from perfwarden.alerts.publisher import SlicedPublisher
from perfwarden.config.load import Config, parse_config
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.store import MetricStore
from perfwarden.testing import FakeClock

CONFIG = """\
version: 1
statistics: {min_samples: 2}
evaluation: {basis: sample, window: 2}
metrics:
  lat: {unit: ms, bound: upper, warning: 10, critical: 20}
  other: {unit: ms, bound: upper, warning: 10, critical: 20}
"""


class Ticking:
    """A clock that moves ``step`` seconds each time it is read: every look at
    it spends loop time, so a slice of 5 ms ends after a few reads."""

    def __init__(self, step: float) -> None:
        self._times = itertools.count(0.0, step)

    def __call__(self) -> float:
        return next(self._times)


class Harness:
    """A store, an evaluator and the events it publishes, on a fake clock."""

    def __init__(self) -> None:
        self.config: Config = parse_config(CONFIG)
        self.clock = FakeClock()
        self.store = MetricStore(self.config.metric_window, 100_000)
        self.evaluator = Evaluator(self.store, lambda: self.config, clock=self.clock)
        self.events: list[AlertEvent] = []
        self.evaluator.subscribers.append(self.events.append)

    def ingest(self, lines: list[str]) -> None:
        batch = Batch()
        parse("\n".join(lines).encode(), batch, 8192)
        self.store.ingest(batch, self.clock())

    def pass_order(self) -> list[str]:
        """The keys in the order the next pass will judge them."""
        return [series.key for series in self.store._updated]

    def seen(self) -> list[tuple[str, str]]:
        return [(e.series, e.transition.value) for e in self.events]


def storm(count: int, value: float = 250.0) -> list[str]:
    return [f"lat:{value}|ms|#id:{i}" for i in range(count)] * 2


async def published(publisher: SlicedPublisher) -> None:
    """Let the loop turn until the publisher has nothing waiting."""
    while publisher.waiting:  # noqa: ASYNC110 - the loop's turns are under test
        await asyncio.sleep(0)


async def turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


class TestSlicedPasses:
    async def test_one_slice_a_loop_turn_however_many_passes_start(self) -> None:
        """A pass that starts while a slice is due leaves the judging to it."""
        harness = Harness()
        harness.ingest(storm(3 * CHUNK))
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(1.0))
        passes.start()
        harness.ingest(["lat:250|ms|#id:later", "lat:250|ms|#id:later"])
        passes.start()
        assert (1, 2 * CHUNK + 1) == (passes.slices, passes.waiting)
        await turns(3)
        assert (4, 0) == (passes.slices, passes.waiting)

    async def test_a_pass_in_slices_makes_the_same_transitions_in_order(self) -> None:
        """1,000 series firing: judged in several loop turns, the events are the
        ones one all-at-once pass makes, in the same order."""
        whole, sliced = Harness(), Harness()
        for harness in (whole, sliced):
            harness.ingest(storm(1000))
        # A pass judges in the order the store hands the updated series over.
        order = sliced.pass_order()
        whole.store.take_updated()
        whole.evaluator.evaluate(whole.store.get(key) for key in order)  # type: ignore[misc]
        passes = SlicedPasses(sliced.store, sliced.evaluator, clock=Ticking(0.001))
        passes.start()
        assert 0 < passes.waiting < 1000  # the rest waits for the next loop turns
        await passes.settled()
        assert 1000 == len(whole.events)
        assert whole.seen() == sliced.seen()
        assert passes.slices > 1
        assert 1000 == passes.judged == passes.queued

    async def test_each_slice_judges_at_least_a_chunk(self) -> None:
        """A slow clock cannot stall the pass: each loop turn judges a chunk."""
        harness = Harness()
        harness.ingest(storm(3 * CHUNK))
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(1.0))
        passes.start()
        assert 2 * CHUNK == passes.waiting
        await turns(4)
        assert 0 == passes.waiting
        assert 3 == passes.slices

    async def test_a_second_pass_queues_behind_the_first(self) -> None:
        """A series updated again while queued is judged once, in its first
        place, with every sample; new series follow."""
        harness = Harness()
        harness.ingest(storm(200))
        last = harness.pass_order()[-1]  # still queued after the first slice
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(0.002))
        passes.start()
        assert last not in [key for key, _ in harness.seen()]
        ident = last.rpartition(":")[2]
        harness.ingest([f"lat:1|ms|#id:{ident}", "lat:250|ms|#id:new"])
        passes.start()
        await passes.settled()
        assert 201 == passes.judged
        keys = [key for key, _ in harness.seen()]
        assert ["lat|ms|#id:new"] == keys[-1:]
        # Its newest value (1) was judged with the others: it fired and resolved
        # in that one judgement, at its first place, before id:new fired.
        assert [(last, "fired"), (last, "resolved")] == [
            e for e in harness.seen() if e[0] == last
        ]
        assert 199 == keys.index(last)  # after the 199 others, as it was queued

    async def test_finish_judges_everything_now(self) -> None:
        """At shutdown the rest of a pass is judged at once."""
        harness = Harness()
        harness.ingest(storm(500))
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(0.001))
        passes.start()
        passes.finish()
        assert (0, 500) == (passes.waiting, len(harness.events))

    async def test_settled_waits_only_for_what_was_queued_before(self) -> None:
        """A command waits for the series queued when it came, not for later ones."""
        harness = Harness()
        harness.ingest(storm(3 * CHUNK))
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(1.0))
        passes.start()
        waiter = asyncio.ensure_future(passes.settled())
        await asyncio.sleep(0)
        assert not waiter.done()
        harness.ingest([f"lat:250|ms|#id:later{i}" for i in range(10 * CHUNK)])
        passes.start()
        await waiter
        assert 3 * CHUNK <= passes.judged < 13 * CHUNK  # the later ones still wait
        await passes.settled()
        assert 13 * CHUNK == len(harness.events)

    async def test_a_series_that_left_the_store_is_not_judged(self) -> None:
        """A series dropped while queued (a reload) gets no alert state back."""
        harness = Harness()
        harness.ingest(storm(2 * CHUNK))
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(1.0))
        passes.start()
        harness.ingest(["other:250|ms", "other:250|ms"])
        passes.start()  # queues "other" behind the second chunk
        await asyncio.sleep(0)  # the turn's slice judges the second chunk
        assert 1 == passes.waiting
        harness.store.drop_names(lambda name: name != "other")
        await passes.settled()
        assert "other|ms" not in harness.evaluator.alerts
        assert 2 * CHUNK == len(harness.events)


class TestSlicedPublisher:
    async def test_events_within_the_slice_go_out_at_once(self) -> None:
        """A few transitions are published inside the pass, as without slicing."""
        harness = Harness()
        publisher = SlicedPublisher(harness.evaluator.publish)
        harness.evaluator.deliver = publisher.put
        harness.ingest(storm(3))
        harness.evaluator.evaluate_updated()
        assert (3, 0) == (len(harness.events), publisher.deferred)

    @settings(max_examples=20, deadline=None)
    @given(count=st.integers(1, 300), step=st.sampled_from([0.0001, 0.001, 0.01]))
    def test_every_event_is_logged_once_in_order(self, count: int, step: float) -> None:
        """However the slices fall, every transition is logged and told to the
        subscribers once, in the order the pass made them."""

        async def run() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
            harness = Harness()
            publisher = SlicedPublisher(harness.evaluator.publish, clock=Ticking(step))
            harness.evaluator.deliver = publisher.put
            harness.ingest(storm(count))
            order.extend(harness.pass_order())
            with capture_logs() as logs:
                harness.evaluator.evaluate_updated()
                await published(publisher)
            logged = [
                (str(line["series"]), str(line["event"]).removeprefix("alert."))
                for line in logs
                if str(line["event"]).startswith("alert.")
            ]
            return logged, harness.seen()

        order: list[str] = []
        logged, seen = asyncio.run(run())
        expected = [(key, "fired") for key in order]
        assert expected == logged == seen

    def test_without_a_loop_events_go_out_at_once(self) -> None:
        """A synchronous caller (a test, a tool) has no loop to yield to."""
        harness = Harness()
        publisher = SlicedPublisher(harness.evaluator.publish, clock=Ticking(0.01))
        harness.evaluator.deliver = publisher.put
        harness.ingest(storm(50))
        harness.evaluator.evaluate_updated()
        assert (50, 0) == (len(harness.events), publisher.waiting)

    async def test_flush_publishes_what_waits(self) -> None:
        """Shutdown loses no event."""
        harness = Harness()
        publisher = SlicedPublisher(harness.evaluator.publish, clock=Ticking(0.01))
        harness.evaluator.deliver = publisher.put
        harness.ingest(storm(100))
        harness.evaluator.evaluate_updated()
        assert publisher.waiting
        publisher.flush()
        assert (0, 100) == (publisher.waiting, len(harness.events))

    async def test_judging_goes_first(self) -> None:
        """Waiting events are published once the pass has judged what it queued."""
        harness = Harness()
        passes = SlicedPasses(harness.store, harness.evaluator, clock=Ticking(0.001))
        publisher = SlicedPublisher(
            harness.evaluator.publish, clock=Ticking(0.001), judged=passes.settled
        )
        harness.evaluator.deliver = publisher.put
        harness.ingest(storm(400))
        passes.start()
        while passes.waiting:
            before = len(harness.events)
            await asyncio.sleep(0)
            if passes.waiting:
                # Only the slices' own inline events came out meanwhile.
                assert len(harness.events) - before <= 10
        await published(publisher)
        assert 400 == len(harness.events)
