"""perfwarden.series.stats against scipy.stats.t.interval and numpy percentiles."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import perfwarden.series.stats
from perfwarden.series.stats import Summary, interval, summarize
from perfwarden.series.window import RollingWindow

EPS = float(np.finfo(np.float64).eps)
LEVELS = (0.9, 0.95, 0.99)

samples = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=300,
)


def window_of(values: npt.ArrayLike, capacity: int | None = None) -> RollingWindow:
    """A window holding `values` (the last `capacity` of them)."""
    array = np.asarray(values, dtype=np.float64)
    window = RollingWindow(capacity or max(1, array.shape[0]))
    window.extend(array)
    return window


def scipy_interval(
    values: npt.NDArray[np.float64], level: float
) -> tuple[float, float]:
    """The reference: scipy's t interval around numpy's mean with scipy's sem
    (scipy answers NaN for a zero scale; the degenerate interval is the mean)."""
    sem = scipy.stats.sem(values)
    if sem == 0:
        return float(np.mean(values)), float(np.mean(values))
    low, high = scipy.stats.t.interval(
        level, len(values) - 1, loc=np.mean(values), scale=sem
    )
    return float(low), float(high)


class TestInterval:
    @pytest.mark.parametrize("level", LEVELS)
    @pytest.mark.parametrize("n", [2, 3, 10, 30, 1000])
    def test_matches_scipy_on_random_data(self, level: float, n: int) -> None:
        """interval() equals scipy.stats.t.interval to 1e-9 relative."""
        values = np.random.default_rng(n).normal(150.0, 20.0, size=n)
        low, high = scipy_interval(values, level)
        assert (low, high) == pytest.approx(
            interval(window_of(values), level, 2), rel=1e-9
        )

    @settings(max_examples=200, deadline=None)
    @given(values=samples, level=st.sampled_from(LEVELS))
    def test_matches_scipy_on_drawn_data(
        self, values: list[float], level: float
    ) -> None:
        """interval() matches scipy on drawn data (plus numpy's own eps * max|x|)."""
        array = np.array(values)
        low, high = scipy_interval(array, level)
        got = interval(window_of(array), level, 2)
        assert got is not None
        half = (high - low) / 2
        slack = 64 * EPS * float(np.max(np.abs(array)))
        assert low == pytest.approx(got[0], rel=1e-9, abs=1e-9 * half + slack)
        assert high == pytest.approx(got[1], rel=1e-9, abs=1e-9 * half + slack)

    def test_matches_scipy_on_wrapped_window(self) -> None:
        """A window that has wrapped many times still matches scipy."""
        rng = np.random.default_rng(5)
        window = RollingWindow(500)
        for _ in range(200):
            window.extend(rng.lognormal(3.0, 1.0, size=int(rng.integers(1, 64))))
        low, high = scipy_interval(window.values(), 0.95)
        assert (low, high) == pytest.approx(interval(window, 0.95, 30), rel=1e-9)

    def test_none_below_min_samples(self) -> None:
        """No interval below min_samples; one from min_samples on."""
        window = window_of(np.arange(29.0), capacity=100)
        assert interval(window, 0.95, 30) is None
        window.append(29.0)
        assert interval(window, 0.95, 30) is not None

    @pytest.mark.parametrize("min_samples", [0, 1, 2])
    def test_none_below_two_samples(self, min_samples: int) -> None:
        """One sample never has an interval, whatever min_samples says."""
        assert interval(window_of([4.0]), 0.95, min_samples) is None
        assert interval(RollingWindow(3), 0.95, min_samples) is None

    def test_constant_window_collapses_to_mean(self) -> None:
        """Constant data give ci_low == ci_high == mean."""
        expected = (0.1, 0.1)
        assert expected == interval(window_of([0.1] * 40), 0.95, 30)


class TestSummarize:
    @settings(max_examples=200, deadline=None)
    @given(values=samples, level=st.sampled_from(LEVELS))
    def test_matches_numpy_and_scipy(self, values: list[float], level: float) -> None:
        """Percentiles, min and max match numpy; the interval matches interval()."""
        array = np.array(values)
        window = window_of(array)
        summary = summarize(window, level, 2)
        p50, p95, p99 = np.percentile(array, [50, 95, 99])
        assert (p50, p95, p99) == pytest.approx(
            (summary.p50, summary.p95, summary.p99), rel=1e-9, abs=1e-300
        )
        assert (np.min(array), np.max(array)) == (summary.min, summary.max)
        assert (summary.ci_low, summary.ci_high) == interval(window, level, 2)
        assert len(values) == summary.sample_size
        assert summary.mean == window.mean()

    @pytest.mark.parametrize("level", LEVELS)
    def test_full_window_matches_references(self, level: float) -> None:
        """A full 1000-sample wrapped window matches numpy and scipy to 1e-9."""
        rng = np.random.default_rng(6)
        window = RollingWindow(1000)
        for _ in range(100):
            window.extend(rng.gamma(2.0, 50.0, size=32))
        values = window.values()
        summary = summarize(window, level, 30)
        low, high = scipy_interval(values, level)
        expected = (
            *np.percentile(values, [50, 95, 99]),
            np.mean(values),
            scipy.stats.sem(values),
            low,
            high,
        )
        got = (
            summary.p50,
            summary.p95,
            summary.p99,
            summary.mean,
            summary.standard_error,
            summary.ci_low,
            summary.ci_high,
        )
        assert expected == pytest.approx(got, rel=1e-9)

    def test_empty_window(self) -> None:
        """An empty window has only a zero sample size."""
        summary = summarize(RollingWindow(5), 0.95, 30)
        assert (
            Summary(0, None, None, None, None, None, None, None, None, None) == summary
        )

    def test_single_sample(self) -> None:
        """One sample: mean, min, max and percentiles, but no error or interval."""
        summary = summarize(window_of([7.5]), 0.95, 1)
        assert Summary(1, 7.5, None, None, None, 7.5, 7.5, 7.5, 7.5, 7.5) == summary

    def test_below_min_samples_has_error_but_no_interval(self) -> None:
        """Between 2 and min_samples: standard error, no interval."""
        summary = summarize(window_of([1.0, 2.0, 3.0]), 0.95, 30)
        assert 1 / math.sqrt(3) == pytest.approx(summary.standard_error, rel=1e-15)
        assert summary.ci_low is None
        assert summary.ci_high is None

    def test_constant_window(self) -> None:
        """Constant data: zero standard error and a zero-width interval at the mean."""
        summary = summarize(window_of([42.25] * 50), 0.95, 30)
        expected = (42.25, 0.0, 42.25, 42.25)
        assert expected == (
            summary.mean,
            summary.standard_error,
            summary.ci_low,
            summary.ci_high,
        )

    def test_summary_is_json_serialisable_python_scalars(self) -> None:
        """as_dict() holds plain int/float/None and survives json round trips."""
        summary = summarize(window_of(np.linspace(0.0, 1.0, 64)), 0.95, 30)
        data = summary.as_dict()
        assert list(data) == [
            "sample_size", "mean", "standard_error", "ci_low", "ci_high",
            "min", "max", "p50", "p95", "p99",
        ]  # fmt: skip
        assert all(type(value) in {int, float} for value in data.values())
        assert data == json.loads(json.dumps(data))

    def test_summary_is_frozen(self) -> None:
        """Summary is immutable."""
        summary = summarize(window_of([1.0, 2.0]), 0.95, 2)
        with pytest.raises(AttributeError):
            summary.mean = 3.0  # type: ignore[misc]


class TestMemoryBudget:
    def test_daemon_modules_do_not_import_scipy(self) -> None:
        """Importing tdist, window and stats pulls in no scipy (~100 MB of RSS)."""
        root = Path(perfwarden.series.stats.__file__).resolve().parents[2]
        code = (
            "import sys;"
            "import perfwarden.series.stats, perfwarden.series.window;"
            "import perfwarden.series.tdist;"
            "sys.exit(any(m == 'scipy' or m.startswith('scipy.') for m in sys.modules))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONPATH": str(root)},
            check=False,
        )
        assert not result.returncode, "scipy was imported"
