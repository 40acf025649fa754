"""Trends: Mann-Kendall against scipy, and the labels read by the bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from perfwarden.config.load import Bound
from perfwarden.series.trend import MAX_POINTS, label, mann_kendall


class TestMannKendall:
    @given(
        st.lists(
            st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 1)),
            min_size=8,
            max_size=MAX_POINTS,
        )
    )
    def test_p_value_matches_scipy_kendalltau(self, values: list[float]) -> None:
        """p equals kendalltau(range(n), x, asymptotic) for windows of <= 100 points."""
        x = np.asarray(values)
        result = mann_kendall(x)
        assert result is not None
        if np.all(x == x[0]):
            assert 1.0 == result.p_value
            return
        expected = scipy_stats.kendalltau(np.arange(len(x)), x, method="asymptotic")
        assert expected.pvalue == pytest.approx(result.p_value, rel=1e-9, abs=1e-12)

    def test_too_short(self) -> None:
        """Fewer than eight points: no test."""
        assert mann_kendall(np.arange(7.0)) is None

    def test_long_window_uses_block_means(self) -> None:
        """A 1000-sample window is reduced to at most 100 points."""
        result = mann_kendall(np.arange(1000.0))
        assert result is not None
        assert MAX_POINTS == result.points


class TestLabel:
    rng = np.random.default_rng(3)

    def noise(self, n: int = 1000) -> np.ndarray:
        return self.rng.normal(100, 5, n)

    def test_rising_latency_is_degrading(self) -> None:
        """An upper-bound metric that rises significantly is degrading."""
        values = self.noise() + np.linspace(0, 30, 1000)
        assert "degrading" == label(
            values, bound=Bound.UPPER, target=150, interval=None
        )

    def test_falling_latency_is_improving(self) -> None:
        """An upper-bound metric that falls significantly is improving."""
        values = self.noise() - np.linspace(0, 30, 1000)
        assert "improving" == label(values, bound=Bound.UPPER, target=50, interval=None)

    def test_rising_score_is_improving(self) -> None:
        """For a lower bound (higher is better) a rise is improving."""
        values = self.noise() + np.linspace(0, 30, 1000)
        assert "improving" == label(values, bound=Bound.LOWER, target=50, interval=None)

    def test_flat_noise_is_stable(self) -> None:
        """Stationary noise straddling its target is stable."""
        values = self.noise()
        assert "stable" == label(values, bound=Bound.UPPER, target=100, interval=None)

    def test_consistently_on_the_good_side(self) -> None:
        """All of a stationary window well below an upper target: consistently_low."""
        values = self.noise()
        assert "consistently_low" == label(
            values, bound=Bound.UPPER, target=200, interval=(99, 101)
        )
        assert "consistently_high" == label(
            values, bound=Bound.LOWER, target=50, interval=(99, 101)
        )

    def test_exceeding_target(self) -> None:
        """The interval beyond the target but the tail not: exceeding_target."""
        values = self.noise()
        assert "exceeding_target" == label(
            values, bound=Bound.LOWER, target=97, interval=(99.5, 100.5)
        )

    def test_a_tiny_steady_drift_is_stable(self) -> None:
        """Memory creeping 46.26 -> 46.30 MB (0.1%) is significant to the test but
        not a trend; the same shape over 10% is."""
        creep = 46.26 + np.linspace(0, 0.04, 500) + self.rng.normal(0, 0.002, 500)
        result = mann_kendall(creep)
        assert result is not None
        assert result.p_value < 1e-6
        assert "stable" == label(creep, bound=Bound.UPPER, target=None, interval=None)
        rise = 46.26 + np.linspace(0, 4.6, 500) + self.rng.normal(0, 0.2, 500)
        assert "degrading" == label(rise, bound=Bound.UPPER, target=None, interval=None)

    def test_relative_change_is_the_theil_sen_change(self) -> None:
        """A clean line from 100 to 120: a change of 20 on a median level of 110."""
        result = mann_kendall(np.linspace(100, 120, 50))
        assert result is not None
        assert result.relative_change == pytest.approx(20 / 110)

    def test_unconfigured_metric(self) -> None:
        """Without a bound the words are rising / falling."""
        values = self.noise() + np.linspace(0, 30, 1000)
        assert "rising" == label(values, bound=None, target=None, interval=None)
