"""A rolling window of float samples: cheap appends, statistics computed on demand.

Responsibility: hold the newest ``capacity`` samples of one series, in memory
proportional to the samples held, and give their mean, variance and recent tail.

Appending is the hot path (with thousands of series a batch brings each only one or
two values), so it costs a list append: new samples wait in a short Python list
and are written to the numpy buffer in one slice assignment when that list is full
(:data:`_FLUSH_AT`), when anything reads the window, or when the store flushes
every window (once per evaluation interval). Reading never sees a difference:
every reader flushes first.

Storage is a ring buffer that grows with the series: it starts small at the first
flush and doubles (up to ``capacity``) as samples arrive; the ring wraps only once
it is full, so until then the samples occupy its first ``len`` slots in order.
While every sample held is exactly representable as a ``float32`` (integers below
2**24, halves, quarters ...: most timings and gauges) the buffer is ``float32``,
half the memory; the first sample that is not turns it into ``float64`` for good.
Either way what is read back is ``float64`` and bit-for-bit what was appended.

Mean and variance are computed exactly from the buffer (a shifted two-pass sum,
O(len)) when asked for, and cached until the next append: a window that is not
looked at costs nothing beyond its appends.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["RollingWindow"]

FloatArray = npt.NDArray[np.float64]

#: Pending samples written to the buffer in one go.
_FLUSH_AT: Final = 32
#: Pending samples up to this many are written one by one (:meth:`_put`).
_PUT_ONE_BY_ONE: Final = 4
#: Smallest buffer allocated (samples); it then doubles up to the capacity.
_MIN_BUFFER: Final = 8
#: Larger magnitudes are refused: their squares would overflow the moments.
_MAX_ABS: Final = 1e150

_NARROW = np.dtype(np.float32)
_WIDE = np.dtype(np.float64)


class RollingWindow:
    """The newest ``capacity`` float samples of one series.

    Values must be finite and below 1e150 in magnitude (the ingest parser refuses
    anything beyond 1e100); a batch that breaks this raises ``ValueError`` and
    leaves the window unchanged.
    """

    __slots__ = (
        "_buf",
        "_capacity",
        "_head",
        "_moments",
        "_pending",
        "_size",
        "_total",
    )

    def __init__(self, capacity: int) -> None:
        """Create an empty window holding at most ``capacity`` (>= 1) samples."""
        self._capacity = _checked_capacity(capacity)
        self._buf: npt.NDArray[Any] = np.empty(0, dtype=_NARROW)
        self._head = 0  # next write position once the ring is full
        self._size = 0  # samples in the buffer (pending ones not included)
        self._total = 0  # samples ever appended, pending ones included
        self._pending: list[float] = []
        #: (total_count, mean, variance) of the last computation.
        self._moments: tuple[int, float, float] = (-1, math.nan, math.nan)

    # -- sizes ---------------------------------------------------------------

    def __len__(self) -> int:
        """Number of samples currently held."""
        return min(self._size + len(self._pending), self._capacity)

    def __repr__(self) -> str:
        return (
            f"RollingWindow(capacity={self._capacity}, len={len(self)}, "
            f"total_count={self._total})"
        )

    @property
    def capacity(self) -> int:
        """Maximum number of samples held."""
        return self._capacity

    @property
    def total_count(self) -> int:
        """Samples ever appended, including those already evicted."""
        return self._total

    @property
    def nbytes(self) -> int:
        """Bytes of the sample buffer (allocated, not only used)."""
        return int(self._buf.nbytes)

    # -- appending -----------------------------------------------------------

    def extend(self, values: npt.ArrayLike) -> None:
        """Append a batch (oldest first); a batch longer than the capacity keeps
        its last ``capacity`` values. O(len(values)) amortised.

        Raises ``ValueError`` (window unchanged) for non-finite or huge values.
        """
        if isinstance(values, list):
            if not values:
                return
            if len(values) == 1:
                value = values[0]
                if not -_MAX_ABS <= value <= _MAX_ABS:  # False for NaN too
                    _raise_for(np.array(values, dtype=np.float64))
            elif not (
                min(values) >= -_MAX_ABS
                and max(values) <= _MAX_ABS
                and math.isfinite(sum(values))  # catches NaN, which min/max skip
            ):
                _raise_for(np.array(values, dtype=np.float64))
            pending = self._pending
            pending += values
            self._total += len(values)
            if len(pending) >= _FLUSH_AT:
                self.flush()
            return
        batch: npt.NDArray[Any] = np.asarray(values, dtype=np.float64).reshape(-1)
        if batch.shape[0] == 0:
            return
        if not float(np.abs(batch).max()) <= _MAX_ABS:
            _raise_for(batch)
        self.flush()
        self._total += int(batch.shape[0])
        if self._buf.dtype is _NARROW:
            narrow = batch.astype(_NARROW)
            if bool((narrow == batch).all()):
                batch = narrow
        self._write(batch)

    def append(self, value: float) -> None:
        """Append one sample. O(1) amortised."""
        v = float(value)
        if not -_MAX_ABS <= v <= _MAX_ABS:
            _raise_for(np.array([v]))
        self._pending.append(v)
        self._total += 1
        if len(self._pending) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write pending samples into the buffer (readers call this themselves)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        size = self._size
        if len(pending) <= _PUT_ONE_BY_ONE and (
            size == self._capacity or size + len(pending) <= len(self._buf)
        ):
            for value in pending:
                self._put(value)
            return
        if self._buf.dtype is _NARROW:
            narrow = array("f", pending)
            if narrow.tolist() == pending:  # every value survives float32
                self._write(np.frombuffer(narrow, dtype=np.float32))
                return
        self._write(np.array(pending, dtype=np.float64))

    def _put(self, value: float) -> None:
        """Store one validated sample where the buffer has room for it (the ring
        is full, or not yet and the buffer has a free slot): a few numpy item
        writes cost less than building an array when a pass reads a window that
        got one or two samples since the last."""
        buf = self._buf
        if self._size < self._capacity:
            at = self._size
            self._size = at + 1
            self._head = self._size % self._capacity
        else:
            at = self._head
            self._head = (at + 1) % self._capacity
        buf[at] = value
        if buf.item(at) != value:  # not exact in float32: widen for good
            buf = self._buf = buf.astype(_WIDE)
            buf[at] = value

    def _write(self, batch: npt.NDArray[Any]) -> None:
        """Store a validated batch; a ``float64`` one is taken as not exact in
        ``float32`` and widens the buffer for good."""
        if batch.dtype is _WIDE and self._buf.dtype is _NARROW:
            self._buf = self._buf.astype(_WIDE)
        cap = self._capacity
        m = int(batch.shape[0])
        size = self._size
        if size < cap:
            need = size + m
            if need <= cap:
                if need > self._buf.shape[0]:
                    self._grow(need)
                self._buf[size:need] = batch
                self._size = need
                self._head = need % cap
                return
            # Past the capacity: the ring is full from here on.
            joined = np.concatenate((self._buf[:size], batch))[-cap:]
            self._buf = np.array(joined, dtype=self._buf.dtype)
            self._size = cap
            self._head = 0
            return
        if m >= cap:
            self._buf[:] = batch[m - cap :]
            self._head = 0
            return
        head = self._head
        first = min(m, cap - head)
        self._buf[head : head + first] = batch[:first]
        if first < m:
            self._buf[: m - first] = batch[first:]
        self._head = (head + m) % cap

    def _grow(self, need: int) -> None:
        length = min(self._capacity, max(need, 2 * self._buf.shape[0], _MIN_BUFFER))
        grown = np.empty(length, dtype=self._buf.dtype)
        grown[: self._size] = self._buf[: self._size]
        self._buf = grown

    # -- reading -------------------------------------------------------------

    def values(self) -> FloatArray:
        """The held samples, oldest first, as a new array (a copy)."""
        return self.tail(self._capacity)

    def unordered(self) -> FloatArray:
        """The held samples in storage order, not time order, read-only, for
        order-free statistics (percentiles). A view of the buffer when it holds
        ``float64`` (valid until the next append), else a copy."""
        self.flush()
        view = self._buf[: self._size]
        if view.dtype is not _WIDE:
            view = view.astype(_WIDE)
        view.flags.writeable = False
        return view

    def tail(self, k: int) -> FloatArray:
        """The newest ``min(k, len)`` samples, oldest first, as a new array."""
        self.flush()
        k = max(0, min(int(k), self._size))
        if k == 0:
            return np.empty(0, dtype=np.float64)
        buf = self._buf
        if self._size < self._capacity:
            return buf[self._size - k : self._size].astype(_WIDE)
        head = self._head
        if k <= head:
            return buf[head - k : head].astype(_WIDE)
        return np.concatenate((buf[head - k :], buf[:head]), dtype=_WIDE)

    def tail_into(self, out: FloatArray) -> None:
        """Copy the newest ``len(out)`` samples, oldest first, into ``out`` (a row
        of a caller's array, for statistics over many windows at once). The window
        must hold at least that many. Pending samples are copied from their list,
        not flushed: an evaluation pass reads windows that got a few samples each.
        """
        k = int(out.shape[0])
        if k > len(self):
            msg = f"window holds {len(self)} samples, {k} asked for"
            raise ValueError(msg)
        pending = self._pending
        if pending:
            if len(pending) >= k:
                out[:] = pending[-k:]
                return
            out[k - len(pending) :] = pending
            out = out[: k - len(pending)]
            k = int(out.shape[0])
        buf = self._buf
        if self._size < self._capacity:
            out[:] = buf[self._size - k : self._size]
            return
        head = self._head
        if k <= head:
            out[:] = buf[head - k : head]
            return
        older = k - head
        out[:older] = buf[head - k :]
        out[older:] = buf[:head]

    def mean(self) -> float:
        """Mean of the held samples (NaN when empty)."""
        return self._computed()[1]

    def variance(self) -> float:
        """Sample variance (``ddof=1``) of the held samples (NaN below 2)."""
        return self._computed()[2]

    def _computed(self) -> tuple[int, float, float]:
        moments = self._moments
        if moments[0] == self._total:
            return moments
        self.flush()
        n = self._size
        mean = variance = math.nan
        if n:
            shift, s1, s2 = _exact_moments(self._buf[:n].astype(_WIDE))
            mean = shift + s1 / n
            if n > 1:
                variance = max(s2 - s1 * s1 / n, 0.0) / (n - 1)
        moments = self._moments = (self._total, mean, variance)
        return moments

    # -- reshaping -----------------------------------------------------------

    def resize(self, new_capacity: int) -> None:
        """Change the capacity, keeping the newest samples that fit. O(len)."""
        capacity = _checked_capacity(new_capacity)
        kept = self.tail(capacity)
        self._capacity = capacity
        self._buf = kept.astype(self._buf.dtype)
        self._size = int(kept.shape[0])
        self._head = self._size % capacity
        self._moments = (-1, math.nan, math.nan)

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: capacity, total count and samples."""
        return {
            "capacity": self._capacity,
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
        return window

    @classmethod
    def restored(
        cls, capacity: int, values: npt.ArrayLike, total_count: int
    ) -> RollingWindow:
        """A window holding ``values`` (oldest first) as if ``total_count`` samples
        had been appended. O(len(values)).

        Keeps the newest ``capacity`` values when there are more (a smaller
        configured window); raises ``ValueError`` for non-finite or huge values.
        """
        window = cls(capacity)
        data = np.asarray(values, dtype=np.float64).reshape(-1)[-capacity:]
        window.extend(data)
        window._total = max(int(total_count), int(data.shape[0]))
        return window


def _checked_capacity(capacity: int) -> int:
    if capacity < 1:
        msg = f"capacity must be >= 1, got {capacity}"
        raise ValueError(msg)
    return int(capacity)


def _raise_for(batch: FloatArray) -> None:
    """Raise the ``ValueError`` that says what is wrong with a refused batch."""
    if not bool(np.isfinite(batch).all()):
        msg = "samples must be finite (no NaN or infinity)"
        raise ValueError(msg)
    msg = f"sample values too large (beyond {_MAX_ABS:g} in magnitude)"
    raise ValueError(msg)


def _exact_moments(data: FloatArray) -> tuple[float, float, float]:
    """Return ``(K, sum(x - K), sum((x - K)**2))`` with ``K`` the mean of ``data``
    (or its value when constant, which makes both sums exactly zero); ``data`` is
    overwritten."""
    lowest = float(data.min())
    highest = float(data.max())
    shift = lowest if lowest == highest else float(data.mean())
    np.subtract(data, shift, out=data)
    s1 = float(data.sum())
    np.square(data, out=data)
    return shift, s1, float(data.sum())
