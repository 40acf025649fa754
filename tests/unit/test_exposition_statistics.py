"""The statistics of a block of windows as exposed text: quantiles by the
narrowest exact sort equal ``np.percentile``; each row's values are
``mean_intervals``' and the quantiles' times the row's unit factor, spelled as
``format_value`` spells them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.series.bulk import mean_intervals, row_means
from perfwarden.series.stats import mean_interval
from perfwarden.views.exposition_statistics import block_values, quantiles
from perfwarden.views.exposition_text import format_value

Table = np.ndarray[tuple[int, int], np.dtype[np.float64]]

#: Values that fit int16, that pass its range, that are fractional, and wide ones.
MIXED = st.one_of(
    st.integers(-40000, 40000).map(float),
    st.integers(-(2**24), 2**24).map(lambda v: v / 4),
    st.floats(-1e12, 1e12, allow_nan=False),
)


@st.composite
def tables(draw: st.DrawFn, values: st.SearchStrategy[float] = MIXED) -> Table:
    rows = draw(st.integers(1, 6))
    columns = draw(st.integers(1, 200))
    drawn = draw(st.lists(values, min_size=rows * columns, max_size=rows * columns))
    return np.array(drawn, dtype=np.float64).reshape(rows, columns)


class TestQuantiles:
    @settings(max_examples=150, deadline=None)
    @given(table=tables(), sample_bytes=st.sampled_from((2, 4, 8)))
    def test_equal_numpy_percentile_whatever_the_hint(
        self, table: Table, sample_bytes: int
    ) -> None:
        """Any values, any storage hint: np.percentile's result to the bit,
        and the table is left as it was."""
        before = table.copy()
        expected = np.percentile(table, [50, 95, 99], axis=1).T
        assert np.array_equal(expected, quantiles(table, sample_bytes))
        assert np.array_equal(before, table)

    @settings(max_examples=200, deadline=None)
    @given(table=tables(st.integers(-32767, 32767).map(float)))
    def test_int16_timings_equal_numpy_percentile(self, table: Table) -> None:
        """Integer timings (sorted as int16) give np.percentile's result."""
        expected = np.percentile(table, [50, 95, 99], axis=1).T
        assert np.array_equal(expected, quantiles(table, 2))


class TestBlockValues:
    @settings(max_examples=200, deadline=None)
    @given(
        table=tables(),
        level=st.sampled_from((None, 0.9, 0.95, 0.99)),
        factor=st.sampled_from((1.0, 1e-3, 1e-9, 60.0)),
        sample_bytes=st.sampled_from((2, 4, 8)),
    )
    def test_each_row_is_its_statistics_in_the_base_unit(
        self, table: Table, level: float | None, factor: float, sample_bytes: int
    ) -> None:
        """Mean, quantiles and interval ends of every row, times its factor,
        as format_value writes them; no interval without a level."""
        if level is not None and table.shape[1] < 2:
            level = None
        rows = table.shape[0]
        factors = np.full(rows, factor)
        factors[::2] = 1.0  # rows of different units in one block
        found = block_values(table, factors, level, sample_bytes)
        # + 0.0: a zero quantile is written 0.0 whichever signed zero sorted first.
        at = np.percentile(table, [50, 95, 99], axis=1).T + 0.0
        if level is None:
            means = row_means(table)
            ends = [("", "")] * rows
        else:
            intervals = mean_intervals(table, level)
            means = intervals.mean
            ends = [
                (format_value(low * f), format_value(high * f))
                for low, high, f in zip(
                    intervals.low.tolist(),
                    intervals.high.tolist(),
                    factors.tolist(),
                    strict=True,
                )
            ]
        for index, values in enumerate(found):
            f = float(factors[index])
            want = (
                format_value(float(means[index]) * f),
                *(format_value(float(q) * f) for q in at[index]),
                *ends[index],
            )
            assert want == values

    def test_non_finite_values_are_spelled_as_prometheus_does(self) -> None:
        """A mean beyond float64's range after the unit factor is +Inf, not inf."""
        table = np.array([[1e300, 1e300, 1e300], [1.0, 2.0, 3.0]])
        found = block_values(table, np.array([1e10, 1.0]), 0.95)
        assert ("+Inf",) * 6 == found[0]
        assert ("2.0", "2.0", "2.9", "2.98") == found[1][:4]

    @pytest.mark.parametrize("sample_bytes", [2, 4, 8])
    def test_ramps_of_integers(self, sample_bytes: int) -> None:
        """Wrapped ramps (the benchmark's windows) under every storage hint."""
        table = np.array(
            [np.roll(np.arange(1000.0), shift) for shift in (0, 17, 500, 999)]
        )
        found = block_values(table, np.ones(4), 0.95, sample_bytes)
        assert {("499.5", "499.5", "949.05", "989.01")} == {v[:4] for v in found}


class TestNonNegativeRows:
    """A quantity that cannot be negative gets the log-scale interval where the
    symmetric one would dip below zero, as ``stats`` gives it."""

    @settings(max_examples=60, deadline=None)
    @given(
        row=st.lists(
            st.floats(0.0, 1e6, allow_nan=False), min_size=2, max_size=120
        ).map(lambda values: np.array(values, dtype=np.float64)),
        level=st.sampled_from((0.9, 0.95, 0.99)),
    )
    def test_ends_are_mean_intervals_with_non_negative(
        self, row: np.ndarray[tuple[int], np.dtype[np.float64]], level: float
    ) -> None:
        table = np.vstack([row, row])
        found = block_values(
            table, np.ones(2), level, 8, np.array([True, False], dtype=np.bool_)
        )
        expected = mean_interval(row, level, non_negative=True)
        low, high = float(found[0][4]), float(found[0][5])
        assert low == pytest.approx(expected.low, rel=1e-9, abs=1e-300)
        assert high == pytest.approx(expected.high, rel=1e-9, abs=1e-300)
        if expected.mean > 0.0:
            assert low >= 0.0
        plain = mean_intervals(table, level)
        assert found[1][4:] == (format_value(plain.low[1]), format_value(plain.high[1]))

    def test_a_skewed_timing_keeps_its_interval_above_zero(self) -> None:
        row = np.array([1.0] * 40 + [4000.0], dtype=np.float64)
        symmetric = mean_intervals(row[np.newaxis, :], 0.95)
        assert symmetric.low[0] < 0.0  # the case this is about
        (values,) = block_values(
            row[np.newaxis, :], np.full(1, 1e-3), 0.95, 8, np.array([True])
        )
        expected = mean_interval(row, 0.95, non_negative=True)
        assert expected.method == "log-t"
        assert float(values[4]) == pytest.approx(expected.low * 1e-3, rel=1e-9)
        assert float(values[5]) == pytest.approx(expected.high * 1e-3, rel=1e-9)
