"""A rolling window of float samples: cheap appends, statistics computed on demand.

Responsibility: hold the newest ``capacity`` samples of one series, in memory
proportional to the samples held, and give their mean, variance and recent tail.

Appending is the hot path (with thousands of series a batch brings each only one or
two values), so it costs a list append: new samples wait in a short Python list
and are written to the numpy buffer in one slice assignment when that list is full
(:data:`FLUSH_AT`), when anything reads the window, or when the window has gone
quiet (:meth:`RollingWindow.settle`, once per evaluation interval). Reading never
sees a difference: every reader flushes first (or reads the list too). For series
nobody judges the parser appends to the pending samples itself, then held in an
``array('d')`` (:meth:`RollingWindow.sink`), which its owner flushes at
:data:`SINK_FLUSH_AT`.

Storage is a ring buffer that grows with the series: it starts small at the first
flush and doubles (up to ``capacity``) as samples arrive; the ring wraps only once
it is full, so until then the samples occupy its first ``len`` slots in order.
The buffer holds the narrowest of three types that keeps every sample exactly:
``int16`` while all are integers within +-32767 (millisecond timings, counts:
2 bytes a sample), ``float32`` while all are exactly representable there (integers
below 2**24, halves, quarters ...: 4 bytes), else ``float64``; the first sample
that does not fit widens the buffer for good. What is read back is ``float64``
and equal to what was appended (a ``-0.0`` may come back as ``0.0``).

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

from perfwarden.series.exact import (
    RANK,
    SHORT,
    WIDE,
    exact_moments,
    kind_for,
    narrowed,
    narrowed_list,
)

__all__ = ["FLUSH_AT", "SINK_FLUSH_AT", "RollingWindow"]

FloatArray = npt.NDArray[np.float64]

#: Pending samples written to the buffer in one go.
FLUSH_AT: Final = 32
#: Pending samples of a :meth:`RollingWindow.sink` written in one go by its
#: owner: at 8 bytes each (a list's cost 32: a pointer and a float object),
#: four times as many take less memory than FLUSH_AT in a list, and a flush
#: of that many through numpy (a few calls, whatever the length) costs 0.4x
#: as much a sample as a list's of FLUSH_AT through its checks.
SINK_FLUSH_AT: Final = 128
#: Pending samples up to this many are written one by one (:meth:`_put`).
_PUT_ONE_BY_ONE: Final = 4
#: Smallest buffer allocated (samples); it then doubles up to the capacity.
_MIN_BUFFER: Final = 8
#: Larger magnitudes are refused: their squares would overflow the moments.
_MAX_ABS: Final = 1e150

#: The moments of a window that has not computed them yet.
_NOT_COMPUTED: Final = (-1, math.nan, math.nan)

#: The buffer of every window that has not flushed yet: shared, as nothing is ever
#: written to a zero-length buffer (the first flush allocates), and read-only so
#: that a mistake would raise.
_NO_BUFFER = np.empty(0, dtype=SHORT)
_NO_BUFFER.flags.writeable = False


class RollingWindow:
    """The newest ``capacity`` float samples of one series.

    Values must be finite and below 1e150 in magnitude (the ingest parser refuses
    anything beyond 1e100); a batch that breaks this raises ``ValueError`` and
    leaves the window unchanged.
    """

    __slots__ = (
        "_buf",
        "_capacity",
        "_count_base",
        "_head",
        "_moments",
        "_pending",
        "_settled_at",
        "_size",
        "_sum_total",
        "flushed",
    )

    def __init__(self, capacity: int) -> None:
        """Create an empty window holding at most ``capacity`` (>= 1) samples."""
        self._capacity = _checked_capacity(capacity)
        self._buf: npt.NDArray[Any] = _NO_BUFFER
        self._head = 0  # next write position once the ring is full
        self._size = 0  # samples in the buffer (pending ones not included)
        # The totals leave out the pending samples (counted when they are
        # flushed): an append touches the pending list alone.
        #: Samples ever appended and written to the buffer: ``total_count``
        #: less the pending ones (read-only outside the window).
        self.flushed = 0
        self._count_base = 0  # total_count when this window was created or restored
        self._sum_total = 0.0  # sum of the samples appended since then
        #: A list (maybe one :meth:`take` adopted), or the array :meth:`sink`
        #: gave out. Never None: see sink().
        self._pending: list[float] | array[float] = []
        self._settled_at = 0  # total_count at the last settle()
        #: (total_count, mean, variance) of the last computation.
        self._moments: tuple[int, float, float] = _NOT_COMPUTED

    # -- sizes ---------------------------------------------------------------

    def __len__(self) -> int:
        """Number of samples currently held."""
        return min(self._size + len(self._pending), self._capacity)

    def __repr__(self) -> str:
        return (
            f"RollingWindow(capacity={self._capacity}, len={len(self)}, "
            f"total_count={self.total_count})"
        )

    @property
    def capacity(self) -> int:
        """Maximum number of samples held."""
        return self._capacity

    @property
    def total_count(self) -> int:
        """Samples ever appended, including those already evicted."""
        return self.flushed + len(self._pending)

    @property
    def nbytes(self) -> int:
        """Bytes of the sample buffer (allocated, not only used)."""
        return int(self._buf.nbytes)

    @property
    def observed_count(self) -> int:
        """Samples appended since this window was created or restored (this
        daemon process' share of ``total_count``: a Prometheus summary's count)."""
        return self.total_count - self._count_base

    @property
    def observed_sum(self) -> float:
        """The sum of the samples counted by :attr:`observed_count`."""
        pending = self._pending
        return self._sum_total + sum(pending) if pending else self._sum_total

    @property
    def sample_bytes(self) -> int:
        """Bytes a sample takes in the buffer now: 2, 4 or 8."""
        return int(self._buf.itemsize)

    # -- appending -----------------------------------------------------------

    def extend(self, values: npt.ArrayLike) -> None:
        """Append a batch (oldest first); a batch longer than the capacity keeps
        its last ``capacity`` values. O(len(values)) amortised.

        Raises ``ValueError`` (window unchanged) for non-finite or huge values.
        """
        if isinstance(values, list):
            count = len(values)
            if count == 1:  # the common case with many series: one value a batch
                if not -_MAX_ABS <= values[0] <= _MAX_ABS:  # False for NaN too
                    _raise_for(np.array(values, dtype=np.float64))
            elif count:
                if not (
                    min(values) >= -_MAX_ABS
                    and max(values) <= _MAX_ABS
                    and math.isfinite(sum(values))  # NaN, which min/max skip
                ):
                    _raise_for(np.array(values, dtype=np.float64))
            else:
                return
            pending = self._pending
            pending.extend(values)
            if len(pending) >= FLUSH_AT:
                self.flush()
            return
        batch: npt.NDArray[Any] = np.asarray(values, dtype=np.float64).reshape(-1)
        if batch.shape[0] == 0:
            return
        if not float(np.abs(batch).max()) <= _MAX_ABS:
            _raise_for(batch)
        self.flush()
        self._store_batch(batch)

    def take(self, values: list[float]) -> None:
        """Append a list the caller gives up, of values already checked (finite,
        within the parser's ``MAX_ABS_VALUE``, below this window's limit):
        :meth:`extend` without its checks, for the store's hot path. With
        nothing pending the list becomes the pending list, uncopied (unless
        :meth:`sink` gave that out)."""
        pending = self._pending
        if pending or isinstance(pending, array):  # or the array sink() gave out
            pending.extend(values)
        else:
            self._pending = pending = values
        if len(pending) >= FLUSH_AT:
            self.flush()

    def sink(self) -> array[float]:
        """The pending samples, for a caller that appends checked values (as
        :meth:`take` takes them) to them directly, one line at a time: the
        parser, for series nobody judges. They count at once (``len``,
        ``total_count``, every reader); the array stays the same for the
        window's life, and the caller flushes it when it is
        :data:`SINK_FLUSH_AT` long.

        An ``array('d')``, not a list: it holds the values themselves, where a
        list holds float objects made one line apart, scattered over the heap.
        With thousands of series a flush would read each of them from memory
        (bench/scaling.md)."""
        pending = self._pending
        if not isinstance(pending, array):
            pending = self._pending = array("d", pending)
        return pending

    def append(self, value: float) -> None:
        """Append one sample. O(1) amortised."""
        v = float(value)
        if not -_MAX_ABS <= v <= _MAX_ABS:
            _raise_for(np.array([v]))
        pending = self._pending
        pending.append(v)
        if len(pending) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write pending samples into the buffer (readers call this themselves)."""
        pending = self._pending
        if pending:
            if isinstance(pending, array):  # the sink others append to: keep it
                if len(pending) < FLUSH_AT:  # cheaper as a list (its checks)
                    self._store(pending.tolist())
                else:  # cheaper in numpy: a few calls, whatever the length
                    self._store_batch(np.array(pending, dtype=np.float64))
                del pending[:]
            else:  # maybe a list take() kept: its giver may still read it
                self._store(pending)
                self._pending = []

    def _store_batch(self, batch: FloatArray) -> None:
        """Store validated ``float64`` samples, narrowed when exact."""
        self.flushed += int(batch.shape[0])
        self._sum_total += float(batch.sum())
        self._write(narrowed(batch, self._buf.dtype))

    def _store(self, pending: list[float]) -> None:
        self.flushed += len(pending)
        self._sum_total += sum(pending)
        size = self._size
        if len(pending) <= _PUT_ONE_BY_ONE and (
            size == self._capacity or size + len(pending) <= len(self._buf)
        ):
            for value in pending:
                self._put(value)
            return
        self._write(narrowed_list(pending, self._buf.dtype))

    def settle(self) -> None:
        """Flush if no sample arrived since the previous call (the store calls this
        once per evaluation interval): a window that went quiet keeps its samples
        in the compact buffer, while a busy one flushes at the threshold anyway
        and is not made to flush a few values more often."""
        total = self.total_count
        if self._pending and total == self._settled_at:
            self.flush()
        self._settled_at = total

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
        kind = kind_for(value, buf.dtype)
        if kind is not buf.dtype:
            buf = self._buf = buf.astype(kind)
        buf[at] = value

    def _write(self, batch: npt.NDArray[Any]) -> None:
        """Store a validated batch given in the narrowest type that holds it
        exactly: a wider one than the buffer's widens the buffer for good."""
        if RANK[batch.dtype] > RANK[self._buf.dtype]:
            self._buf = self._buf.astype(batch.dtype)
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
        if view.dtype is not WIDE:
            view = view.astype(WIDE)
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
            return buf[self._size - k : self._size].astype(WIDE)
        head = self._head
        if k <= head:
            return buf[head - k : head].astype(WIDE)
        return np.concatenate((buf[head - k :], buf[:head]), dtype=WIDE)

    def tail_stored(self, k: int) -> npt.NDArray[Any]:
        """The newest ``min(k, len)`` samples, oldest first, as a copy in the
        buffer's own type (``int16``, ``float32`` or ``float64``; exact either
        way): for copies that are held a while, such as a checkpoint's, at a
        quarter of the memory of :meth:`tail` for integer samples."""
        self.flush()
        k = max(0, min(int(k), self._size))
        buf = self._buf
        if self._size < self._capacity:
            return buf[self._size - k : self._size].copy()
        head = self._head
        if k <= head:
            return buf[head - k : head].copy()
        return np.concatenate((buf[head - k :], buf[:head]))

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
        if moments[0] == self.total_count:
            return moments
        self.flush()
        n = self._size
        mean = variance = math.nan
        if n:
            shift, s1, s2 = exact_moments(self._buf[:n].astype(WIDE))
            mean = shift + s1 / n
            if n > 1:
                variance = max(s2 - s1 * s1 / n, 0.0) / (n - 1)
        moments = self._moments = (self.flushed, mean, variance)
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
        self._moments = _NOT_COMPUTED

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
        window.flushed = max(int(total_count), int(data.shape[0]))
        window._count_base, window._sum_total = window.flushed, 0.0
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
