"""The recording writer: samples noted on the loop, blocks written by a thread.

The loop thread only appends references to what the store accepted (each batch's
value lists are fresh, never mutated after the batch) to a pending list; at the
first evaluation tick a second after the last hand-over, or once
:data:`FLUSH_VALUES` values are pending, that list goes to the writer, as long as
no more than :data:`MAX_IN_FLIGHT` values wait for it. A writer thread encodes and
compresses each hand-over into one block (:mod:`.segments`), appends it to the
current segment and rotates: a new segment every ``max_bytes / 16``, the oldest
removed while the recording is above ``max_bytes`` or older than ``max_age``. When
the writer is that far behind (the disk or the CPU cannot keep up) the hand-over is
dropped and counted (``dropped``); the loop never waits.

The writer thread runs at a lower CPU priority (nice :data:`WRITER_NICE`; Linux
threads have their own), which keeps it off the loop's core when CPU is short.

The silences in force are noted too (:meth:`Recorder.on_silences`, on every
change, in order with the samples) and, once any was in force, at the start of
every block (:mod:`.silences`): a block replayed without those before it still
knows them.

Each block is written with one ``write`` and flushed, so a ``kill -9`` loses at
most what was in flight; a block cut short is removed by :meth:`Recorder.apply` on
the next start (``recording.truncated``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from perfwarden.logs.setup import RateLimiter, get_logger
from perfwarden.recording.segments import (
    MAGIC,
    SUFFIX,
    encode_block,
    segment_paths,
    truncate_torn,
)
from perfwarden.recording.silences import encode_silences

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from perfwarden.config.load import RecordingConfig
    from perfwarden.ingest.statsd import Batch

__all__ = ["FLUSH_EVERY", "FLUSH_VALUES", "MAX_IN_FLIGHT", "TICK_KEY", "Recorder"]

_log = get_logger("perfwarden.recording")

#: Pending values that make the loop hand a block to the writer before the tick.
FLUSH_VALUES: Final = 32768
#: Seconds between hand-overs at ticks (fewer, larger, better compressed blocks).
FLUSH_EVERY: Final = 1.0
#: Values handed over and not yet written beyond which hand-overs are dropped
#: (about 10 MB of lists; eight full blocks).
MAX_IN_FLIGHT: Final = 8 * FLUSH_VALUES
#: The writer thread's nice value (added to the daemon's).
WRITER_NICE: Final = 5
#: The key of the chunk that marks an evaluation tick (no values).
TICK_KEY: Final = ""
_MIN_SEGMENT: Final = 64 << 10
_MAX_SEGMENT: Final = 16 << 20
_MAX_FILTER_CACHE: Final = 65536

#: Longer value lists are held as arrays: the window's own threshold for numpy.
_SMALL_LIST: Final = 32
_as_array = functools.partial(np.array, dtype=np.float64)

#: One chunk: raw series key, arrival (unix time), the values, the ``|T`` stamp
#: (NaN: none).
Values: TypeAlias = list[float] | npt.NDArray[np.float64]
Chunk = tuple[str, float, Values, float]


def _is_count(key: str) -> bool:
    """A count's values are summed by the store, not appended: keep its list."""
    return key.partition("|")[2][:1] == "c"


_NO_STAMP: Final = float("nan")


class Recorder:
    """Appends accepted samples to the recording in ``directory``."""

    def __init__(
        self,
        directory: Path,
        settings: Callable[[], RecordingConfig],
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._settings = settings
        self._wall = wall
        self._clock = clock
        self._offset = wall() - clock()
        self._pending: list[Chunk] = []
        self._pending_values = 0
        self._queue: queue.Queue[tuple[list[Chunk], int] | None] = queue.Queue()
        self._last_flush = -math.inf
        self._thread: threading.Thread | None = None
        self._stopped: threading.Thread | None = None
        self._wanted: dict[str, bool] = {}
        self._names: frozenset[str] = frozenset()
        self._file: BinaryIO | None = None
        self._segment_bytes = 0
        self._sequence = 0
        self._error_log = RateLimiter(10.0, clock)
        #: The silence record in force now, and when the pending chunks began
        #: (None: no silence was in force since the start).
        self._silences: str | None = None
        self._block_silences: str | None = None
        #: Values handed to the writer, dropped because it was behind (loop
        #: thread); done by the writer (written or lost to write errors), lost,
        #: written (writer thread). Each counter has one writing thread.
        self.noted = 0
        self.dropped = 0
        self.done = 0
        self.lost = 0
        self.written = 0
        self.bytes_written = 0
        self.write_errors = 0
        self.truncated_bytes = 0

    @property
    def running(self) -> bool:
        """Is the writer thread up (the recording enabled)?"""
        return self._thread is not None

    # -- lifecycle (loop thread) ----------------------------------------------------

    def apply(self) -> None:
        """Start or stop per the current settings (at start and on every reload)."""
        settings = self._settings()
        self._names = frozenset(settings.metrics)
        self._wanted.clear()
        if settings.enabled and self._thread is None:
            self._open()
        elif not settings.enabled and self._thread is not None:
            self.stop()
            _log.info("recording.stopped", directory=str(self.directory))

    def _open(self) -> None:
        self.join(3.0)  # a writer stopped by a reload just before: let it finish
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        segments = segment_paths(self.directory)
        if segments:
            removed = truncate_torn(segments[-1])
            if removed:
                self.truncated_bytes += removed
                _log.warning(
                    "recording.truncated", segment=segments[-1].name, bytes=removed
                )
            self._sequence = _sequence_of(segments[-1])
        self._queue = queue.Queue()
        self._thread = threading.Thread(
            target=self._run,
            args=(self._queue,),
            name="perfwarden-recorder",
            daemon=True,
        )
        self._thread.start()
        self._block_silences = self._silences
        _log.info("recording.started", directory=str(self.directory))

    def stop(self) -> None:
        """Hand over what is pending and tell the writer to finish (no waiting:
        :meth:`join` waits, off the loop)."""
        thread = self._thread
        if thread is None:
            return
        self.flush()
        self._queue.put(None)
        self._thread = None
        self._stopped = thread

    def join(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for a stopped writer to write what it holds."""
        stopped, self._stopped = self._stopped, None
        if stopped is not None:
            stopped.join(timeout)

    def close(self, timeout: float = 3.0) -> None:
        """:meth:`stop`, then :meth:`join`."""
        self.stop()
        self.join(timeout)

    # -- noting (loop thread) ------------------------------------------------------

    def on_ingest(self, batch: Batch, now: float, stamp_offset: float) -> bool:
        """The store's hook: note a batch it is about to take (``now`` on the
        store's clock; stamped samples at their own ``|T`` time). True when it
        kept or replaced any of ``batch.values``' lists (the windows must copy
        them then); False while not recording, so the windows may take them."""
        if self._thread is None:
            return False
        del stamp_offset  # stamps are unix seconds already
        pending = self._pending
        wanted = self._wanted
        at = now + self._offset
        count = 0
        values_of = batch.values
        for key, values in values_of.items():
            keep = wanted.get(key)
            if keep is None:
                keep = self._want(key)
            if not keep:
                continue
            if len(values) > _SMALL_LIST and not _is_count(key):
                # The window turns a list this long into an array anyway: turned
                # here, once, the store appends the array and the list's floats
                # die with the batch instead of waiting for the writer (measured:
                # half the recording's cost, bench/backtest.md).
                values = _as_array(values)  # noqa: PLW2901
                values_of[key] = cast("list[float]", values)
            pending.append((key, at, values, _NO_STAMP))
            count += len(values)
        held = count > 0
        for key, pairs in batch.stamped.items():
            keep = wanted.get(key)
            if keep is None:
                keep = self._want(key)
            if keep:
                pending.extend((key, at, [value], stamp) for stamp, value in pairs)
                count += len(pairs)
        self._pending_values += count
        if self._pending_values >= FLUSH_VALUES:
            self.flush()
        return held

    def _want(self, key: str) -> bool:
        names = self._names
        keep = not names or key.partition("|")[0] in names
        if len(self._wanted) >= _MAX_FILTER_CACHE:
            self._wanted.clear()
        self._wanted[key] = keep
        return keep

    def on_tick(self, now: float) -> None:
        """Mark an evaluation tick (the replay takes its phase from it), then flush."""
        if self._thread is None:
            return
        self._offset = self._wall() - self._clock()
        self._pending.append((TICK_KEY, now + self._offset, [], _NO_STAMP))
        if now - self._last_flush >= FLUSH_EVERY:
            self._last_flush = now
            self.flush()

    def on_silences(self, active: list[dict[str, Any]]) -> None:
        """Note the silences in force from now (each as ``Silence.as_dict()``)."""
        if not active and self._silences is None:
            return
        self._silences = encode_silences(active)
        if self._thread is not None:
            at = self._clock() + self._offset
            self._pending.append((self._silences, at, [], _NO_STAMP))

    def flush(self) -> None:
        """Hand the pending chunks to the writer; if it is behind, drop and count."""
        if not self._pending:
            return
        chunks, count = self._pending, self._pending_values
        self._pending, self._pending_values = [], 0
        if self._block_silences is not None:
            # The silences when these chunks began, so the block stands alone.
            chunks.insert(0, (self._block_silences, chunks[0][1], [], _NO_STAMP))
        self._block_silences = self._silences
        if self.noted - self.done + count > MAX_IN_FLIGHT:
            self.dropped += count
            return
        self.noted += count
        self._queue.put_nowait((chunks, count))

    # -- writing (writer thread) -----------------------------------------------------

    def _run(self, work: queue.Queue[tuple[list[Chunk], int] | None]) -> None:
        with contextlib.suppress(OSError):  # Linux: per thread; elsewhere a no-op
            os.setpriority(
                os.PRIO_PROCESS,
                threading.get_native_id(),
                os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICE,
            )
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                chunks, count = item
                try:
                    self._write(chunks)
                except OSError as exc:
                    self.write_errors += 1
                    self.lost += count
                    self._close_segment()
                    if self._error_log.allow():
                        _log.error("recording.write_failed", error=str(exc))
                finally:
                    self.done += count
        finally:
            self._close_segment()

    def _write(self, chunks: list[Chunk]) -> None:
        index: dict[str, int] = {}
        keys: list[str] = []
        key_index: list[int] = []
        times: list[float] = []
        stamps: list[float] = []
        counts: list[int] = []
        parts: list[Values] = []
        small: list[float] = []  # consecutive short lists, joined as one part
        for key, at, values, stamp in chunks:
            i = index.get(key)
            if i is None:
                i = index[key] = len(keys)
                keys.append(key)
            key_index.append(i)
            times.append(at)
            stamps.append(stamp)
            counts.append(len(values))
            if isinstance(values, list):
                small.extend(values)
                continue
            if small:
                parts.append(small)
                small = []
            parts.append(values)
        if small:
            parts.append(small)
        flat = (
            np.concatenate([np.asarray(part, dtype=np.float64) for part in parts])
            if parts
            else np.empty(0, dtype=np.float64)
        )
        data = encode_block(keys, key_index, times, stamps, counts, flat)
        file = self._file or self._new_segment()
        file.write(data)
        file.flush()
        self._segment_bytes += len(data)
        self.bytes_written += len(data)
        self.written += len(flat)
        if self._segment_bytes >= self._segment_limit():
            self._close_segment()
            self._prune()

    def _segment_limit(self) -> int:
        return min(max(self._settings().max_bytes // 16, _MIN_SEGMENT), _MAX_SEGMENT)

    def _new_segment(self) -> BinaryIO:
        self._sequence += 1
        path = self.directory / f"{self._sequence:08d}{SUFFIX}"
        file = path.open("xb")
        file.write(MAGIC)
        self._file = file
        self._segment_bytes = len(MAGIC)
        return file

    def _close_segment(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _prune(self) -> None:
        """Remove the oldest closed segments beyond ``max_bytes`` or ``max_age``."""
        settings = self._settings()
        oldest_kept = self._wall() - settings.max_age
        segments = [(p, p.stat()) for p in segment_paths(self.directory)]
        total = sum(stat.st_size for _, stat in segments)
        for path, stat in segments[:-1]:
            if total <= settings.max_bytes and stat.st_mtime >= oldest_kept:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= stat.st_size

    # -- reading (loop thread) -------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The ``recording`` part of ``status --json``."""
        settings = self._settings()
        segments = segment_paths(self.directory) if self.directory.is_dir() else []
        sizes = []
        for path in segments:
            with contextlib.suppress(FileNotFoundError):
                sizes.append(path.stat().st_size)
        return {
            "enabled": settings.enabled,
            "directory": str(self.directory),
            "metrics": sorted(settings.metrics) or "all",
            "max_bytes": settings.max_bytes,
            "max_age": settings.max_age,
            "segments": len(sizes),
            "bytes": sum(sizes),
            "samples_noted": self.noted,
            "samples_written": self.written,
            "dropped": self.dropped + self.lost,
            "in_flight": self.noted - self.done,
            "write_errors": self.write_errors,
            "truncated_bytes": self.truncated_bytes,
        }


def _sequence_of(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return 0
