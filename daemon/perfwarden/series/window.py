"""A fixed-capacity rolling window of float64 samples with O(batch) running moments.

Responsibility: hold the newest ``capacity`` samples of one series and keep their
mean and sample variance current as batches arrive, at a cost independent of the
window size.

Storage is a ring buffer over one preallocated ``float64`` array; a batch is
written with at most two slice assignments.

Running moments use *shifted sums*: with a shift ``K`` close to the mean the window
keeps ``S1 = sum(x - K)`` and ``S2 = sum((x - K)**2)``; a batch adds its own sums and
subtracts those of the samples it overwrites (both vectorised), and::

    mean = K + S1 / n,    variance = (S2 - S1**2 / n) / (n - 1)

Shifting by ``K`` removes the catastrophic cancellation of the textbook
``sum(x**2) - n * mean**2`` (data like ``1e6 + N(0, 1)``). What remains is the
rounding that accumulates through additions and, above all, through subtractions
after a large value leaves the window. So the window also carries a running *bound*
on that rounding (standard floating-point summation bounds, a few ``eps`` times the
magnitudes involved) and recomputes ``K``, ``S1`` and ``S2`` exactly from the
buffer (a few numpy passes, O(capacity)) whenever:

* the bound exceeds ``1e-11`` of the variance's numerator, or ``1e-11`` of the
  standard deviation for the mean (an outlier has left, the mean has drifted far
  from ``K``, ...), or
* ``capacity`` samples have been evicted since the last recomputation
  (belt and braces: amortised O(1) per sample).

In steady state this is O(batch) per ``extend``; only adversarial data (repeated
outliers ~1e8 standard deviations away) makes it recompute often. The exact
recomputation picks ``K`` as the mean, or as the sample itself when the window is
constant, so a constant window has a variance of exactly zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["RollingWindow"]

_EPS = 2.220446049250313e-16
#: Lists up to this long are appended in plain Python (:meth:`_extend_small`).
_SMALL_BATCH = 32
#: Relative rounding bound above which the moments are recomputed from the buffer.
_TOLERANCE = 1e-11

FloatArray = npt.NDArray[np.float64]

#: ``ndarray.sum`` without the Python-level wrapper (the same pairwise reduction).
_add_reduce = np.add.reduce


def _pairwise_error_factor(count: int) -> float:
    """Rounding bound factor (in eps) of numpy's pairwise sum of ``count`` terms,
    including the rounding of each ``(x - K)**2`` term."""
    return 8.0 + count.bit_length()


class RollingWindow:
    """The newest ``capacity`` float samples of one series, with running moments.

    Values must be finite (the ingest parser rejects NaN and infinities) and below
    ~1e150 in magnitude, so that squares stay finite; a batch that breaks this
    raises ``ValueError`` and leaves the window unchanged.
    """

    __slots__ = (
        "_buf",
        "_count_base",
        "_err1",
        "_err2",
        "_evicted",
        "_head",
        "_s1",
        "_s2",
        "_shift",
        "_size",
        "_sum_total",
        "_total",
    )

    def __init__(self, capacity: int) -> None:
        """Create an empty window holding at most ``capacity`` (>= 1) samples."""
        if capacity < 1:
            msg = f"capacity must be >= 1, got {capacity}"
            raise ValueError(msg)
        self._buf: FloatArray = np.zeros(capacity, dtype=np.float64)
        self._head = 0  # next write position
        self._size = 0
        self._total = 0
        self._count_base = 0
        self._sum_total = 0.0
        self._reset_moments()

    # -- sizes ---------------------------------------------------------------

    def __len__(self) -> int:
        """Number of samples currently held."""
        return self._size

    def __repr__(self) -> str:
        return (
            f"RollingWindow(capacity={self.capacity}, len={self._size}, "
            f"total_count={self._total})"
        )

    @property
    def capacity(self) -> int:
        """Maximum number of samples held."""
        return int(self._buf.shape[0])

    @property
    def total_count(self) -> int:
        """Samples ever appended, including those already evicted."""
        return self._total

    @property
    def observed_count(self) -> int:
        """Samples appended since this window was created or restored (this
        daemon process' share of ``total_count``: a Prometheus summary's count)."""
        return self._total - self._count_base

    @property
    def observed_sum(self) -> float:
        """The sum of the samples counted by :attr:`observed_count`."""
        return self._sum_total

    # -- appending -----------------------------------------------------------

    def extend(self, values: npt.ArrayLike) -> None:
        """Append a batch (oldest first); a batch longer than the capacity keeps
        its last ``capacity`` values. Vectorised; O(len(values)) amortised.

        Raises ``ValueError`` (window unchanged) for non-finite or huge values.
        """
        if isinstance(values, list) and len(values) <= _SMALL_BATCH:
            self._extend_small(values)
            return
        batch = np.asarray(values, dtype=np.float64).reshape(-1)
        m = int(batch.shape[0])
        if m == 0:
            return
        cap = self.capacity
        if m >= cap:
            self._check_finite(batch)
            kept = batch[m - cap :]
            moments = _exact_moments(kept)  # raises before anything changes
            self._buf[:] = kept
            self._head = 0
            self._size = cap
            self._total += m
            self._sum_total += float(_add_reduce(batch))
            self._set_moments(cap, *moments)
            return
        shift = self._shift
        centred = batch - shift
        # BLAS vdot: overflow gives inf without a warning (tested), NaN propagates
        add2 = float(np.vdot(centred, centred))
        if not math.isfinite(add2):
            self._check_finite(batch)  # raises with the precise reason
            msg = "batch values too large for running moments"
            raise ValueError(msg)
        add1 = float(_add_reduce(centred))  # cannot overflow now
        head = self._head
        evict = self._size + m - cap
        sub1 = sub2 = 0.0
        if evict > 0:
            start = (head + m - evict) % cap
            for lo, hi in _spans(start, evict, cap):
                old = self._buf[lo:hi] - shift
                sub1 += float(_add_reduce(old))
                sub2 += float(np.vdot(old, old))
            self._size = cap
        else:
            evict = 0
            self._size += m
        first = min(m, cap - head)
        self._buf[head : head + first] = batch[:first]
        if first < m:
            self._buf[: m - first] = batch[first:]
        self._head = (head + m) % cap
        self._total += m
        self._update(m, add1, add2, evicted=evict, sub=(sub1, sub2))

    def _extend_small(self, values: list[float]) -> None:
        """:meth:`extend` for a short list, in plain Python: with thousands of
        series a batch brings each only a few samples, and a dozen numpy calls per
        series (~1 us each) then cost more than the arithmetic. Recursive sums, so
        the error bounds use the recursive-summation factor."""
        m = len(values)
        buf = self._buf
        cap = buf.shape[0]
        if m == 0:
            return
        if m >= cap:
            self.extend(np.array(values, dtype=np.float64))
            return
        shift = self._shift
        add1 = add2 = 0.0
        for value in values:
            d = value - shift
            add1 += d
            add2 += d * d
        if not math.isfinite(add2):
            self.extend(np.array(values, dtype=np.float64))  # raises precisely
            return
        head = self._head
        evict = self._size + m - cap
        sub1 = sub2 = 0.0
        if evict > 0:
            for lo, hi in _spans((head + m - evict) % cap, evict, cap):
                for old in buf[lo:hi].tolist():
                    d = old - shift
                    sub1 += d
                    sub2 += d * d
            self._size = cap
        else:
            evict = 0
            self._size += m
        first = cap - head
        if first >= m:
            buf[head : head + m] = values
        else:
            buf[head:] = values[:first]
            buf[: m - first] = values[first:]
        self._head = (head + m) % cap
        self._total += m
        self._update(m, add1, add2, evicted=evict, sub=(sub1, sub2), recursive=True)

    def append(self, value: float) -> None:
        """Append one sample. O(1)."""
        v = float(value)
        if not math.isfinite(v):
            msg = f"sample must be finite, got {v!r}"
            raise ValueError(msg)
        d = v - self._shift
        add2 = d * d
        if not math.isfinite(add2):
            msg = "sample too large for running moments"
            raise ValueError(msg)
        cap = self.capacity
        head = self._head
        evict = 0
        sub1 = sub2 = 0.0
        if self._size == cap:
            evict = 1
            sub1 = float(self._buf[head]) - self._shift
            sub2 = sub1 * sub1
        else:
            self._size += 1
        self._buf[head] = v
        self._head = (head + 1) % cap
        self._total += 1
        self._update(1, d, add2, evicted=evict, sub=(sub1, sub2))

    # -- reading -------------------------------------------------------------

    def values(self) -> FloatArray:
        """The held samples, oldest first, as a new array (a copy)."""
        return self.tail(self._size)

    def unordered(self) -> FloatArray:
        """The held samples in storage order, not time order: a read-only view for
        order-free statistics (percentiles), valid until the next append. O(1).

        Samples always occupy the buffer's first ``len`` slots: the ring only wraps
        once it is full."""
        view = self._buf[: self._size]
        view.flags.writeable = False
        return view

    def tail(self, k: int) -> FloatArray:
        """The newest ``min(k, len)`` samples, oldest first, as a new array."""
        k = max(0, min(int(k), self._size))
        cap = self.capacity
        start = (self._head - k) % cap
        parts = [self._buf[lo:hi] for lo, hi in _spans(start, k, cap)]
        if not parts:
            return np.empty(0, dtype=np.float64)
        if len(parts) == 1:
            return parts[0].copy()
        return np.concatenate(parts)

    def mean(self) -> float:
        """Mean of the held samples (NaN when empty). O(1)."""
        if self._size == 0:
            return math.nan
        return self._shift + self._s1 / self._size

    def variance(self) -> float:
        """Sample variance (``ddof=1``) of the held samples (NaN below 2). O(1)."""
        n = self._size
        if n < 2:
            return math.nan
        return max(self._s2 - self._s1 * self._s1 / n, 0.0) / (n - 1)

    # -- reshaping -----------------------------------------------------------

    def resize(self, new_capacity: int) -> None:
        """Change the capacity, keeping the newest samples that fit. O(capacity)."""
        if new_capacity < 1:
            msg = f"capacity must be >= 1, got {new_capacity}"
            raise ValueError(msg)
        kept = self.tail(new_capacity)
        self._buf = np.zeros(new_capacity, dtype=np.float64)
        n = int(kept.shape[0])
        self._buf[:n] = kept
        self._size = n
        self._head = n % new_capacity
        self._recompute()

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: capacity, total count and samples."""
        return {
            "capacity": self.capacity,
            "total_count": self._total,
            "values": self.values().tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RollingWindow:
        """Rebuild a window from :meth:`state` output (raises on bad input)."""
        window = cls(int(state["capacity"]))
        values = np.asarray(state["values"], dtype=np.float64)
        if values.ndim != 1 or values.shape[0] > window.capacity:
            msg = "state values must be a list of at most capacity numbers"
            raise ValueError(msg)
        window.extend(values)
        window._total = max(int(state["total_count"]), int(values.shape[0]))
        window._count_base = window._total
        window._sum_total = 0.0
        return window

    @classmethod
    def restored(
        cls, capacity: int, values: npt.ArrayLike, total_count: int
    ) -> RollingWindow:
        """A window holding ``values`` (oldest first) as if ``total_count`` samples
        had been appended; the running moments are recomputed exactly. O(capacity).

        Keeps the newest ``capacity`` values when there are more (a smaller
        configured window); raises ``ValueError`` for non-finite or huge values.
        """
        window = cls(capacity)
        data = np.asarray(values, dtype=np.float64).reshape(-1)[-capacity:]
        n = int(data.shape[0])
        if n:
            window._check_finite(data)
            moments = _exact_moments(data.copy())
            window._buf[:n] = data
            window._size = n
            window._head = n % capacity
            window._set_moments(n, *moments)
        window._total = max(int(total_count), n)
        window._count_base = window._total
        return window

    # -- moments -------------------------------------------------------------

    def _reset_moments(self) -> None:
        self._shift = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._err1 = 0.0  # bound on the rounding error in _s1
        self._err2 = 0.0  # bound on the rounding error in _s2
        self._evicted = 0  # samples evicted since the last exact recomputation

    def _update(
        self,
        added: int,
        add1: float,
        add2: float,
        *,
        evicted: int,
        sub: tuple[float, float],
        recursive: bool = False,
    ) -> None:
        """Fold a batch's sums (and those of the samples it evicted) into the
        running sums and the error bounds (``recursive``: the sums were taken
        term by term, not by numpy's pairwise reduction), and recompute exactly
        when the bounds exceed the tolerance. Runs per series per batch: plain
        locals, no calls but ``sqrt``."""
        sub1, sub2 = sub
        self._sum_total += add1 + added * self._shift
        s1 = self._s1 + add1 - sub1
        s2 = self._s2 + add2 - sub2
        self._s1 = s1
        self._s2 = s2
        # Each sum of k terms is off by <= factor(k) * eps * sum|terms|: k + 4
        # term by term (and for a BLAS dot product, whatever its blocking), as
        # _pairwise_error_factor says for numpy's pairwise sums; both include the
        # squaring. The two additions are off by eps * their result, and
        # sum|x - K| <= sqrt(k * sum (x - K)**2).
        if recursive:
            factor_added, factor_evicted = 4.0 + added, 4.0 + evicted
        else:
            factor_added = _pairwise_error_factor(added)
            factor_evicted = _pairwise_error_factor(evicted)
        err1 = self._err1 + _EPS * (
            factor_added * math.sqrt(added * add2)
            + factor_evicted * math.sqrt(evicted * sub2)
            + 2.0 * (abs(s1) + abs(add1) + abs(sub1))
        )
        err2 = self._err2 + _EPS * (
            (4.0 + added) * add2
            + (4.0 + evicted) * sub2
            + 2.0 * (abs(s2) + add2 + sub2)
        )
        self._err1 = err1
        self._err2 = err2
        self._evicted += evicted
        # Whether the bounds exceed the tolerance of the variance or the mean.
        n = self._size
        squared_mean = s1 * s1 / n
        m2 = s2 - squared_mean
        err_m2 = err2 + 2.0 * abs(s1) * err1 / n + 2.0 * _EPS * (s2 + squared_mean)
        if (
            self._evicted >= self._buf.shape[0]
            or err_m2 > _TOLERANCE * m2
            or err1 > _TOLERANCE * math.sqrt(max(m2, 0.0) * n)
        ):
            self._recompute()

    def _recompute(self) -> None:
        """Recompute shift and sums exactly from the buffer. O(len)."""
        n = self._size
        if n == 0:
            self._reset_moments()
            return
        data = self._buf if n == self.capacity else self.values()
        self._set_moments(n, *_exact_moments(data))

    def _set_moments(self, n: int, shift: float, s1: float, s2: float) -> None:
        """Install exactly computed sums of ``n`` samples, restarting the bounds."""
        self._reset_moments()
        self._shift = shift
        self._s1 = s1
        self._s2 = s2
        factor = _pairwise_error_factor(n)
        self._err1 = _EPS * factor * math.sqrt(n * s2)
        self._err2 = _EPS * factor * s2

    @staticmethod
    def _check_finite(batch: FloatArray) -> None:
        if not bool(np.isfinite(batch).all()):
            msg = "samples must be finite (no NaN or infinity)"
            raise ValueError(msg)


def _exact_moments(data: FloatArray) -> tuple[float, float, float]:
    """Return ``(K, sum(x - K), sum((x - K)**2))`` with ``K`` the mean of ``data``
    (or its value when constant, which makes both sums exactly zero)."""
    lowest = float(data.min())
    highest = float(data.max())
    shift = lowest if lowest == highest else float(data.mean())
    centred = data - shift
    s1 = float(centred.sum())
    with np.errstate(over="ignore"):  # checked below; squares only overflow for
        np.square(centred, out=centred)  # |x| > 1e154, which extend() rejects
    s2 = float(centred.sum())
    if not math.isfinite(s2):
        msg = "sample values too large for running moments"
        raise ValueError(msg)
    return shift, s1, s2


def _spans(start: int, length: int, cap: int) -> list[tuple[int, int]]:
    """The ``[lo, hi)`` index ranges of ``length`` ring positions from ``start``."""
    if length <= 0:
        return []
    end = start + length
    if end <= cap:
        return [(start, end)]
    return [(start, cap), (0, end - cap)]
