"""Series expiry on a fake clock: the store, the alerts, the saved state, the log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from structlog.testing import capture_logs

from perfwarden.alerts.evaluator import AlertEvent, Evaluator
from perfwarden.alerts.machine import AlertState, Transition
from perfwarden.config.load import Config, parse_config
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.expiry import LOG_EXAMPLES, LOG_PERIOD, SeriesExpiry
from perfwarden.series.store import MetricStore
from perfwarden.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterable

CONFIG = """\
version: 1
statistics: {min_samples: 10, expire_after: 10m, max_series: 50}
evaluation: {basis: mean, window: 10, missing_after: 1m}
metrics:
  latency: {bound: upper, warning: 150, critical: 200, for: 5s}
  nightly: {bound: upper, expire_after: off}
"""


class Harness:
    """A store, an evaluator and the expiry on one fake clock."""

    def __init__(self, text: str = CONFIG) -> None:
        self.config: Config = parse_config(text)
        self.clock = FakeClock()
        self.store = MetricStore(self.config.metric_window, 50)
        self.evaluator = Evaluator(self.store, lambda: self.config, clock=self.clock)
        self.events: list[AlertEvent] = []
        self.evaluator.subscribers.append(self.events.append)
        self.forgotten: list[str] = []
        self.expiry = SeriesExpiry(
            self.store,
            self.evaluator,
            self.forget_saved,
            lambda: self.config,
            clock=self.clock,
        )

    def forget_saved(self, keys: Iterable[str]) -> None:
        self.forgotten.extend(keys)

    def feed(self, *lines: str) -> None:
        batch = Batch()
        parse("\n".join(lines).encode(), batch, 8192)
        self.store.ingest(batch, self.clock())
        self.evaluator.evaluate_updated()

    def tick(self, seconds: float) -> list[dict[str, Any]]:
        """Advance, then one evaluation tick as the daemon runs it; the logs."""
        self.clock.advance(seconds)
        with capture_logs() as logs:
            self.evaluator.tick()
            self.expiry.sweep()
        return logs

    def keys(self) -> list[str]:
        return sorted(series.key for series in self.store)


def expired_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "series.expired"]


class TestSweep:
    def test_an_idle_series_is_forgotten_and_logged(self) -> None:
        """Past expire_after: out of the store and the state file, logged with its
        key and idle time, counted."""
        h = Harness()
        h.feed("app.rss:10|g|#pid:41", "app.rss:11|g|#pid:42")
        h.tick(300.0)
        h.feed("app.rss:12|g|#pid:42")
        assert [] == expired_lines(h.tick(300.0))
        (line,) = expired_lines(h.tick(1.0))
        assert ["app.rss|g|#pid:42"] == h.keys()
        assert ["app.rss|g|#pid:41"] == h.forgotten
        assert 1 == h.expiry.expired
        assert {
            "count": 1,
            "more": 0,
            "series": [
                {"key": "app.rss|g|#pid:41", "metric": "app.rss", "idle_seconds": 601.0}
            ],
            "by_metric": {"app.rss": 1},
            "expired_total": 1,
        } == {k: v for k, v in line.items() if k not in {"event", "log_level"}}

    def test_off_for_one_metric_and_for_all(self) -> None:
        """A metric's expire_after: off keeps it; statistics.expire_after: 0 all."""
        h = Harness()
        h.feed("nightly:5|ms", "other:1|g")
        h.tick(86400.0)
        assert ["nightly|ms"] == h.keys()
        h = Harness(CONFIG.replace("expire_after: 10m", "expire_after: 0"))
        h.feed("other:1|g")
        h.tick(86400.0)
        assert ["other|g"] == h.keys()

    def test_a_reload_takes_effect_at_the_next_tick(self) -> None:
        """The limit is read from the current config on every sweep."""
        h = Harness()
        h.feed("other:1|g")
        h.tick(120.0)
        assert ["other|g"] == h.keys()
        h.config = parse_config(CONFIG.replace("expire_after: 10m", "expire_after: 1m"))
        h.tick(1.0)
        assert [] == h.keys()

    def test_the_freed_slot_takes_a_new_series(self) -> None:
        """At the series cap, a new series gets the slot an expired one left."""
        h = Harness()
        h.feed(*(f"req:1|ms|#id:{i}" for i in range(50)))
        h.feed("new:1|g")
        assert 1 == h.store.dropped_lines
        h.tick(601.0)
        h.feed("new:1|g")
        assert ["new|g"] == h.keys()
        assert 1 == h.store.dropped_lines


class TestAlerts:
    def firing(self) -> Harness:
        h = Harness()
        h.feed(*(f"latency:{250 + i % 3}|ms|#pod:a" for i in range(10)))
        h.tick(6.0)
        assert AlertState.FIRING is h.evaluator.alerts["latency|ms|#pod:a"].state
        return h

    def test_a_no_data_alert_is_resolved_then_forgotten(self) -> None:
        """A firing alert goes no_data, then at expiry it is resolved and forgotten."""
        h = self.firing()
        h.tick(61.0)
        assert Transition.NO_DATA is h.events[-1].transition
        logs = h.tick(540.0)
        assert Transition.RESOLVED is h.events[-1].transition
        assert "latency|ms|#pod:a" == h.events[-1].series
        assert ["alert.resolved", "series.expired"] == [e["event"] for e in logs]
        assert {} == h.evaluator.alerts
        assert {} == h.evaluator.observations
        assert ["latency|ms|#pod:a"] == h.forgotten

    def test_a_firing_alert_is_resolved(self) -> None:
        """Firing at expiry (the metric gained levels late): alert.resolved."""
        h = self.firing()
        series = h.store.get("latency|ms|#pod:a")
        assert series is not None
        h.store.expire(h.clock() + 601.0, h.config.metric_expire_after)
        with capture_logs() as logs:
            h.evaluator.retire([series])
        assert ["alert.resolved"] == [e["event"] for e in logs]
        assert "critical" == logs[0]["previous_severity"]
        assert "expired" == logs[0]["reason"] == h.events[-1].reason
        assert {} == h.evaluator.alerts

    def test_a_pending_alert_is_cancelled(self) -> None:
        """Pending at expiry: alert.cancelled."""
        h = Harness()
        h.feed(*(f"latency:{250 + i % 3}|ms" for i in range(10)))
        assert AlertState.PENDING is h.evaluator.alerts["latency|ms"].state
        (series,) = h.store
        with capture_logs() as logs:
            h.evaluator.retire([series])
        assert ["alert.cancelled"] == [e["event"] for e in logs]

    def test_an_ok_alert_goes_quietly(self) -> None:
        """An ok series expires with no alert event, only series.expired."""
        h = Harness()
        h.feed(*(f"latency:{100 + i % 3}|ms" for i in range(10)))
        h.tick(61.0)  # no_data
        h.feed(*(f"latency:{100 + i % 3}|ms" for i in range(10)))  # data resumed
        h.events.clear()
        (series,) = h.store
        h.store.expire(h.clock() + 601.0, h.config.metric_expire_after)
        with capture_logs() as logs:
            h.evaluator.retire([series])
        assert [] == logs
        assert [] == h.events
        assert {} == h.evaluator.alerts


class TestLog:
    def test_many_at_once_are_one_line(self) -> None:
        """Fifty series expiring in one tick: one line, ten named, forty more."""
        h = Harness()
        h.feed(*(f"req:1|ms|#id:{i:02}" for i in range(30)))
        h.feed(*(f"pod:1|g|#name:{i:02}" for i in range(20)))
        (line,) = expired_lines(h.tick(601.0))
        assert (50, 40) == (line["count"], line["more"])
        assert LOG_EXAMPLES == len(line["series"])
        assert {"req": 30, "pod": 20} == line["by_metric"]

    def test_lines_are_rate_limited_and_nothing_is_lost(self) -> None:
        """Within LOG_PERIOD expirations are folded into the next line."""
        h = Harness()
        for i in range(3):
            h.feed(f"job:1|g|#run:{i}")
            h.clock.advance(1.0)
        first = expired_lines(h.tick(598.0))
        assert [1] == [line["count"] for line in first]
        folded = [expired_lines(h.tick(1.0)) for _ in range(2)]
        assert [[], []] == folded
        (line,) = expired_lines(h.tick(LOG_PERIOD))
        assert (2, 3) == (line["count"], line["expired_total"])
        assert ["job|g|#run:1", "job|g|#run:2"] == [s["key"] for s in line["series"]]


@pytest.mark.parametrize("seconds", [599.0, 600.0])
def test_not_before_expire_after(seconds: float) -> None:
    """Idle for expire_after or less: kept."""
    h = Harness()
    h.feed("m:1|g")
    h.tick(seconds)
    assert ["m|g"] == h.keys()
