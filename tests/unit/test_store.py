"""The metric store's series lifecycle: the series cap, and expiry of idle series."""

from __future__ import annotations

import math

import pytest

from perfwarden.alerts.evaluator import Silence
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.store import MetricStore, canonical_tags
from perfwarden.testing import FakeClock

HOUR = 3600.0


def feed(store: MetricStore, clock: FakeClock, *keys: str) -> None:
    """One gauge value (or count/set line) per raw key, at the clock's time."""
    batch = Batch(received=len(keys), accepted=len(keys))
    for key in keys:
        if key.split("|")[1] == "s":
            batch.members.setdefault(key, []).append("member")
        else:
            batch.values.setdefault(key, []).append(1.0)
    store.ingest(batch, clock())


def hourly(name: str) -> float:
    return HOUR


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="store")
def _store() -> MetricStore:
    return MetricStore(lambda name: 10, max_series=3)


class TestExpire:
    def test_idle_series_is_forgotten(
        self, store: MetricStore, clock: FakeClock
    ) -> None:
        """A series idle longer than expire_after leaves the store; a busy one stays."""
        feed(store, clock, "old|g|#pid:1", "busy|g")
        clock.advance(HOUR - 1)
        feed(store, clock, "busy|g")
        assert [] == store.expire(clock(), hourly)
        clock.advance(2)
        expired = store.expire(clock(), hourly)
        assert [("old|g|#pid:1", HOUR + 1)] == [(s.key, idle) for s, idle in expired]
        assert ["busy|g"] == [s.key for s in store]
        assert store.get("old|g|#pid:1") is None
        assert [] == store.by_name("old")
        assert ["busy"] == store.names()

    def test_the_limit_is_per_metric_name_and_zero_is_never(
        self, store: MetricStore, clock: FakeClock
    ) -> None:
        """expire_after is asked per name; 0 keeps a series however long it idles."""
        feed(store, clock, "kept|g", "short|ms")
        asked: list[str] = []

        def limit(name: str) -> float:
            asked.append(name)
            return 0.0 if name == "kept" else 60.0

        clock.advance(10 * HOUR)
        assert ["short|ms"] == [s.key for s, _ in store.expire(clock(), limit)]
        assert ["kept|g"] == [s.key for s in store]
        assert ["kept", "short"] == sorted(asked)

    def test_counts_and_sets_expire_on_lines_not_interval_rolls(
        self, store: MetricStore, clock: FakeClock
    ) -> None:
        """The zero rate a silent count gets every interval does not keep it alive."""
        feed(store, clock, "hits|c", "users|s")
        for _ in range(4):
            clock.advance(HOUR / 4 + 1)
            store.roll_interval(1.0)
        expired = store.expire(clock(), hourly)
        assert ["hits|c", "users|s"] == sorted(s.key for s, _ in expired)
        assert 0 == len(store)

    def test_a_freed_slot_takes_a_new_series_under_the_cap(
        self, store: MetricStore, clock: FakeClock
    ) -> None:
        """At the cap a new series is dropped; once one expires, it gets the slot."""
        feed(store, clock, "m|g|#pid:1", "m|g|#pid:2", "m|g|#pid:3")
        clock.advance(HOUR)
        feed(store, clock, "m|g|#pid:2", "m|g|#pid:3", "m|g|#pid:4")
        assert 1 == store.dropped_lines
        clock.advance(1)
        assert ["m|g|#pid:1"] == [s.key for s, _ in store.expire(clock(), hourly)]
        feed(store, clock, "m|g|#pid:4")
        assert 1 == store.dropped_lines
        assert ["m|g|#pid:2", "m|g|#pid:3", "m|g|#pid:4"] == sorted(
            s.key for s in store.by_name("m")
        )

    def test_a_key_that_comes_back_starts_an_empty_series(
        self, store: MetricStore, clock: FakeClock
    ) -> None:
        """The same key after expiry (even in another tag order) is a new series."""
        feed(store, clock, "m|g|#b:2,a:1")
        (old,) = store
        clock.advance(HOUR + 1)
        store.expire(clock(), hourly)
        feed(store, clock, "m|g|#b:2,a:1")
        (new,) = store
        assert new is not old
        assert "m|g|#a:1,b:2" == new.key
        assert (1, 1) == (len(new.window), new.window.total_count)
        assert {new} == store.take_updated()

    def test_expired_series_are_not_reported_updated(
        self, store: MetricStore, clock: FakeClock
    ) -> None:
        """take_updated() never hands out a series that is gone."""
        feed(store, clock, "m|g")
        clock.advance(HOUR + 1)
        store.expire(clock(), hourly)
        assert set() == store.take_updated()

    def test_longest_idle_first(self, store: MetricStore, clock: FakeClock) -> None:
        """Several expire in one sweep, longest idle first, each with its idle time."""
        feed(store, clock, "a|g")
        clock.advance(10)
        feed(store, clock, "b|g")
        clock.advance(5)
        feed(store, clock, "c|g")
        clock.advance(HOUR + 1)
        expired = store.expire(clock(), hourly)
        assert [("a|g", HOUR + 16), ("b|g", HOUR + 6), ("c|g", HOUR + 1)] == [
            (s.key, idle) for s, idle in expired
        ]

    def test_unknown_last_update_starts_idling_at_the_first_sweep(
        self, store: MetricStore, clock: FakeClock
    ) -> None:
        """A series without a last update (an old state file) is not expired at once."""
        feed(store, clock, "m|g")
        (series,) = store
        series.last_update = 0.0
        clock.advance(10 * HOUR)
        assert [] == store.expire(clock(), hourly)
        assert clock() == series.last_update
        clock.advance(HOUR + 1)
        assert [series] == [s for s, _ in store.expire(clock(), hourly)]


class TestDropNames:
    def test_drops_every_series_of_the_names(
        self, store: MetricStore, clock: FakeClock
    ) -> None:
        """drop_names() forgets whole metrics and frees their slots."""
        feed(store, clock, "a|g|#x:1", "a|ms", "b|g")
        assert ["a"] == store.drop_names(lambda name: name != "a")
        assert ["b|g"] == [s.key for s in store]
        assert ["b"] == store.names()
        feed(store, clock, "c|g", "d|g")
        assert 0 == store.dropped_lines


class TestDuplicateTagKeys:
    def test_values_of_a_repeated_key_are_kept(self) -> None:
        """#k:1,k:2 keeps both values in the tag mapping, sorted, comma-joined."""
        store = MetricStore(lambda name: 100, max_series=100)
        batch = Batch()
        parse(b"m:1|g|#k:2,k:1,z", batch, 8192)
        store.ingest(batch, 0.0)
        (series,) = store.by_name("m")
        assert {"k": "1,2", "z": ""} == series.tag_dict

    def test_silence_matches_either_value(self) -> None:
        """silence --tag k:1 covers the series sent with #k:1,k:2."""
        silence = Silence("s1", "m", {"k": "1"}, 10.0, 0.0, "")
        assert silence.matches("m", {"k": "1,2"})
        assert not silence.matches("m", {"k": "12"})
        assert not silence.matches("m", {})


class TestGaugeDeltas:
    def test_delta_added_to_the_latest_sample(self) -> None:
        """A delta that opens a batch continues from the series' latest value."""
        store = MetricStore(lambda name: 100, max_series=100)
        for data in (b"g:10|g", b"g:+3|g\ng:-1|g", b"g2:-4|g"):
            batch = Batch()
            parse(data, batch, 8192, gauge_deltas=True)
            store.ingest(batch, 0.0)
        (series,) = store.by_name("g")
        assert [10.0, 12.0] == series.window.values().tolist()
        (fresh,) = store.by_name("g2")
        assert [-4.0] == fresh.window.values().tolist()


class TestLabel:
    def test_label_is_metric_and_tags(self) -> None:
        """User text names a series metric{k=v,...}, never with its type suffix."""
        store = MetricStore(lambda name: 10, max_series=10)
        batch = Batch()
        parse(b"m:1|g|#z,k:1\nn:1|ms", batch, 8192)
        store.ingest(batch, 0.0)
        assert "m{k=1,z}" == store.by_name("m")[0].label
        assert "n" == store.by_name("n")[0].label


JUDGED = (-math.inf, math.inf)


class TestUpdated:
    def test_only_judged_series_are_reported(self, clock: FakeClock) -> None:
        """take_updated() reports the series of judged names (metrics with levels):
        the evaluator's pass does not walk thousands of series it would skip."""
        store = MetricStore(lambda name: 10, 10, {"latency": JUDGED}.get)
        feed(store, clock, "latency|ms", "other|g", "hits|c")
        assert ["latency|ms"] == [s.key for s in store.take_updated()]
        store.roll_interval(1.0)
        assert [] == [s.key for s in store.take_updated()]

    def test_reconfigure_changes_what_is_judged(self, clock: FakeClock) -> None:
        """A reload that gives a metric levels makes its existing series judged."""
        store = MetricStore(lambda name: 10, 10, lambda name: None)
        feed(store, clock, "hits|c", "other|g")
        assert not store.take_updated()
        store.reconfigure(lambda name: 10, 10, {"hits": JUDGED}.get)
        feed(store, clock, "other|g")
        store.roll_interval(1.0)
        assert ["hits|c"] == [s.key for s in store.take_updated()]


class TestUrgent:
    @pytest.mark.parametrize(
        ("values", "urgent"),
        [
            ([1.0, 149.0], False),
            ([1.0, 150.0], True),
            ([400.0], True),
            ([-5.0], True),
            ([-4.9, 0.0], False),
        ],
    )
    def test_a_value_at_or_past_the_band_makes_the_batch_urgent(
        self, clock: FakeClock, values: list[float], urgent: bool
    ) -> None:
        """Values at or beyond the band's edges are urgent; inside are not."""
        store = MetricStore(lambda name: 10, 10, {"latency": (-5.0, 150.0)}.get)
        batch = Batch(received=len(values), accepted=len(values))
        batch.values["latency|ms"] = values
        store.ingest(batch, clock())
        assert (urgent, False) == (store.take_urgent(), store.take_urgent())

    @pytest.mark.parametrize(
        ("text", "urgent"),
        [
            ("latency:400|ms|T1700000000", True),
            ("latency:40|ms|T1700000000", False),
            ("gauge_latency:+400|g", True),
            ("gauge_latency:+40|g", False),
        ],
    )
    def test_stamped_lines_and_gauge_deltas_are_judged_against_the_band_too(
        self, clock: FakeClock, text: str, urgent: bool
    ) -> None:
        """A |T line or a gauge delta at or past a level is as urgent as a plain
        line: its pass must not wait on the coalescing (nor on the next tick,
        which judges as of its own time, not the stamp's)."""
        band = (-5.0, 150.0)
        store = MetricStore(
            lambda name: 10, 10, {"latency": band, "gauge_latency": band}.get
        )
        batch = Batch()
        parse(text.encode(), batch, 8192, gauge_deltas=True)
        assert batch.stamped or batch.gauge_deltas
        store.ingest(batch, clock())
        assert (urgent, False) == (store.take_urgent(), store.take_urgent())
        assert 1 == len(store.take_updated())

    def test_unjudged_series_are_never_urgent(self, clock: FakeClock) -> None:
        """A metric without levels has no band: nothing it sends is urgent."""
        store = MetricStore(lambda name: 10, 10, lambda name: None)
        batch = Batch(received=1, accepted=1, values={"x|g": [1e99]})
        store.ingest(batch, clock())
        assert not store.take_urgent()


class TestOwnedBatches:
    def test_given_lists_become_pending_and_values_stay_exact(self) -> None:
        """With owned=True a window keeps a batch's list instead of a copy; what
        the windows hold is the same as without it."""
        given = MetricStore(lambda name: 100, 10, lambda name: None)
        copied = MetricStore(lambda name: 100, 10, lambda name: None)
        for values in ([1.0], [2.5, -3.0], [4.0]):
            for store, owned in ((given, True), (copied, False)):
                batch = Batch(values={"m|g": list(values), "c|c": [1.0]})
                first = batch.values["m|g"]
                store.ingest(batch, 0.0, owned=owned)
                held = store.get("m|g")
                assert held is not None
                if owned and values == [1.0]:  # nothing pending yet: kept as is
                    assert held.window._pending is first
        for key in ("m|g", "c|c"):
            a, b = given.get(key), copied.get(key)
            assert a is not None
            assert b is not None
            assert a.window.values().tolist() == b.window.values().tolist()
            assert a.pending == b.pending
        assert [1.0, 2.5, -3.0, 4.0] == given.by_name("m")[0].window.values().tolist()

    def test_lists_the_recording_holds_are_copied(self) -> None:
        """While on_ingest notes batches (the recording keeps their lists for its
        writer) and says so, owned=True is ignored: later samples never reach
        those lists."""
        store = MetricStore(lambda name: 100, 10, lambda name: None)
        noted: list[list[float]] = []

        def note(batch: Batch, now: float, offset: float) -> bool:
            noted.extend(batch.values.values())
            return True

        store.on_ingest = note
        for value in (1.0, 2.0, 3.0):
            store.ingest(Batch(values={"m|g": [value]}), 0.0, owned=True)
        assert [[1.0], [2.0], [3.0]] == noted
        assert [1.0, 2.0, 3.0] == store.by_name("m")[0].window.values().tolist()
        window = store.by_name("m")[0].window
        assert all(kept is not window._pending for kept in noted)

    def test_lists_a_hook_did_not_keep_are_taken(self) -> None:
        """A hook that kept nothing (the recording while off) leaves the lists to
        the windows, as without a hook."""
        store = MetricStore(lambda name: 100, 10, lambda name: None)
        store.on_ingest = lambda batch, now, offset: False
        given = [1.0]
        store.ingest(Batch(values={"m|g": given}), 0.0, owned=True)
        assert store.by_name("m")[0].window._pending is given

    def test_a_long_given_list_is_judged_whole(self) -> None:
        """A given list long enough to be flushed at once is still the batch's
        when the band is checked (a flush must not empty it)."""
        store = MetricStore(lambda name: 100, 10, {"m": (-5.0, 150.0)}.get)
        store.ingest(Batch(values={"m|g": [1.0] * 40 + [400.0]}), 0.0, owned=True)
        assert store.take_urgent()
        held = store.get("m|g")
        assert held is not None
        assert 41 == held.window.total_count

    def test_urgency_is_judged_on_the_batch_values(self, clock: FakeClock) -> None:
        """A given list that became a window's pending list is still checked
        against the band; an earlier pending value past it does not count again."""
        store = MetricStore(lambda name: 100, 10, {"m": (-5.0, 150.0)}.get)
        store.ingest(Batch(values={"m|g": [400.0]}), clock(), owned=True)
        assert store.take_urgent()
        store.ingest(Batch(values={"m|g": [1.0]}), clock(), owned=True)
        assert not store.take_urgent()
        assert {"m|g"} == {s.key for s in store.take_updated()}


class TestCanonicalTags:
    @pytest.mark.parametrize(
        ("raw", "tags"),
        [
            ("", ()),
            ("svc:api", ("svc:api",)),
            ("b:2,a:1", ("a:1", "b:2")),
            ("a:1,a:1,", ("a:1",)),
            (",", ()),
        ],
    )
    def test_sorted_and_deduplicated(self, raw: str, tags: tuple[str, ...]) -> None:
        """One tag is kept as it is; several are sorted, de-duplicated, empty ones
        dropped."""
        assert tags == canonical_tags(raw)

    def test_a_key_whose_tags_are_all_empty_is_the_untagged_series(self) -> None:
        """``m|g|#,`` names the series ``m|g``, as the untagged key does."""
        store = MetricStore(lambda name: 10, 10, lambda name: None)
        for raw in ("m|g|#,", "m|g", "m|g|#"):
            store.ingest(Batch(received=1, accepted=1, values={raw: [1.0]}), 0.0)
        assert [("m|g", (), 3)] == [
            (s.key, s.tags, s.window.total_count) for s in store
        ]
