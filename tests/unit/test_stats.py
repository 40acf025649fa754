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
from perfwarden.series.stats import (
    Summary,
    effective_sample_size,
    interval,
    is_non_negative_unit,
    lag1_autocorrelation,
    mean_interval,
    summarize,
)
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


def numpy_lag1(values: npt.NDArray[np.float64]) -> float:
    """The reference lag-1 autocorrelation: numpy's full autocorrelation sequence
    of the centred values, lag 1 over lag 0."""
    centred = values - np.mean(values)
    full = np.correlate(centred, centred, mode="full")
    zero = len(values) - 1
    return float(full[zero + 1] / full[zero]) if full[zero] > 0 else 0.0


def reference_n_eff(values: npt.NDArray[np.float64]) -> float:
    """n, or n (1 - r) / (1 + r) when r is above the Bartlett bound (at least 2)."""
    n = len(values)
    r = numpy_lag1(values) if n >= 3 else 0.0
    if n < 3 or r <= scipy.stats.norm.ppf(0.975) / math.sqrt(n):
        return float(n)
    return min(float(n), max(2.0, n * (1 - r) / (1 + r)))


def scipy_interval(
    values: npt.NDArray[np.float64], level: float
) -> tuple[float, float]:
    """The reference: scipy's t interval around numpy's mean with scipy's sem
    widened to the effective sample size (scipy answers NaN for a zero scale; the
    degenerate interval is the mean)."""
    n_eff = reference_n_eff(values)
    sem = scipy.stats.sem(values) * math.sqrt(len(values) / n_eff)
    if sem == 0:
        return float(np.mean(values)), float(np.mean(values))
    low, high = scipy.stats.t.interval(
        level, max(math.floor(n_eff) - 1, 1), loc=np.mean(values), scale=sem
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
        slack = 64 * EPS * float(np.max(np.abs(array))) + 1e-300  # subnormals
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
            scipy.stats.sem(values) * math.sqrt(len(values) / reference_n_eff(values)),
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
            "min", "max", "p50", "p95", "p99", "autocorrelation",
            "effective_sample_size", "ci_method",
        ]  # fmt: skip
        assert all(type(value) in {int, float, str} for value in data.values())
        assert data == json.loads(json.dumps(data))

    def test_summary_is_frozen(self) -> None:
        """Summary is immutable."""
        summary = summarize(window_of([1.0, 2.0]), 0.95, 2)
        with pytest.raises(AttributeError):
            summary.mean = 3.0  # type: ignore[misc]


def ar1(phi: float, n: int, seed: int) -> npt.NDArray[np.float64]:
    """An AR(1) series with unit marginal variance, started in its stationary law."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n) * math.sqrt(1 - phi * phi)
    out = np.empty(n)
    out[0] = rng.standard_normal()
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


class TestAutocorrelation:
    @settings(max_examples=200, deadline=None)
    @given(values=samples)
    def test_lag1_matches_numpy(self, values: list[float]) -> None:
        """lag1_autocorrelation equals numpy's correlate-based estimate."""
        array = np.array(values)
        expected = numpy_lag1(array) if len(array) >= 3 else 0.0
        got = lag1_autocorrelation(array)
        assert -1.0 - 1e-9 <= got <= 1.0 + 1e-9
        assert expected == pytest.approx(got, rel=1e-7, abs=1e-7)

    def test_ar1_estimate_and_effective_size(self) -> None:
        """On AR(1) phi = 0.7 the estimate is near 0.7 and n_eff about n / 5.7."""
        values = ar1(0.7, 20000, seed=3)
        r = lag1_autocorrelation(values)
        assert 0.68 < r < 0.72
        assert 20000 / 6.2 < effective_sample_size(20000, r) < 20000 / 5.2

    def test_insignificant_autocorrelation_keeps_n(self) -> None:
        """Below the Bartlett bound (and for negative r) n_eff is n."""
        assert 100.0 == effective_sample_size(100, 0.19)
        assert 100.0 == effective_sample_size(100, -0.5)
        assert 100.0 > effective_sample_size(100, 0.2)

    def test_widened_interval_covers_on_ar1(self) -> None:
        """On AR(1) phi = 0.7 windows of 100 the widened interval covers the true
        mean close to 95% of the time; the independent-sample one far less."""
        rng = np.random.default_rng(11)
        covered = naive = 0
        runs = 1000
        for _ in range(runs):
            values = ar1(0.7, 100, seed=int(rng.integers(2**31)))
            found = mean_interval(values, 0.95)
            covered += found.low <= 0.0 <= found.high
            sem = scipy.stats.sem(values)
            low, high = scipy.stats.t.interval(0.95, 99, np.mean(values), sem)
            naive += low <= 0.0 <= high
        assert covered / runs > 0.88
        assert naive / runs < 0.75

    def test_iid_coverage_stays_nominal(self) -> None:
        """On independent normal samples coverage stays near 95% (not inflated)."""
        rng = np.random.default_rng(12)
        covered = sum(
            (found := mean_interval(rng.standard_normal(50), 0.95)).low
            <= 0.0
            <= found.high
            for _ in range(2000)
        )
        assert 0.93 < covered / 2000 < 0.975


class TestNonNegative:
    @pytest.mark.parametrize("unit", ["ms", "s", "MB", "ratio", "x", "bytes", "%"])
    def test_units_that_cannot_be_negative(self, unit: str) -> None:
        """Durations, sizes and ratios are non-negative quantities."""
        assert is_non_negative_unit(unit)

    @pytest.mark.parametrize("unit", [None, "degC", "dBm", "delta", ""])
    def test_other_units(self, unit: str | None) -> None:
        """Other units (or none) may be negative."""
        assert not is_non_negative_unit(unit)

    def test_log_interval_when_symmetric_would_dip_below_zero(self) -> None:
        """A skewed non-negative window gets mean * exp(+-t se / mean), above 0."""
        values = np.array([0.0] * 28 + [50.0, 400.0])
        plain = mean_interval(values, 0.95)
        assert plain.low < 0.0
        assert "t" == plain.method
        found = mean_interval(values, 0.95, non_negative=True)
        assert "log-t" == found.method
        t = scipy.stats.t.ppf(0.975, math.floor(found.effective_sample_size) - 1)
        factor = math.exp(t * found.standard_error / np.mean(values))
        expected = (np.mean(values) / factor, np.mean(values) * factor)
        assert expected == pytest.approx((found.low, found.high), rel=1e-9)
        assert found.low > 0.0

    def test_symmetric_when_it_stays_positive(self) -> None:
        """Far from zero the non-negative interval is the ordinary one."""
        values = np.random.default_rng(2).normal(100.0, 10.0, 100)
        assert mean_interval(values, 0.95) == mean_interval(
            values, 0.95, non_negative=True
        )

    def test_summary_names_the_method(self) -> None:
        """stats says which interval it shows."""
        window = window_of([0.0] * 28 + [50.0, 400.0])
        assert "log-t" == summarize(window, 0.95, 30, non_negative=True).ci_method
        assert "t" == summarize(window, 0.95, 30).ci_method


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
