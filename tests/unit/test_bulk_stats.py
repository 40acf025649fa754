"""perfwarden.series.bulk against mean_interval row by row, and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.series.bulk import mean_intervals, row_means
from perfwarden.series.stats import mean_interval

LEVELS = (0.9, 0.95, 0.99)


def close(a: float, b: float, scale: float) -> bool:
    """Equal but for rounding: relative to the row's magnitude ``scale``."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12 * scale)


@st.composite
def tables(draw: st.DrawFn) -> np.ndarray[tuple[int, int], np.dtype[np.float64]]:
    rows = draw(st.integers(1, 5))
    columns = draw(st.integers(2, 120))
    values = draw(
        st.lists(
            st.floats(-1e6, 1e6, allow_nan=False),
            min_size=rows * columns,
            max_size=rows * columns,
        )
    )
    return np.array(values, dtype=np.float64).reshape(rows, columns)


class TestMeanIntervals:
    @settings(max_examples=200, deadline=None)
    @given(table=tables(), level=st.sampled_from(LEVELS))
    def test_each_row_matches_mean_interval(
        self, table: np.ndarray[tuple[int, int], np.dtype[np.float64]], level: float
    ) -> None:
        """Mean and bounds equal mean_interval's on the same row, up to rounding."""
        before = table.copy()
        found = mean_intervals(table, level)
        assert np.array_equal(before, table)  # left unchanged
        for index, row in enumerate(table):
            want = mean_interval(row, level)
            scale = float(np.abs(row).max()) + 1.0
            assert close(want.mean, float(found.mean[index]), scale)
            assert close(want.low, float(found.low[index]), scale)
            assert close(want.high, float(found.high[index]), scale)

    @pytest.mark.parametrize("level", LEVELS)
    def test_independent_rows_match_scipy(self, level: float) -> None:
        """Without autocorrelation the interval is scipy's t interval."""
        rng = np.random.default_rng(7)
        table = rng.normal(50.0, 5.0, size=(20, 400))
        found = mean_intervals(table, level)
        checked = 0
        for index, row in enumerate(table):
            if mean_interval(row, level).effective_sample_size != row.shape[0]:
                continue  # a significant lag-1 by chance: not scipy's interval
            low, high = scipy.stats.t.interval(
                level, row.shape[0] - 1, loc=row.mean(), scale=scipy.stats.sem(row)
            )
            assert math.isclose(low, float(found.low[index]), rel_tol=1e-9)
            assert math.isclose(high, float(found.high[index]), rel_tol=1e-9)
            checked += 1
        assert checked >= 10

    def test_autocorrelated_rows_widen(self) -> None:
        """An AR(1) row gets mean_interval's wider, effective-size interval."""
        rng = np.random.default_rng(3)
        ar = np.empty(500)
        ar[0] = 0.0
        for t in range(1, 500):
            ar[t] = 0.8 * ar[t - 1] + rng.normal()
        table = np.stack([ar, rng.normal(size=500)])
        found = mean_intervals(table, 0.95)
        want = mean_interval(ar, 0.95)
        assert want.effective_sample_size < 200
        assert math.isclose(want.low, float(found.low[0]), rel_tol=1e-9)
        assert math.isclose(want.high, float(found.high[0]), rel_tol=1e-9)

    def test_constant_rows_collapse_to_their_value(self) -> None:
        """A constant row's mean is exact and its interval has no width."""
        table = np.array([[0.1] * 50, [3.0] * 50])
        found = mean_intervals(table, 0.95)
        assert [0.1, 3.0] == found.mean.tolist()
        assert [0.1, 3.0] == found.low.tolist()
        assert [0.1, 3.0] == found.high.tolist()

    def test_two_columns(self) -> None:
        """Two samples: no lag-1 pairs, the plain t interval with 1 df."""
        found = mean_intervals(np.array([[1.0, 3.0]]), 0.95)
        low, high = scipy.stats.t.interval(0.95, 1, loc=2.0, scale=1.0)
        assert math.isclose(low, float(found.low[0]))
        assert math.isclose(high, float(found.high[0]))

    def test_one_column_is_refused(self) -> None:
        """An interval needs two samples per row."""
        with pytest.raises(ValueError, match="at least 2 samples"):
            mean_intervals(np.array([[1.0], [2.0]]), 0.95)


class TestRowMeans:
    @settings(max_examples=100, deadline=None)
    @given(table=tables())
    def test_match_mean_interval(
        self, table: np.ndarray[tuple[int, int], np.dtype[np.float64]]
    ) -> None:
        """The same shifted mean mean_interval centres its interval on."""
        means = row_means(table)
        for index, row in enumerate(table):
            scale = float(np.abs(row).max()) + 1.0
            assert close(mean_interval(row, 0.95).mean, float(means[index]), scale)

    def test_single_sample_rows(self) -> None:
        """A one-sample row's mean is that sample."""
        assert [2.5, -1.0] == row_means(np.array([[2.5], [-1.0]])).tolist()
