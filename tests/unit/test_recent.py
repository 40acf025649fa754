"""perfwarden.series.recent: statistics of the newest samples of many windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.series.recent import recent_moments
from perfwarden.series.window import RollingWindow

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


class TestRecentMoments:
    @settings(max_examples=100, deadline=None)
    @given(
        st.integers(2, 12),
        st.lists(st.lists(finite, min_size=12, max_size=60), min_size=1, max_size=6),
        st.integers(12, 30),
    )
    def test_match_numpy_per_window(
        self, count: int, streams: list[list[float]], capacity: int
    ) -> None:
        """Each window's mean and sd (ddof=1) of its newest samples agree with
        numpy on the same samples, whether its ring has wrapped or not."""
        windows = []
        for stream in streams:
            window = RollingWindow(capacity)
            window.extend(stream[: len(stream) // 2])
            window.extend(stream[len(stream) // 2 :])  # left pending
            windows.append(window)
        means, sds = recent_moments(windows, count)
        for window, mean, sd in zip(windows, means, sds, strict=True):
            newest = window.tail(count)
            scale = 1e-12 * max(1.0, float(np.max(np.abs(newest))))
            assert float(np.mean(newest)) == pytest.approx(mean, abs=scale)
            assert float(np.std(newest, ddof=1)) == pytest.approx(
                sd, rel=1e-9, abs=scale
            )

    def test_tail_into_needs_enough_samples(self) -> None:
        """Asking a window for more samples than it holds is an error, not zeros."""
        window = RollingWindow(10)
        window.extend([1.0, 2.0])
        with pytest.raises(ValueError, match="holds 2"):
            recent_moments([window], 3)
