"""perfwarden.series.tdist against scipy.stats.t (tests may import scipy, the daemon
not)."""

from __future__ import annotations

import math

import pytest
import scipy.special
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.series.tdist import (
    normal_quantile,
    t_cdf,
    t_quantile,
    two_sided_critical,
)

REL = 1e-10

DFS = (
    1, 1.0001, 1.5, 2, 2.0001, 2.5, 3, 4.5, 5, 7.3, 10, 19.99, 20, 21, 29, 30,
    99, 100, 101, 150, 999, 1e3, 12345.6, 1e5, 1e6, 3e6, 1e7,
)  # fmt: skip
PS = (
    1e-10, 1e-9, 1e-7, 1e-5, 1e-3, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.2500001,
    0.3, 0.4, 0.45, 0.499, 0.501, 0.6, 0.75, 0.9, 0.975, 0.99, 0.999, 1 - 1e-7,
    1 - 1e-10,
)  # fmt: skip

#: Within this distance of the median scipy.stats.t.ppf loses *relative* accuracy
#: (e.g. ppf(0.4999999, 4) is off by 4e-4, as scipy's own cdf shows), so there
#: the reference is the centre half inverted by scipy.special.betaincinv.
NEAR_MEDIAN = 1e-3

probabilities = st.floats(1e-10, 1 - 1e-10)
degrees = st.one_of(
    st.floats(0.0, 7.0).map(lambda e: 10.0**e),
    st.integers(1, 300).map(float),
)


def reference_quantile(p: float, df: float) -> float:
    """scipy's t quantile, or the centre-half inversion near the median."""
    d = p - 0.5
    if abs(d) >= NEAR_MEDIAN:
        return float(scipy.stats.t.ppf(p, df))
    y = float(scipy.special.betaincinv(0.5, df / 2.0, 2.0 * abs(d)))
    return math.copysign(math.sqrt(df * y / (1.0 - y)), d)


class TestQuantile:
    @pytest.mark.parametrize("df", DFS)
    @pytest.mark.parametrize("p", PS)
    def test_grid_matches_scipy(self, p: float, df: float) -> None:
        """t_quantile matches scipy.stats.t.ppf over a (p, df) grid."""
        assert scipy.stats.t.ppf(p, df) == pytest.approx(t_quantile(p, df), rel=REL)

    @settings(max_examples=400, deadline=None)
    @given(p=probabilities, df=degrees)
    def test_drawn_matches_scipy(self, p: float, df: float) -> None:
        """t_quantile matches scipy for drawn p in [1e-10, 1-1e-10], df in [1, 1e7]."""
        assert reference_quantile(p, df) == pytest.approx(t_quantile(p, df), rel=REL)

    @pytest.mark.parametrize("df", [1, 2, 4, 4.5, 30, 1e4, 1e7])
    @pytest.mark.parametrize("d", [1e-10, 1e-7, 1e-4])
    def test_near_median_keeps_relative_accuracy(self, d: float, df: float) -> None:
        """Near the median the quantile is relatively accurate, not just absolutely."""
        assert reference_quantile(0.5 - d, df) == pytest.approx(
            t_quantile(0.5 - d, df), rel=REL
        )

    def test_median_is_zero(self) -> None:
        """p = 0.5 gives exactly zero."""
        assert t_quantile(0.5, 7) == 0.0

    @pytest.mark.parametrize("df", [1, 2, 3.5, 30, 1e6])
    @pytest.mark.parametrize("p", [1e-10, 0.01, 0.3, 0.49])
    def test_symmetric(self, p: float, df: float) -> None:
        """t_quantile(1 - p) == -t_quantile(p) (for the p that 1 - p rounds back to)."""
        upper = 1 - p
        lower = 1 - upper  # exact: 1 - p rounds, this subtraction does not
        assert -t_quantile(lower, df) == t_quantile(upper, df)

    @pytest.mark.parametrize("p", [1e-10, 0.025, 0.3, 0.75, 0.975, 1 - 1e-10])
    def test_cauchy_closed_form(self, p: float) -> None:
        """df = 1 is the Cauchy quantile tan(pi (p - 1/2)) = -1 / tan(pi p)."""
        assert -1 / math.tan(math.pi * min(p, 1 - p)) * math.copysign(
            1, 0.5 - p
        ) == pytest.approx(t_quantile(p, 1), rel=1e-12)

    @pytest.mark.parametrize("p", [1e-10, 0.025, 0.3, 0.75, 0.975])
    def test_two_df_closed_form(self, p: float) -> None:
        """df = 2 is (2p - 1) / sqrt(2 p (1 - p))."""
        expected = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
        assert expected == pytest.approx(t_quantile(p, 2), rel=1e-12)

    @pytest.mark.parametrize("p", [1e-10, 0.025, 0.5, 0.975, 1 - 1e-10])
    def test_infinite_df_is_normal(self, p: float) -> None:
        """df = inf gives the normal quantile."""
        assert scipy.stats.norm.ppf(p) == pytest.approx(
            t_quantile(p, math.inf), rel=REL, abs=1e-300
        )

    @settings(max_examples=200, deadline=None)
    @given(p=probabilities, df=degrees)
    def test_round_trip_through_cdf(self, p: float, df: float) -> None:
        """t_cdf(t_quantile(p)) returns p."""
        assert p == pytest.approx(t_cdf(t_quantile(p, df), df), rel=1e-12)

    @pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5, math.nan])
    def test_rejects_p_outside_open_interval(self, p: float) -> None:
        """p must lie strictly between 0 and 1."""
        with pytest.raises(ValueError, match="p must lie"):
            t_quantile(p, 5)

    @pytest.mark.parametrize("df", [0.5, 0.0, -3.0, math.nan])
    def test_rejects_df_below_one(self, df: float) -> None:
        """df must be at least 1."""
        with pytest.raises(ValueError, match="df must be"):
            t_quantile(0.9, df)


class TestCdf:
    @pytest.mark.parametrize("df", DFS)
    @pytest.mark.parametrize("p", PS)
    def test_grid_matches_scipy(self, p: float, df: float) -> None:
        """t_cdf matches scipy.stats.t.cdf at the grid's quantiles."""
        x = float(scipy.stats.t.ppf(p, df))
        assert scipy.stats.t.cdf(x, df) == pytest.approx(t_cdf(x, df), rel=REL)

    @settings(max_examples=400, deadline=None)
    @given(x=st.floats(-60.0, 60.0), df=degrees)
    def test_drawn_matches_scipy(self, x: float, df: float) -> None:
        """t_cdf matches scipy for drawn x and df, tails included."""
        # scipy's cdf loses its last digits within ~1e-6 of the median (it returns
        # exactly 0.5 for t_cdf(7e-9, 1)); only absolute agreement holds there.
        near_median = abs(x) < 1e-6
        assert scipy.stats.t.cdf(x, df) == pytest.approx(
            t_cdf(x, df), rel=REL, abs=1e-8 if near_median else 1e-290
        )

    @pytest.mark.parametrize("x", [-1e12, -3.0, 0.0, 0.5, 40.0])
    def test_cauchy_closed_form(self, x: float) -> None:
        """df = 1 is 1/2 + atan(x)/pi."""
        assert 0.5 + math.atan(x) / math.pi == pytest.approx(t_cdf(x, 1), rel=1e-12)

    def test_infinite_arguments(self) -> None:
        """The cdf is 0 at -inf, 1 at +inf, nan at nan."""
        expected = (0.0, 1.0)
        assert expected == (t_cdf(-math.inf, 3.5), t_cdf(math.inf, 3.5))
        assert math.isnan(t_cdf(math.nan, 3.5))


class TestNormalQuantile:
    @settings(max_examples=300, deadline=None)
    @given(p=st.floats(1e-300, 1.0, exclude_max=True))
    def test_matches_scipy(self, p: float) -> None:
        """normal_quantile matches scipy.stats.norm.ppf down to 1e-300."""
        assert scipy.stats.norm.ppf(p) == pytest.approx(
            normal_quantile(p), rel=1e-12, abs=1e-300
        )


class TestTwoSidedCritical:
    def test_95_percent_29_df(self) -> None:
        """The seed's case: 95% with 29 degrees of freedom."""
        expected = scipy.stats.t.interval(0.95, 29)[1]
        assert expected == pytest.approx(two_sided_critical(0.95, 29), rel=1e-12)

    @pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99, 0.999999])
    @pytest.mark.parametrize("df", [1, 2, 3, 29, 999, 999_999])
    def test_matches_scipy_interval(self, level: float, df: int) -> None:
        """two_sided_critical is the upper end of scipy's standard t interval."""
        expected = scipy.stats.t.ppf(0.5 + level / 2, df)
        assert expected == pytest.approx(two_sided_critical(level, df), rel=REL)

    def test_memoised(self) -> None:
        """A repeated call is served from the bounded cache."""
        two_sided_critical(0.95, 123)
        hits = two_sided_critical.cache_info().hits
        two_sided_critical(0.95, 123)
        assert hits + 1 == two_sided_critical.cache_info().hits
        assert two_sided_critical.cache_info().maxsize is not None

    @pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 95.0])
    def test_rejects_level_outside_open_interval(self, level: float) -> None:
        """The confidence level must lie strictly between 0 and 1."""
        with pytest.raises(ValueError, match="confidence_level"):
            two_sided_critical(level, 10)
