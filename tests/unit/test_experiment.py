"""The before/after judge: Mann-Whitney U against scipy, and the three verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from perfwarden.optimize.verdict import GuardCheck, Verdict, judge, mann_whitney_less

samples = st.lists(
    st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 1)),
    min_size=1,
    max_size=60,
)


class TestMannWhitney:
    @given(samples, samples)
    def test_matches_scipy_asymptotic(self, x: list[float], y: list[float]) -> None:
        """The one-sided p-value equals scipy's asymptotic one, ties included."""
        a, b = np.asarray(x), np.asarray(y)
        combined = np.concatenate((a, b))
        if np.all(combined == combined[0]):
            assert 1.0 == mann_whitney_less(a, b)
            return
        expected = scipy_stats.mannwhitneyu(
            a, b, alternative="less", method="asymptotic", use_continuity=True
        ).pvalue
        assert expected == pytest.approx(mann_whitney_less(a, b), rel=1e-9, abs=1e-14)


rng = np.random.default_rng(11)


def normal(mean: float, n: int = 200, sd: float = 10.0) -> np.ndarray:
    return rng.normal(mean, sd, n)


class TestJudge:
    def test_clear_improvement_kept(self) -> None:
        """Latency down 20% with the same spread is kept, effect about +20%."""
        result = judge(normal(100), normal(80), bound="upper", significance=0.05)
        assert Verdict.KEPT == result.verdict
        assert 20 == pytest.approx(result.effect_percent, abs=4)

    def test_worse_reverted(self) -> None:
        """Latency up is reverted with the reason."""
        result = judge(normal(100), normal(120), bound="upper", significance=0.05)
        assert Verdict.REVERTED == result.verdict
        assert "worse" in result.reason

    def test_lower_bound_direction(self) -> None:
        """For a score (higher is better) up is kept, down reverted."""
        up = judge(
            normal(0.8, sd=0.05), normal(0.9, sd=0.05), bound="lower", significance=0.05
        )
        down = judge(
            normal(0.9, sd=0.05), normal(0.8, sd=0.05), bound="lower", significance=0.05
        )
        assert (Verdict.KEPT, Verdict.REVERTED) == (up.verdict, down.verdict)

    def test_no_difference_inconclusive(self) -> None:
        """The same distribution before and after: inconclusive."""
        result = judge(normal(100), normal(100), bound="upper", significance=0.001)
        assert Verdict.INCONCLUSIVE == result.verdict

    def test_too_few_samples_inconclusive(self) -> None:
        """A handful of samples after the action cannot be judged."""
        result = judge(normal(100), normal(50, n=5), bound="upper", significance=0.05)
        assert Verdict.INCONCLUSIVE == result.verdict
        assert "too few" in result.reason

    def test_doubled_tail_reverted(self) -> None:
        """A better median with a doubled p99 is not an improvement."""
        before = normal(100, n=400, sd=5)
        after = normal(95, n=400, sd=5)
        after[:20] = 400.0  # 5% of requests now take four times as long
        result = judge(before, after, bound="upper", significance=0.05)
        assert Verdict.REVERTED == result.verdict
        assert "tail" in result.reason

    def test_guard_hurt_reverted(self) -> None:
        """An improvement that significantly worsens a guard metric is reverted."""
        guard = GuardCheck(
            metric="quality",
            bound="lower",
            before=normal(0.95, sd=0.01),
            after=normal(0.90, sd=0.01),
        )
        result = judge(
            normal(100), normal(80), bound="upper", significance=0.05, guards=(guard,)
        )
        assert Verdict.REVERTED == result.verdict
        assert "quality" in result.reason
        assert result.guards[0]["checked"]
