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
        at = np.percentile(table, [50, 95, 99], axis=1).T
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
