"""Direct appends (perfwarden.series.direct): the parser writes plain samples of
series nobody judges straight into their windows. Whatever the lines, a store fed
that way holds what a store fed batch by batch holds, and accounts the same."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.ingest.receivers import Ingestor
from perfwarden.ingest.routes import MAX_ROUTES, Routes
from perfwarden.ingest.statsd import set_tag_limits
from perfwarden.series.store import MetricStore
from perfwarden.series.window import SINK_FLUSH_AT
from perfwarden.testing import FakeClock

_TAGS = ("", "|#x:1,y:2", "|#y:2,x:1")
_BANDS = {"judged": (-5.0, 50.0)}


def _line(tags: str) -> st.SearchStrategy[str]:
    name = st.sampled_from(("a", "b", "judged", "c"))
    value = st.sampled_from(("1", "2.5", "-3", "+4", "40000", "0.1", "x", "1:2:3"))
    kind = st.sampled_from(("ms", "g", "c", "h", "d", "s", "c|@0.5", "ms|@0.5"))
    extra = st.sampled_from(("", "|c:abc", "|T1", "|@bad"))
    return st.builds(
        lambda n, v, k, e: f"{n}:{v}|{k}{tags}{e}", name, value, kind, extra
    )


def _commits(tags: str) -> st.SearchStrategy[list[list[list[str]]]]:
    """Batches of payloads of lines. One tag spelling an example: the batch path
    takes a batch's values raw key by raw key, so two spellings of one series in
    a batch would come in another order than the lines (the direct path keeps
    the lines' order; tested below)."""
    return st.lists(st.lists(st.lists(_line(tags), max_size=6), max_size=3), max_size=8)


def _store(*, direct: bool) -> MetricStore:
    store = MetricStore(lambda _: 50, 6, _BANDS.get)
    store.set_direct(direct)
    return store


def _held(store: MetricStore) -> dict[str, Any]:
    store.sync_direct()
    return {
        s.key: (
            [_summed(v) for v in s.window.values().tolist()]
            if s.type == "c"
            else s.window.values().tolist(),
            s.window.total_count,
            _summed(s.pending),
            sorted(s.members or ()),
            s.last_update,
        )
        for s in store
    }


def _summed(total: float) -> float:
    """A count's sum to 12 digits: fed directly, its increments are added in
    another order (0.1 + 0.1 + 1 is not 0.1 + 1 + 0.1 in binary)."""
    return float(f"{total:.12g}")


@settings(max_examples=300, deadline=None)
@given(
    commits=st.sampled_from(_TAGS).flatmap(_commits),
    deltas=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_a_store_fed_directly_holds_what_batches_give(
    commits: list[list[list[str]]], deltas: list[bool]
) -> None:
    """Same windows (values in order), counts, sets, last updates, judged and
    urgent series, and line accounting; the series cap (6) drops alike."""
    clocks = FakeClock(), FakeClock()
    stores = _store(direct=True), _store(direct=False)
    ingestors = [
        Ingestor(s, 8192, c, wall=lambda: 100.0)
        for s, c in zip(stores, clocks, strict=True)
    ]
    for commit, reading in zip(commits, deltas, strict=False):
        for ingestor, clock in zip(ingestors, clocks, strict=True):
            ingestor.gauge_deltas = reading  # a flip voids the parser's routes
            for payload in commit:
                ingestor.feed("\n".join(payload).encode())
            ingestor.commit()
            # Synced after each batch, last_update is exact (else it may be up
            # to a sync period later than the series' last line).
            ingestor.store.sync_direct()
            clock.advance(0.5)
        direct, batched = stores
        assert direct.take_urgent() == batched.take_urgent()
        assert {s.key for s in direct.take_updated()} == {
            s.key for s in batched.take_updated()
        }
    assert _held(stores[0]) == _held(stores[1])
    for store in stores:
        store.roll_interval(10.0)
    assert _held(stores[0]) == _held(stores[1])
    assert ingestors[0].counters.as_dict() == ingestors[1].counters.as_dict()


def _fed(lines: bytes, clock: FakeClock, store: MetricStore) -> Ingestor:
    ingestor = Ingestor(store, 8192, clock)
    ingestor.feed(lines)
    ingestor.commit()
    return ingestor


class TestVisits:
    def test_batches_pay_for_visits_round_the_series(self) -> None:
        """Without any full sync, every series is visited once its share of
        lines arrived: last_update moves, counts add up, lists stay short."""
        clock = FakeClock()
        store = MetricStore(lambda _: 1000, 1000, lambda _: None)
        store.set_direct(True)
        ingestor = Ingestor(store, 8192, clock)
        names = [f"m{i}:1|ms" if i % 3 else f"n{i}:1|c" for i in range(200)]
        for _ in range(3):  # the first round creates the series (batch path)
            for first in range(0, 200, 50):
                ingestor.feed("\n".join(names[first : first + 50]).encode())
                ingestor.commit()
        start = clock()
        longest = 0
        for _ in range(2 * SINK_FLUSH_AT):  # each series flushed at least once
            clock.advance(1.0)
            for first in range(0, 200, 50):
                ingestor.feed("\n".join(names[first : first + 50]).encode())
                ingestor.commit()
            longest = max(longest, *(len(sink) for sink in store.sinks.values()))
        # A visit every 16 x 200 lines or so: one a series every 16 rounds.
        assert SINK_FLUSH_AT <= longest <= SINK_FLUSH_AT + 2 * 16
        for series in store:
            assert series.last_update > start + 16.0
        count = store.get("n0|c")
        assert count is not None
        assert count.pending >= 3 + 16  # increments added without a roll

    def test_a_full_sync_leaves_the_flushing_to_the_readers(self) -> None:
        store = _store(direct=True)
        ingestor = _fed(b"m:1|ms", FakeClock(), store)
        ingestor.feed(b"\n".join([b"m:2|ms"] * 40))
        ingestor.commit()
        held = store.get("m|ms")
        assert held is not None
        store.sync_direct()
        assert 41 == len(held.window.sink())  # the first value too
        assert 41 == len(held.window)


class TestRoutes:
    def test_lines_are_routed_after_their_first_fast_one(self) -> None:
        store = _store(direct=True)
        ingestor = _fed(b"m:1|ms|#x:1", FakeClock(), store)  # learned, sink made
        ingestor.feed(b"m:2|ms|#x:1")  # found through the raw key: routed
        ingestor.commit()
        assert {"ms|#x:1": {"m": store.sinks["m|ms|#x:1"]}} == store.routes.table
        ingestor.feed(b"m:3|ms|#x:1\nm:x|ms|#x:1")  # routed; not a number: checked
        ingestor.commit()
        held = store.get("m|ms|#x:1")
        assert held is not None
        assert [1.0, 2.0, 3.0] == held.window.values().tolist()
        assert {"bad_value": 1} == ingestor.counters.malformed

    def test_a_new_series_is_routed_from_its_second_line_on(self) -> None:
        """The store gives the parser a new series' route with its list, so its
        second line takes the one lookup; not a gauge's, whose signed values may
        be changes (the parser learns those routes only while they are not)."""
        store = _store(direct=True)
        _fed(b"t:1|ms|#x:1\nc:1|c\nh:1|h\ng:1|g", FakeClock(), store)
        sinks = store.sinks
        assert {
            "ms|#x:1": {"t": sinks["t|ms|#x:1"]},
            "c": {"c": sinks["c|c"]},
            "h": {"h": sinks["h|h"]},
        } == store.routes.table

    def test_new_tag_limits_void_the_routes(self) -> None:
        """A route learned under the old limits must not let a line past the new."""
        store = _store(direct=True)
        ingestor = _fed(b"m:1|ms|#x:1,y:2", FakeClock(), store)
        ingestor.feed(b"m:2|ms|#x:1,y:2")
        ingestor.commit()
        assert store.routes.table
        try:
            set_tag_limits(1024, 1)
            ingestor.feed(b"m:3|ms|#x:1,y:2")
            ingestor.commit()
        finally:
            set_tag_limits(1024, 32)
        assert {"too_many_tags": 1} == ingestor.counters.malformed
        assert not store.routes.table

    def test_a_new_gauge_reading_voids_the_routes(self) -> None:
        """Routed as an absolute value before, a signed gauge is a change after."""
        store = _store(direct=True)
        ingestor = _fed(b"g:5|g", FakeClock(), store)
        ingestor.feed(b"g:6|g")
        ingestor.commit()
        ingestor.gauge_deltas = True
        ingestor.feed(b"g:+1|g")
        ingestor.commit()
        held = store.get("g|g")
        assert held is not None
        assert [5.0, 6.0, 7.0] == held.window.values().tolist()

    def test_the_table_is_bounded(self) -> None:
        routes = Routes()
        target: list[float] = []
        for i in range(MAX_ROUTES + 1):
            routes.add(f"ms|c:{i}", "m", target)
        assert 1 == routes.entries == len(routes.table)


class TestBookkeeping:
    def test_last_update_is_the_latest_batch_at_the_next_sync(self) -> None:
        clock = FakeClock()
        store = _store(direct=True)
        ingestor = _fed(b"m:1|ms", clock, store)  # the first line: the batch path
        assert {"m|ms"} == set(store.sinks)
        clock.advance(30.0)
        ingestor.feed(b"m:2|ms")
        ingestor.commit()
        held = store.get("m|ms")
        assert held is not None
        assert 2 == held.window.total_count  # counted at once
        first = held.last_update
        store.sync_direct()
        assert held.last_update == first + 30.0

    def test_expiry_syncs_first(self) -> None:
        """A series fed only directly for longer than its expiry is not idle."""
        clock = FakeClock()
        store = _store(direct=True)
        ingestor = _fed(b"m:1|ms", clock, store)
        for _ in range(5):
            clock.advance(20.0)
            ingestor.feed(b"m:1|ms")
            ingestor.commit()
        assert not store.expire(clock(), lambda name: 60.0)
        clock.advance(61.0)
        assert [("m|ms", 61.0)] == [
            (s.key, idle) for s, idle in store.expire(clock(), lambda name: 60.0)
        ]
        assert not store.sinks  # its list is no longer fed
        assert not store.routes.table

    def test_counts_add_up_at_the_interval(self) -> None:
        clock = FakeClock()
        store = _store(direct=True)
        ingestor = _fed(b"n:1|c", clock, store)
        ingestor.feed(b"n:2|c\nn:3|c|@0.5")
        ingestor.commit()
        store.roll_interval(1.0)
        held = store.get("n|c")
        assert held is not None
        assert [9.0] == held.window.values().tolist()

    def test_judged_series_and_sets_keep_the_batch_path(self) -> None:
        store = _store(direct=True)
        _fed(b"judged:1|ms\nu:x|s\nm:1|g", FakeClock(), store)
        assert {"m|g"} == set(store.sinks)

    def test_levels_given_by_a_reload_take_the_sink_away(self) -> None:
        clock = FakeClock()
        store = _store(direct=True)
        ingestor = _fed(b"m:1|ms", clock, store)
        store.reconfigure(lambda _: 50, 6, {"m": (0.0, 10.0)}.get)
        assert not store.sinks
        ingestor.feed(b"m:20|ms")
        ingestor.commit()
        assert store.take_urgent()
        assert ["m|ms"] == [s.key for s in store.take_updated()]

    def test_two_spellings_of_a_series_keep_the_lines_order(self) -> None:
        store = _store(direct=True)
        ingestor = _fed(b"m:1|ms|#x:1,y:2\nm:2|ms|#y:2,x:1", FakeClock(), store)
        assert 2 == len(store.sinks)
        ingestor.feed(b"m:3|ms|#y:2,x:1\nm:4|ms|#x:1,y:2\nm:5|ms|#y:2,x:1")
        ingestor.commit()
        held = store.get("m|ms|#x:1,y:2")
        assert held is not None
        assert [1.0, 2.0, 3.0, 4.0, 5.0] == held.window.values().tolist()

    def test_turned_off_nothing_is_fed_directly(self) -> None:
        store = _store(direct=True)
        _fed(b"m:1|ms", FakeClock(), store)
        store.set_direct(False)
        assert not store.sinks
