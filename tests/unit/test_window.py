"""perfwarden.series.window: the ring buffer, its storage and its moments."""

from __future__ import annotations

import math
import struct
from array import array

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.series.window import SINK_FLUSH_AT, RollingWindow

EPS = float(np.finfo(np.float64).eps)

finite = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)


@st.composite
def capacity_and_batches(draw: st.DrawFn) -> tuple[int, list[list[float]]]:
    """A capacity and a sequence of batches of 0 to 3 * capacity finite floats."""
    capacity = draw(st.integers(1, 24))
    batch = st.lists(finite, max_size=3 * capacity)
    return capacity, draw(st.lists(batch, max_size=12))


def assert_moments_match(window: RollingWindow) -> None:
    """The window's mean and variance agree with a numpy recomputation.

    numpy's own results carry an error of a few eps times the largest magnitude,
    so the tolerances add that to the 1e-12 (mean) and 1e-9 (variance) targets.
    """
    values = window.values()
    n = values.shape[0]
    if n == 0:
        assert math.isnan(window.mean())
        assert math.isnan(window.variance())
        return
    scale = 64 * EPS * float(np.max(np.abs(values)))
    expected_mean = float(np.mean(values))
    if n == 1:
        assert expected_mean == window.mean()
        assert math.isnan(window.variance())
        return
    expected_var = float(np.var(values, ddof=1))
    sd = math.sqrt(expected_var)
    assert expected_mean == pytest.approx(
        window.mean(),
        rel=0,
        abs=1e-12 * max(1.0, abs(expected_mean)) + 1e-10 * sd + scale,
    )
    # Squares below ~1e-290 are subnormal: only a few bits survive there, in numpy too.
    subnormal = 1e-290
    assert expected_var == pytest.approx(
        window.variance(), rel=1e-9, abs=scale * scale + subnormal
    )


def _fits_float32(value: float) -> bool:
    try:
        return struct.unpack("f", struct.pack("f", value))[0] == value
    except OverflowError:
        return False


#: Samples that int16, float32 and only float64 storage hold exactly, mixed.
_ANY_STORAGE = st.one_of(
    st.integers(-40000, 40000).map(float),
    st.integers(-(2**25), 2**25).map(lambda v: v / 4),
    st.floats(-1e100, 1e100),
)


class TestRingBuffer:
    @settings(max_examples=300, deadline=None)
    @given(capacity_and_batches())
    def test_values_are_last_capacity_of_concatenation(
        self, case: tuple[int, list[list[float]]]
    ) -> None:
        """values() is always the newest `capacity` samples of everything appended."""
        capacity, batches = case
        window = RollingWindow(capacity)
        seen: list[float] = []
        for batch in batches:
            window.extend(np.array(batch, dtype=np.float64))
            seen.extend(batch)
            expected = seen[-capacity:]
            assert expected == window.values().tolist()
            assert len(expected) == len(window)
            assert len(seen) == window.total_count

    @settings(max_examples=100, deadline=None)
    @given(capacity_and_batches(), st.integers(0, 30))
    def test_tail_is_newest_k(
        self, case: tuple[int, list[list[float]]], k: int
    ) -> None:
        """tail(k) is the newest min(k, len) samples, oldest first."""
        capacity, batches = case
        window = RollingWindow(capacity)
        for batch in batches:
            window.extend(np.array(batch))
        values = window.values().tolist()
        assert values[len(values) - min(k, len(values)) :] == window.tail(k).tolist()

    @settings(max_examples=100, deadline=None)
    @given(capacity_and_batches(), st.integers(1, 40))
    def test_unordered_holds_the_same_samples(
        self, case: tuple[int, list[list[float]]], new_capacity: int
    ) -> None:
        """unordered() is values() in some order, read-only, through appends,
        extends and resizes."""
        capacity, batches = case
        window = RollingWindow(capacity)
        for index, batch in enumerate(batches):
            if index == len(batches) // 2:
                window.resize(new_capacity)
            window.extend(np.array(batch))
            if batch:
                window.append(batch[0])
            view = window.unordered()
            assert sorted(window.values().tolist()) == sorted(view.tolist())
            with pytest.raises(ValueError, match="read-only"):
                view[:] = 0.0

    @settings(max_examples=100, deadline=None)
    @given(capacity_and_batches())
    def test_append_equals_extend(self, case: tuple[int, list[list[float]]]) -> None:
        """Appending one by one gives the same window as extending by batches."""
        capacity, batches = case
        by_batch = RollingWindow(capacity)
        one_by_one = RollingWindow(capacity)
        for batch in batches:
            by_batch.extend(np.array(batch))
            for value in batch:
                one_by_one.append(value)
        assert by_batch.values().tolist() == one_by_one.values().tolist()
        assert by_batch.total_count == one_by_one.total_count
        assert_moments_match(one_by_one)

    @settings(max_examples=100, deadline=None)
    @given(capacity_and_batches())
    def test_take_equals_extend(self, case: tuple[int, list[list[float]]]) -> None:
        """take() of checked lists gives the same window as extend()."""
        capacity, batches = case
        taking = RollingWindow(capacity)
        extending = RollingWindow(capacity)
        for batch in batches:
            extending.extend(list(batch))
            if batch:
                taking.take(list(batch))
            assert taking.total_count == extending.total_count
            assert taking.observed_sum == extending.observed_sum
        assert taking.values().tolist() == extending.values().tolist()
        assert taking.sample_bytes == extending.sample_bytes
        assert_moments_match(taking)

    @settings(max_examples=100, deadline=None)
    @given(capacity_and_batches(), st.integers(1, 40))
    def test_resize_keeps_newest(
        self, case: tuple[int, list[list[float]]], new_capacity: int
    ) -> None:
        """resize() keeps the newest samples that fit, and the window keeps working."""
        capacity, batches = case
        window = RollingWindow(capacity)
        for batch in batches:
            window.extend(np.array(batch))
        before = window.values().tolist()
        total = window.total_count
        window.resize(new_capacity)
        assert new_capacity == window.capacity
        assert before[len(before) - min(new_capacity, len(before)) :] == (
            window.values().tolist()
        )
        assert total == window.total_count
        assert_moments_match(window)
        window.extend(np.arange(5.0))
        assert (before + list(np.arange(5.0)))[
            -new_capacity:
        ] == window.values().tolist()
        assert_moments_match(window)

    def test_empty_window(self) -> None:
        """A new window is empty, with NaN moments."""
        window = RollingWindow(3)
        expected = (0, 0, 3)
        assert expected == (len(window), window.total_count, window.capacity)
        assert not window.values().tolist()
        assert not window.tail(2).tolist()
        assert math.isnan(window.mean())

    def test_empty_batch_is_a_no_op(self) -> None:
        """Extending by an empty array changes nothing."""
        window = RollingWindow(3)
        window.extend(np.array([1.0, 2.0]))
        window.extend(np.array([], dtype=np.float64))
        expected = ([1.0, 2.0], 2)
        assert expected == (window.values().tolist(), window.total_count)

    def test_values_is_a_copy(self) -> None:
        """Mutating values() does not touch the window."""
        window = RollingWindow(3)
        window.extend(np.array([1.0, 2.0, 3.0]))
        window.values()[:] = 0.0
        window.tail(3)[:] = 0.0
        expected = [1.0, 2.0, 3.0]
        assert expected == window.values().tolist()

    def test_batch_longer_than_capacity_keeps_its_tail(self) -> None:
        """A batch longer than the window keeps its last `capacity` values."""
        window = RollingWindow(4)
        window.extend(np.array([9.0]))
        window.extend(np.arange(10.0))
        expected = ([6.0, 7.0, 8.0, 9.0], 11)
        assert expected == (
            window.values().tolist(),
            window.total_count,
        )

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    @pytest.mark.parametrize("batch_size", [1, 3, 10])
    def test_non_finite_batch_is_rejected_whole(
        self, bad: float, batch_size: int
    ) -> None:
        """A batch with NaN or infinity raises and leaves the window unchanged."""
        window = RollingWindow(4)
        window.extend(np.array([1.0, 2.0, 3.0]))
        batch = np.ones(batch_size)
        batch[-1] = bad
        with pytest.raises(ValueError, match="finite"):
            window.extend(batch)
        with pytest.raises(ValueError, match="finite"):
            window.append(bad)
        expected = ([1.0, 2.0, 3.0], 3, 2.0)
        assert expected == (
            window.values().tolist(),
            window.total_count,
            window.mean(),
        )

    def test_values_too_large_to_square_are_rejected(self) -> None:
        """Finite values whose squares overflow raise instead of poisoning the sums."""
        window = RollingWindow(4)
        with pytest.raises(ValueError, match="too large"):
            window.extend(np.array([1e200, -1e200]))
        with pytest.raises(ValueError, match="too large"):
            window.extend(np.array([1e200, -1e200] * 5))
        with pytest.raises(ValueError, match="too large"):
            window.append(1e200)
        assert not len(window)

    @pytest.mark.parametrize("capacity", [0, -1])
    def test_capacity_must_be_positive(self, capacity: int) -> None:
        """A window needs room for at least one sample."""
        with pytest.raises(ValueError, match="capacity"):
            RollingWindow(capacity)
        with pytest.raises(ValueError, match="capacity"):
            RollingWindow(3).resize(capacity)

    def test_restored_is_the_same_window(self) -> None:
        """restored() (how state.db brings a window back) holds the same samples
        and counts, and keeps the newest capacity samples of a longer history."""
        window = RollingWindow(5)
        window.extend(np.arange(8.0))
        restored = RollingWindow.restored(5, window.values(), window.total_count)
        assert window.values().tolist() == restored.values().tolist()
        assert (5, 8) == (restored.capacity, restored.total_count)
        assert window.variance() == pytest.approx(restored.variance(), rel=1e-15)
        smaller = RollingWindow.restored(3, window.values(), window.total_count)
        assert [5.0, 6.0, 7.0] == smaller.values().tolist()


class TestStorage:
    def test_memory_follows_the_samples(self) -> None:
        """A window allocates nothing until it holds samples, then grows with them
        up to its capacity and no further."""
        window = RollingWindow(1000)
        assert window.nbytes == 0
        window.append(1.5)
        window.flush()
        assert 0 < window.nbytes <= 8 * 4
        window.extend([float(v) + 0.5 for v in range(99)])
        window.flush()
        assert window.nbytes <= 2 * 100 * 4
        window.extend(np.arange(5000.0) + 0.25)
        assert window.nbytes == 1000 * 4
        assert (np.arange(4000.0, 5000.0) + 0.25).tolist() == window.values().tolist()

    @pytest.mark.parametrize(
        ("values", "itemsize"),
        [
            ([1240.0, 0.0, -32767.0, 32767.0], 2),
            ([1240.0, 0.5, -3.25, 16777216.0], 4),
            ([1240.0, 32768.0], 4),
            ([5.0, -32768.0], 4),
            ([-0.0, 7.0], 2),
            ([1.0, 0.1], 8),
            ([1.0, 1e100], 8),
        ],
    )
    def test_the_narrowest_exact_type_holds_the_samples(
        self, values: list[float], itemsize: int
    ) -> None:
        """int16 while every sample is an integer within +-32767, float32 while
        exact there, else float64; every sample reads back equal, whichever way it
        arrived (one by one, as a list, as an array)."""
        for batches in (
            [[v] for v in values],
            [values * 10],
            [np.array(values * 10)],
        ):
            window = RollingWindow(len(values) * 10)
            for batch in batches:
                window.extend(batch)
            window.flush()
            expected = values * (10 if len(batches) == 1 else 1)
            assert expected == window.values().tolist()
            assert (itemsize, expected) == (
                window.sample_bytes,
                window.tail(len(window)).tolist(),
            )

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.one_of(
                _ANY_STORAGE,
                st.integers(-40000, 40000),  # ints appended as they are
            ),
            min_size=1,
            max_size=80,
        )
    )
    def test_flushes_keep_the_narrowest_exact_type(self, values: list[float]) -> None:
        """Whatever mix is flushed, in lists of any length, the buffer holds the
        narrowest of int16 / float32 / float64 that keeps every value exact."""
        window = RollingWindow(100)
        for start in range(0, len(values), 7):
            window.extend(values[start : start + 7])
            window.flush()
        kept = [float(v) for v in values[-100:]]
        assert kept == window.values().tolist()
        if all(v.is_integer() and abs(v) <= 32767 for v in kept):
            expected = 2
        elif all(_fits_float32(v) for v in kept):
            expected = 4
        else:
            expected = 8
        assert expected == window.sample_bytes

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(_ANY_STORAGE, min_size=1, max_size=300),
        st.lists(st.integers(1, SINK_FLUSH_AT + 20), min_size=1, max_size=8),
    )
    def test_a_sink_flushes_as_a_list_does(
        self, values: list[float], runs: list[int]
    ) -> None:
        """Values appended to a sink, flushed in runs of any length (short ones
        through the list's checks, long ones through numpy), are held as if
        appended to the window: same values, same narrowest exact type."""
        through_sink, through_list = RollingWindow(200), RollingWindow(200)
        sink = through_sink.sink()
        start = 0
        for length in runs * (len(values) // sum(runs) + 1):
            chunk = values[start : start + length]
            sink.extend(chunk)
            through_sink.flush()
            through_list.extend(chunk)
            through_list.flush()
            start += length
        assert through_list.values().tolist() == through_sink.values().tolist()
        assert through_list.sample_bytes == through_sink.sample_bytes
        assert through_list.total_count == through_sink.total_count == len(values)
        assert through_sink.sink() is sink
        assert not sink

    def test_a_sink_holds_its_values_inline(self) -> None:
        """A sink is an array of doubles (8 bytes a pending sample, no float
        object each), made from what was pending when it was asked for."""
        window = RollingWindow(10)
        window.take([1.0, 2.0])
        sink = window.sink()
        assert isinstance(sink, array)
        assert "d" == sink.typecode
        assert [1.0, 2.0] == sink.tolist()
        sink.append(3.0)
        assert [1.0, 2.0, 3.0] == window.values().tolist()

    def test_a_given_list_is_kept_not_copied(self) -> None:
        """take() keeps the list as the pending samples when none are pending,
        and appends it to them otherwise; the values are the same."""
        window = RollingWindow(10)
        first = [1.0, 2.0]
        window.take(first)
        assert window._pending is first  # what take() saves: a copy
        window.take([3.0])
        assert [1.0, 2.0, 3.0] == window.values().tolist()
        assert (3, 6.0) == (window.total_count, window.observed_sum)

    def test_take_and_the_sink_share_one_pending_list(self) -> None:
        """Once sink() gave the pending list out, take() appends to it (never
        swaps it), flushes keep it, and what is appended there counts at once."""
        window = RollingWindow(10)
        sink = window.sink()
        window.take([1.0, 2.0])
        sink.append(3.0)
        assert (3, 6.0) == (window.total_count, window.observed_sum)
        assert [1.0, 2.0, 3.0] == window.values().tolist()
        assert window.sink() is sink
        assert not sink  # values() flushed it
        window.take([4.0] * 40)
        assert window.sink() is sink
        assert not sink
        assert 43 == window.total_count

    def test_a_wider_sample_widens_the_buffer_for_good(self) -> None:
        """Samples already held keep their values when the buffer widens."""
        window = RollingWindow(100)
        exact = [1240.0, 3.0, -7.0, 16.0]
        window.extend(exact * 25)
        window.flush()
        assert window.nbytes == 100 * 2
        window.extend([0.5])
        window.flush()
        assert window.nbytes == 100 * 4
        window.extend([0.1, 1e100])
        window.flush()
        assert window.nbytes == 100 * 8
        assert [*(exact * 25)[3:], 0.5, 0.1, 1e100] == window.values().tolist()

    @pytest.mark.parametrize("values", [[3.0, -7.0], [0.5, 2.25], [0.1, 1e100]])
    def test_tail_stored_is_exact_in_the_buffer_type(self, values: list[float]) -> None:
        """tail_stored() copies the newest samples in the buffer's type, equal to
        tail()'s float64, wrapped ring or not."""
        window = RollingWindow(7)
        for count in (3, 7, 12):
            window.extend(values * count)
            stored = window.tail_stored(5)
            assert stored.itemsize == window.sample_bytes
            assert window.tail(5).tolist() == stored.astype(np.float64).tolist()

    def test_settle_flushes_a_window_that_went_quiet(self) -> None:
        """settle() leaves a busy window's pending samples alone and flushes them
        once nothing arrived since the previous call."""
        window = RollingWindow(100)
        window.settle()
        window.extend([1.5, 2.5])
        window.settle()
        assert window.nbytes == 0
        window.settle()
        assert window.nbytes > 0
        assert [1.5, 2.5] == window.values().tolist()

    def test_array_batches_are_narrowed_only_when_exact(self) -> None:
        """An array batch (a restored state) keeps narrow storage when exact."""
        window = RollingWindow.restored(50, np.arange(60.0), 75)
        assert (50, 75, 50 * 2) == (len(window), window.total_count, window.nbytes)
        window.extend(np.array([2.0**-30 + 1.0]))
        assert window.values()[-1] == 2.0**-30 + 1.0
        assert window.nbytes == 50 * 8

    @settings(max_examples=200, deadline=None)
    @given(capacity_and_batches(), st.lists(st.booleans(), max_size=12))
    def test_pending_samples_are_read_like_stored_ones(
        self, case: tuple[int, list[list[float]]], flushes: list[bool]
    ) -> None:
        """Whether or not pending samples were flushed, every reader sees the same
        window: length, tail, unordered samples and moments."""
        capacity, batches = case
        flushed = RollingWindow(capacity)
        lazy = RollingWindow(capacity)
        everything: list[float] = []
        flushes = flushes + [False] * len(batches)
        for batch, flush in zip(batches, flushes, strict=False):
            everything += batch
            flushed.extend(batch)
            flushed.flush()
            lazy.extend(batch)
            if flush:
                lazy.flush()
            expected = everything[-capacity:]
            assert len(expected) == len(lazy) == len(flushed)
            assert expected[-3:] == lazy.tail(3).tolist()
            assert sorted(expected) == sorted(lazy.unordered().tolist())
            assert flushed.values().tolist() == lazy.values().tolist()
            assert_moments_match(lazy)


class TestMoments:
    @settings(max_examples=300, deadline=None)
    @given(capacity_and_batches(), st.booleans())
    def test_match_numpy_on_every_step(
        self, case: tuple[int, list[list[float]]], as_list: bool
    ) -> None:
        """Mean and variance agree with numpy after every batch, whether it comes
        as an array or as a list (lists wait in the pending list)."""
        capacity, batches = case
        window = RollingWindow(capacity)
        for batch in batches:
            window.extend(batch if as_list else np.array(batch))
            assert_moments_match(window)

    @settings(max_examples=100, deadline=None)
    @given(capacity_and_batches())
    def test_list_and_array_batches_give_one_window(
        self, case: tuple[int, list[list[float]]]
    ) -> None:
        """The same batches as lists and as arrays leave the same samples."""
        capacity, batches = case
        from_lists = RollingWindow(capacity)
        from_arrays = RollingWindow(capacity)
        for batch in batches:
            from_lists.extend(batch)
            from_arrays.extend(np.array(batch))
            assert from_arrays.values().tolist() == from_lists.values().tolist()
            assert from_arrays.total_count == from_lists.total_count

    def test_small_lists_after_huge_outlier_leaves(self) -> None:
        """Short lists after a 1e9 outlier left: the moments are exact again."""
        rng = np.random.default_rng(5)
        window = RollingWindow(100)
        window.extend(rng.normal(size=50).tolist())
        window.extend([1e9])
        for _ in range(30):
            window.extend(rng.normal(size=4).tolist())
            assert_moments_match(window)
        assert float(np.max(window.values())) < 1e3

    def test_small_values_after_huge_outlier_leaves(self) -> None:
        """Once a 1e9 outlier leaves, the variance of unit-scale data is exact again."""
        rng = np.random.default_rng(1)
        window = RollingWindow(100)
        window.extend(rng.normal(size=50))
        window.append(1e9)
        for _ in range(10):
            window.extend(rng.normal(size=10))
            assert_moments_match(window)
        assert float(np.max(window.values())) < 1e3

    def test_constant_window_has_zero_variance(self) -> None:
        """A constant window has variance exactly 0 and its value as mean."""
        window = RollingWindow(10)
        window.extend(np.random.default_rng(2).normal(size=25))
        window.extend(np.full(13, 0.1))
        expected = (0.0, 0.1)
        assert expected == (window.variance(), window.mean())

    def test_single_sample(self) -> None:
        """One sample: the mean is the sample, the variance NaN."""
        window = RollingWindow(10)
        sample = 3.25
        window.append(sample)
        assert sample == window.mean()
        assert math.isnan(window.variance())

    def test_capacity_one(self) -> None:
        """A one-sample window follows the newest sample."""
        window = RollingWindow(1)
        for value in (5.0, -2.0, 7.5):
            window.append(value)
            assert value == window.mean()
        batch = np.array([1.0, 2.0])
        window.extend(batch)
        assert batch[-1] == window.mean()


def _run_long(
    stream: npt.NDArray[np.float64], capacity: int, batch: int, checkpoints: int
) -> None:
    window = RollingWindow(capacity)
    step = len(stream) // checkpoints
    as_list = batch <= 16  # short batches as lists: the plain-Python path
    for start in range(0, len(stream), batch):
        chunk = stream[start : start + batch]
        window.extend(chunk.tolist() if as_list else chunk)
        end = start + batch
        if end // step != start // step or end >= len(stream):
            values = window.values()
            mean = float(np.mean(values))
            assert mean == pytest.approx(
                window.mean(), rel=0, abs=1e-12 * max(1.0, abs(mean))
            )
            assert np.var(values, ddof=1) == pytest.approx(window.variance(), rel=1e-9)
    assert len(stream) == window.total_count


class TestLongRun:
    SAMPLES = 2_000_000

    def test_large_offset_stays_exact(self) -> None:
        """2 million samples of 1e6 + N(0, 1) in batches of 37 stay exact."""
        rng = np.random.default_rng(3)
        stream = 1e6 + rng.standard_normal(self.SAMPLES)
        _run_long(stream, capacity=1000, batch=37, checkpoints=5)

    def test_large_offset_stays_exact_in_short_lists(self) -> None:
        """The same in lists of 7 (the plain-Python path of many-series ingest)."""
        rng = np.random.default_rng(6)
        stream = 1e6 + rng.standard_normal(self.SAMPLES // 2)
        _run_long(stream, capacity=1000, batch=7, checkpoints=5)

    def test_drift_stays_exact(self) -> None:
        """2 million drifting samples (1e6 + 1e-3 per sample + N(0, 1)) stay exact."""
        rng = np.random.default_rng(4)
        stream = (
            1e6 + 1e-3 * np.arange(self.SAMPLES) + rng.standard_normal(self.SAMPLES)
        )
        _run_long(stream, capacity=10_000, batch=37, checkpoints=5)


class TestObservedTotals:
    @settings(max_examples=100, deadline=None)
    @given(
        batches=st.lists(
            st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=80), max_size=12
        ),
        capacity=st.integers(1, 50),
    )
    def test_count_and_sum_of_everything_appended(
        self, batches: list[list[float]], capacity: int
    ) -> None:
        """Every path (lists, arrays, single values, batches past the capacity)
        adds to the summary's count and sum, evicted samples included."""
        window = RollingWindow(capacity)
        for index, batch in enumerate(batches):
            if index % 3 == 0:
                window.extend(batch)
            elif index % 3 == 1:
                window.extend(np.array(batch))
            else:
                for value in batch:
                    window.append(value)
        everything = [v for batch in batches for v in batch]
        assert len(everything) == window.observed_count
        assert math.isclose(
            math.fsum(everything), window.observed_sum, rel_tol=1e-9, abs_tol=1e-3
        )

    def test_a_restored_window_starts_counting_afresh(self) -> None:
        """Restored samples were counted by the previous process, not this one."""
        window = RollingWindow.restored(10, [1.0, 2.0, 3.0], total_count=100)
        assert (0, 0.0) == (window.observed_count, window.observed_sum)
        window.append(4.0)
        assert (1, 4.0) == (window.observed_count, window.observed_sum)
        assert 101 == window.total_count
