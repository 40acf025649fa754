"""The evaluator on a fake clock: bases, hold times, no_data, subscribers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from perfwarden.alerts.evaluator import AlertEvent, Evaluator
from perfwarden.alerts.machine import Transition
from perfwarden.config.load import Config, parse_config
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.store import MetricStore
from perfwarden.testing import FakeClock

CONFIG = """\
version: 1
statistics: {min_samples: 10}
evaluation: {basis: BASIS, window: 20, missing_after: 30s}
metrics:
  latency: {bound: upper, warning: 150, critical: 200, for: 5s}
"""


def scipy_interval(recent: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """scipy's t interval widened to the effective sample size: n (1 - r) / (1 + r)
    when numpy's lag-1 autocorrelation r is above the Bartlett bound, else n."""
    from scipy import stats as scipy_stats

    n = len(recent)
    centred = recent - recent.mean()
    full = np.correlate(centred, centred, mode="full")
    r = full[n] / full[n - 1] if full[n - 1] > 0 else 0.0
    n_eff = float(n)
    if r > scipy_stats.norm.ppf(0.975) / np.sqrt(n):
        n_eff = max(2.0, n * (1 - r) / (1 + r))
    scale = scipy_stats.sem(recent) * np.sqrt(n / n_eff)
    low, high = scipy_stats.t.interval(
        level, max(int(n_eff) - 1, 1), loc=recent.mean(), scale=scale
    )
    return float(low), float(high)


class Harness:
    def __init__(self, basis: str = "ci") -> None:
        self.config: Config = parse_config(CONFIG.replace("BASIS", basis))
        self.clock = FakeClock()
        self.store = MetricStore(self.config.metric_window, 100)
        self.evaluator = Evaluator(self.store, lambda: self.config, clock=self.clock)
        self.events: list[AlertEvent] = []
        self.evaluator.subscribers.append(self.events.append)

    def feed(self, values: list[float]) -> None:
        batch = Batch()
        parse("\n".join(f"latency:{v}|ms" for v in values).encode(), batch, 8192)
        self.store.ingest(batch, self.clock())
        self.evaluator.evaluate_updated()

    def transitions(self) -> list[Transition]:
        return [event.transition for event in self.events]


class TestEvaluator:
    def test_hold_elapses_on_ticks(self) -> None:
        """Pending at once; fired by a tick after ``for`` without new data."""
        h = Harness()
        h.feed([250.0 + i % 3 for i in range(20)])
        assert [Transition.PENDING] == h.transitions()
        h.clock.advance(4.0)
        h.evaluator.tick()
        assert [Transition.PENDING] == h.transitions()
        h.clock.advance(1.5)
        h.evaluator.tick()
        assert [Transition.PENDING, Transition.FIRED] == h.transitions()
        assert "critical" == h.evaluator.status_of(h.store.by_name("latency")[0])

    def test_ci_needs_min_samples(self) -> None:
        """Below min_samples the ci basis has no observation and no state."""
        h = Harness()
        h.feed([500.0] * 5)
        assert [] == h.transitions()
        assert "insufficient_data" == h.evaluator.status_of(
            h.store.by_name("latency")[0]
        )

    def test_ci_judges_the_recent_window(self) -> None:
        """The interval is over the newest evaluation.window samples, as scipy says."""
        h = Harness()
        values = [float(v) for v in np.random.default_rng(1).normal(100, 10, 50)]
        h.feed(values)
        series = h.store.by_name("latency")[0]
        low, high = h.evaluator.observations[series.key]
        recent = np.asarray(values[-20:])
        expected = scipy_interval(recent)
        assert expected == pytest.approx((low, high), rel=1e-9)

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(
            st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3)),
            min_size=10,
            max_size=60,
        ),
        st.sampled_from(["ci", "mean"]),
    )
    def test_observation_equals_scipy_on_any_data(
        self, values: list[float], basis: str
    ) -> None:
        """The ci and mean observations equal scipy's on the newest 20 samples."""
        h = Harness(basis)
        h.feed(values)
        series = h.store.by_name("latency")[0]
        low, high = h.evaluator.observations[series.key]
        recent = np.asarray(values[-20:])
        spread = float(np.ptp(recent))
        scale = 1e-9 * max(1.0, float(np.abs(recent).max()))
        if basis == "mean" or spread == 0.0:
            expected = (float(recent.mean()),) * 2
        else:
            expected = scipy_interval(recent)
        assert expected == pytest.approx((low, high), rel=1e-9, abs=scale)

    def test_sample_basis_uses_the_newest_value(self) -> None:
        """On the sample basis a single value beyond the level counts."""
        h = Harness("sample")
        h.feed([100.0, 100.0, 210.0])
        assert [Transition.PENDING] == h.transitions()

    def test_silent_series_becomes_no_data(self) -> None:
        """No samples for missing_after: no_data; a new sample resumes it."""
        h = Harness()
        h.feed([100.0] * 20)
        h.clock.advance(31.0)
        with capture_logs() as logs:
            h.evaluator.tick()
        assert ["alert.no_data"] == [entry["event"] for entry in logs]
        h.feed([100.0])
        assert Transition.DATA_RESUMED == h.transitions()[-1]

    def test_failing_subscriber_does_not_stop_others(self) -> None:
        """A subscriber that raises is logged; the next one still gets the event."""
        h = Harness("sample")

        def broken(event: AlertEvent) -> None:
            raise RuntimeError(event.metric)

        h.evaluator.subscribers.insert(0, broken)
        with capture_logs() as logs:
            h.feed([300.0])
        assert [Transition.PENDING] == h.transitions()
        assert "alert.subscriber_failed" in [entry["event"] for entry in logs]
