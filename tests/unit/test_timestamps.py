"""DogStatsD ``|T`` stamps: parsed, bounded by the skew limits, counted when stamped."""

from __future__ import annotations

import pytest

from perfwarden.alerts.evaluator import AlertEvent, Evaluator
from perfwarden.alerts.machine import Transition
from perfwarden.config.load import parse_config
from perfwarden.ingest.receivers import STAMP_MAX_AGE, STAMP_MAX_AHEAD, Ingestor
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.store import MetricStore
from perfwarden.testing import FakeClock

MAX_LINE = 8192
WALL = 1_700_000_000.0


def parsed(data: bytes, bounds: tuple[float, float] | None = None) -> Batch:
    batch = Batch(stamp_bounds=bounds)
    parse(data, batch, MAX_LINE)
    return batch


class TestParser:
    def test_stamped_samples_carry_their_time(self) -> None:
        """A ``|T`` line's values go to ``stamped`` with the stamp, not ``values``."""
        batch = parsed(b"m:1|g|T100\nm:2:3|ms|#a:b|T101\nm:4|g")
        assert {"m|g": [(100, 1.0)], "m|ms|#a:b": [(101, 2.0), (101, 3.0)]} == (
            batch.stamped
        )
        assert {"m|g": [4.0]} == batch.values
        assert (3, 3) == (batch.received, batch.accepted)
        assert 1 == batch.lines_for("m|ms|#a:b")

    def test_counts_are_scaled_and_stamped(self) -> None:
        """A stamped count keeps its sample-rate scaling."""
        assert {"c|c": [(7, 4.0)]} == parsed(b"c:1|c|@0.25|T7").stamped

    @pytest.mark.parametrize(
        "line",
        [
            b"m:1|g|T1.5",
            b"m:1|g|T",
            b"m:1|g|T-5",
            b"m:1|g|T12a",
            "m:1|g|T\u0661\u0662".encode(),  # Arabic-Indic digits: not ASCII
            b"m:1|g|T1|T2",
        ],
    )
    def test_bad_stamps_are_malformed(self, line: bytes) -> None:
        """A stamp that is not one whole number of seconds is ``bad_timestamp``."""
        batch = parsed(line)
        assert {"bad_timestamp": 1} == batch.malformed
        assert not batch.stamped

    def test_other_reasons_come_first(self) -> None:
        """A bad type is reported as such even when the stamp is bad too."""
        assert {"bad_type": 1} == parsed(b"m:1|zz|Tx").malformed

    def test_stamps_beyond_the_bounds_are_skewed(self) -> None:
        """Late and future lines are counted by reason and not accepted."""
        batch = parsed(
            b"m:1|g|T10\nm:2|g|T50\nm:3|g|T200\nm:4:5|g|T5\ns:a|s|T300",
            bounds=(20.0, 100.0),
        )
        assert {"late_timestamp": 2, "future_timestamp": 2} == batch.skewed
        assert {"m|g": [(50, 2.0)]} == batch.stamped
        assert (5, 1) == (batch.received, batch.accepted)
        assert not batch.members

    def test_stamped_lines_do_not_enter_the_field_cache(self) -> None:
        """Every second is a new ``|T`` field: the cache must not grow with them."""
        from perfwarden.ingest import statsd

        before = len(statsd._field_cache)
        parsed(b"\n".join(b"cache_probe:1|g|T%d" % t for t in range(500)))
        assert len(statsd._field_cache) <= before + 1


class TestIngestor:
    def test_skewed_lines_are_dropped_by_reason(self) -> None:
        """``received = accepted + malformed + ignored + dropped`` holds with skew."""
        wall = FakeClock(WALL)
        store = MetricStore(lambda _: 100, 100)
        ingestor = Ingestor(store, MAX_LINE, FakeClock(), wall)
        late = int(WALL - STAMP_MAX_AGE - 5)
        ahead = int(WALL + STAMP_MAX_AHEAD + 5)
        ingestor.feed(
            f"m:1|g|T{late}\nm:2|g|T{ahead}\nm:3|g|T{int(WALL)}\nm:x|g|T1".encode()
        )
        ingestor.commit()
        counters = ingestor.counters.as_dict()
        assert {"late_timestamp": 1, "future_timestamp": 1} == counters[
            "dropped_by_reason"
        ]
        assert (4, 1, 1) == (
            counters["received"],
            counters["accepted"],
            counters["malformed"],
        )
        assert [3.0] == ingestor.store.get("m|g").window.values().tolist()  # type: ignore[union-attr]

    def test_bounds_follow_the_wall_clock(self) -> None:
        """A stamp refused now is accepted once the wall clock has moved on."""
        wall = FakeClock(WALL)
        store = MetricStore(lambda _: 100, 100)
        ingestor = Ingestor(store, MAX_LINE, FakeClock(), wall)
        line = f"m:1|g|T{int(WALL + STAMP_MAX_AHEAD + 30)}".encode()
        ingestor.feed(line)
        ingestor.commit()
        wall.advance(60.0)
        ingestor.feed(line)
        ingestor.commit()
        assert 1 == ingestor.counters.accepted

    def test_a_stamp_sets_last_update_to_its_own_time(self) -> None:
        """``missing_after`` counts from the stamp (on the store's clock)."""
        clock, wall = FakeClock(5000.0), FakeClock(WALL)
        store = MetricStore(lambda _: 100, 100)
        ingestor = Ingestor(store, MAX_LINE, clock, wall)
        ingestor.feed(f"m:1|g|T{int(WALL) - 40}".encode())
        ingestor.commit()
        series = store.get("m|g")
        assert series is not None
        assert 4960.0 == series.last_update
        ingestor.feed(f"m:1|g|T{int(WALL) - 50}".encode())  # older: no step back
        ingestor.commit()
        assert 4960.0 == series.last_update

    def test_series_cap_drops_stamped_lines_once(self) -> None:
        """A new series over the cap drops its stamped and plain lines, each once."""
        store = MetricStore(lambda _: 100, 1)
        ingestor = Ingestor(store, MAX_LINE, FakeClock(), FakeClock(WALL))
        t = int(WALL)
        ingestor.feed(f"a:1|g\nb:1|g\nb:2|g|T{t}\nc:1:2|g|T{t}".encode())
        ingestor.commit()
        assert {"series_limit": 3} == ingestor.counters.dropped
        assert 1 == ingestor.counters.accepted


CONFIG = """\
version: 1
statistics: {min_samples: 2}
evaluation: {basis: sample, missing_after: 30s}
metrics:
  latency: {bound: upper, warning: 150, critical: 200, for: 5s}
"""


class TestEvaluation:
    def test_for_counts_from_the_stamp(self) -> None:
        """A violation stamped 10 s ago has held for 10 s: it fires on the next tick."""
        config = parse_config(CONFIG)
        clock, wall = FakeClock(5000.0), FakeClock(WALL)
        store = MetricStore(config.metric_window, 100)
        evaluator = Evaluator(store, lambda: config, clock=clock, wall=wall)
        events: list[AlertEvent] = []
        evaluator.subscribers.append(events.append)
        ingestor = Ingestor(store, MAX_LINE, clock, wall)
        ingestor.on_commit = evaluator.evaluate_updated
        ingestor.feed(f"latency:300|ms|T{int(WALL) - 10}".encode())
        ingestor.commit()
        assert [Transition.PENDING] == [e.transition for e in events]
        assert 4990.0 == evaluator.alerts["latency|ms"].since
        evaluator.tick()
        assert [Transition.PENDING, Transition.FIRED] == [e.transition for e in events]


class TestLimitsConfig:
    def test_defaults_and_durations(self) -> None:
        """Ten minutes late and a minute ahead by default; durations when given."""
        default = parse_config("version: 1\n").ingest
        assert (STAMP_MAX_AGE, STAMP_MAX_AHEAD) == (
            default.max_timestamp_age,
            default.max_timestamp_ahead,
        )
        assert (600.0, 60.0) == (STAMP_MAX_AGE, STAMP_MAX_AHEAD)
        given = parse_config(
            "version: 1\ningest: {max_timestamp_age: 2h, max_timestamp_ahead: 0}\n"
        ).ingest
        assert (7200.0, 0.0) == (given.max_timestamp_age, given.max_timestamp_ahead)

    def test_the_ingestor_takes_its_limits(self) -> None:
        """Limits set on the ingestor bound the next batch's stamps."""
        store = MetricStore(lambda _: 100, 100)
        ingestor = Ingestor(store, MAX_LINE, FakeClock(), FakeClock(WALL))
        ingestor.max_timestamp_age = 7200.0
        ingestor.max_timestamp_ahead = 0.0
        ingestor.feed(f"m:1|g|T{int(WALL) - 3600}\nm:2|g|T{int(WALL) + 1}".encode())
        ingestor.commit()
        assert 1 == ingestor.counters.accepted
        assert {"future_timestamp": 1} == ingestor.counters.dropped
