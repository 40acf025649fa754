"""The daemon's persistent state: ``state.db`` in the state directory (SQLite).

What survives a restart and a ``kill -9``: every series' rolling window (values in
chronological order, capacity, total count, a count's pending sum), the alert
states (with their last observation, so a firing alert is still firing after a
restart and does not fire a second time), active silences, the learned record of
every strategy, the optimizer's outcome history, and the actions that were still
being validated (their knobs are put back at start: nothing unproven outlives the
daemon, even a killed one). Knob *values* stay in ``knobs.json``, which the knob
store writes atomically on every change: it is always at least as new as the last
checkpoint, so keeping a second copy here could only disagree with it.

**Checkpoints.** Every ``state.checkpoint_interval`` (default 2 s; ``0`` turns
periodic checkpoints off) and once on shutdown. The loop thread takes a snapshot
in slices of at most :data:`SNAPSHOT_SLICE` (1 ms) between which the loop runs,
copying only what changed since the last successful checkpoint (a window's
``(total_count, capacity, pending)`` is its cheap change mark); a worker thread
(``asyncio.to_thread``) writes it in ONE transaction; a checkpoint still writing
makes the next periodic one skip, never run alongside. A failed write is rolled
back, logged as ``state.checkpoint_failed`` and retried in full next time (the
change marks move only after a commit); it never stops the loop. A series' row
(name, type, tags) is written once; what changes (count, capacity, pending, last
update) goes with its newest chunk, so a changed series costs one statement
(:mod:`perfwarden.state.writing`); a row or chunk the write finds missing fails
the checkpoint and marks the series to be written whole by the next.

**Samples are appended, not rewritten.** A window is stored as *chunks*: rows of
consecutive samples numbered by the series' ``total_count`` (``first`` is the
number of a chunk's first sample), in one ``samples`` table whose rowid grows with
every chunk. A checkpoint appends one chunk per changed series with only its new
samples, and deletes the chunks that have fallen out of the window entirely, so
the chunks of one checkpoint share a few pages at the end of the table. Rewriting
whole windows cost ~60x the data's own size in writes (20 series at 10 samples/s
wrote 8 GiB a day, most of it WAL pages of 8 KB blobs rewritten every 2 s); a
series whose samples all changed since the last checkpoint, that was resized, or
that has piled up :data:`~perfwarden.state.saved.MAX_CHUNKS` chunks is written
whole, as one chunk.

This module runs the restore and the checkpoints; what a checkpoint writes is
decided in :mod:`perfwarden.state.saved` and written by
:mod:`perfwarden.state.writing`, opening the file (a damaged one moved aside, a
read-only one read and left alone) is :mod:`perfwarden.state.opening`, and the
file itself (schema, durability settings, recognition, migration, reading) is
:mod:`perfwarden.state.file`.

**Idle time.** A series' last update is saved as wall-clock time less the time the
daemon was offline over the file's life (``offline_seconds``), so that downtime
does not count as idle (as the monotonic clock does not count a suspend): at
restore a series is as idle as it was at the last checkpoint, and the time since
then is added to the file's ``offline_seconds`` by the next checkpoint, without
rewriting any series.
Series that expire (:meth:`StateStore.forget`) leave the file at the next checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from perfwarden.alerts.evaluator import Silence
from perfwarden.alerts.machine import AlertState
from perfwarden.logs.setup import get_logger
from perfwarden.optimize.journal import revert_unfinished
from perfwarden.state.file import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    STATE_FILE,
    UnusableFile,
    alert_from_row,
    read_all,
    reason_of,
    series_from_row,
)
from perfwarden.state.opening import Opened, discard, open_state, unavailable
from perfwarden.state.saved import (
    STALE_ALERT,
    STALE_SERIES,
    Saved,
    Snapshot,
    pack_chunks,
)
from perfwarden.state.writing import MissingRows, write_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from perfwarden.alerts.evaluator import Evaluator
    from perfwarden.optimize.engine import OptimizerEngine
    from perfwarden.optimize.knobs import KnobStore
    from perfwarden.optimize.learning import Learning
    from perfwarden.series.store import MetricStore

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "SNAPSHOT_SLICE",
    "STATE_FILE",
    "RestoreReport",
    "StateStore",
]

_log = get_logger("perfwarden.state")
#: Loop time a snapshot takes before it lets the loop run (bench/hostile.md). A
#: task woken by a timer or a future waits up to three slices: the snapshot's next
#: step is already in the ready queue when the timer's callback is, and again when
#: the woken task's step is.
SNAPSHOT_SLICE: Final = 0.001


@dataclass(slots=True)
class RestoreReport:
    """What a restore put back."""

    series: int = 0
    samples: int = 0
    alerts: int = 0
    firing: int = 0
    strategies: int = 0
    history: int = 0
    silences: int = 0
    reverted: int = 0
    skipped: int = 0
    discarded: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (also the ``state.restored`` log line)."""
        return {
            "series": self.series,
            "samples": self.samples,
            "alerts": self.alerts,
            "firing": self.firing,
            "strategies": self.strategies,
            "history": self.history,
            "silences": self.silences,
            "reverted": self.reverted,
            "skipped": self.skipped,
            "discarded": self.discarded,
            "seconds": round(self.seconds, 4),
        }


class StateStore:
    """Restores the daemon's state at start and checkpoints it while it runs."""

    def __init__(
        self,
        directory: Path,
        *,
        store: MetricStore,
        evaluator: Evaluator,
        learning: Learning,
        optimizer: OptimizerEngine,
        knobs: KnobStore,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(directory) / STATE_FILE
        self._store = store
        self._evaluator = evaluator
        self._learning = learning
        self._optimizer = optimizer
        self._knobs = knobs
        self._clock = clock
        self._wall = wall
        self._conn: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()
        self._writing: asyncio.Future[tuple[float, float]] | None = None
        #: What the database holds, as change marks (moved only after a commit).
        self._saved = Saved()
        self.restored: RestoreReport | None = None
        self.checkpoints = 0
        self.failures = 0
        self.skipped = 0
        self.last_checkpoint_at: float | None = None
        self.last_snapshot_seconds = 0.0
        self.last_write_seconds = 0.0
        #: CPU time of the last checkpoint, the loop's and the writer's thread.
        self.last_cpu_seconds = 0.0
        self.last_series_written = 0
        self.last_error: str | None = None
        #: Why nothing is saved (read-only or unusable state), None when saving.
        self.disabled: str | None = None
        #: The longest the snapshot holds the loop before letting it run (None:
        #: all at once, as a benchmark's baseline).
        self.slice_seconds: float | None = SNAPSHOT_SLICE

    # -- restoring ----------------------------------------------------------------

    def restore(self) -> RestoreReport:
        """Open ``state.db`` and put its contents back; call before ingest starts.

        Never raises for a bad file: an unusable one is moved aside and the daemon
        starts fresh (an unwritable state directory leaves state off, logged).
        """
        started = time.perf_counter()
        report = RestoreReport()
        opened = open_state(self.path, self._wall)
        if opened.conn is not None:
            try:
                data = read_all(opened.conn)
            except (sqlite3.DatabaseError, UnusableFile) as exc:
                # The header was fine, the pages are not: discard the whole file.
                opened.conn.close()
                reason = reason_of(exc)
                unmoved = discard(self.path, reason, self._wall)
                if unmoved is None:
                    opened = open_state(self.path, self._wall)
                else:
                    opened = unavailable(Opened(), self.path, unmoved)
                opened.discarded = reason
                data = None
            if data is not None:
                self._apply(data, report)
        elif opened.read_only_data is not None:
            self._apply(opened.read_only_data, report)
        self._conn = opened.conn
        self.disabled = opened.disabled
        report.discarded = opened.discarded
        report.seconds = time.perf_counter() - started
        self.restored = report
        _log.info("state.restored", path=str(self.path), **report.as_dict())
        return report

    def _apply(self, data: dict[str, Any], report: RestoreReport) -> None:
        mono, wall = self._clock(), self._wall()
        saved = self._saved
        saved_at: float | None = data["saved_at"]  # the last checkpoint's time
        offline: float = data["offline"]  # saved last_update = wall - offline

        def to_mono(at: float | None) -> float | None:
            return None if at is None else mono - (wall - at)

        def idle_since(at: float | None) -> float | None:
            # Idle as at the last checkpoint: the time offline does not count.
            if at is None or saved_at is None:
                return to_mono(at)
            return mono - max(0.0, saved_at - offline - at)

        if saved_at is not None:
            saved.offline = offline + max(0.0, wall - saved_at)
        chunks: dict[str, list[tuple[int, int, bytes]]] = data["chunks"]
        fields: dict[str, tuple[Any, ...]] = data["fields"]
        saved.next_seq = data["next_seq"]
        for row in data["series"]:
            key = row[0]
            saved.series_marks[key] = STALE_SERIES  # the row exists in the file
            owned = chunks.pop(key, [])
            saved.chunks[key] = pack_chunks(
                (seq, first, len(d) // 8) for seq, first, d in owned
            )
            try:
                series = series_from_row(row, owned, idle_since, fields.get(key))
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                report.skipped += 1
                _log.warning(
                    "state.row_skipped", table="series", key=key, error=str(exc)
                )
                continue
            saved_capacity = series.window.capacity
            if not self._store.restore(series):
                report.skipped += 1
                continue
            window = series.window
            # A resized window is rewritten at the next checkpoint.
            saved.series_marks[key] = (
                window.total_count,
                saved_capacity,
                series.pending,
            )
            report.series += 1
            report.samples += len(window)
        saved.orphan_chunks = [seq for rows in chunks.values() for seq, _, _ in rows]
        for row in data["alerts"]:
            key = row[0]
            saved.alert_marks[key] = STALE_ALERT
            if self._store.get(key) is None:
                continue
            try:
                alert, observation, seen = alert_from_row(row, to_mono)
            except (ValueError, TypeError, ArithmeticError) as exc:
                report.skipped += 1
                _log.warning(
                    "state.row_skipped", table="alerts", key=key, error=str(exc)
                )
                continue
            self._evaluator.restore_alert(key, alert, observation, seen)
            saved.alert_marks[key] = (alert, observation, seen)
            report.alerts += 1
            report.firing += alert.state is AlertState.FIRING
        documents: dict[str, Any] = data["documents"]
        for name, restore in (
            ("learning", self._learning.restore),
            ("plugin_counts", self._optimizer.runtime.restore_counts),
            ("silences", self._restore_silences),
            ("in_flight", self._revert_unvalidated),
        ):
            if name not in documents:
                continue
            try:
                restore(documents[name])
            except (
                ValueError,
                TypeError,
                KeyError,
                AttributeError,
                ArithmeticError,
            ) as exc:
                report.skipped += 1
                _log.warning(
                    "state.row_skipped", table="documents", key=name, error=str(exc)
                )
        report.strategies = len(self._learning.strategies)
        report.silences = len(self._evaluator.silences.active())
        report.reverted = len(documents.get("in_flight") or [])
        self._optimizer.restore_history(data["history"])
        report.history = len(data["history"])
        # What the file holds: unchanged state is not rewritten, a document that
        # changed in the restore (reverted actions) is.
        saved.history_version = self._optimizer.history_version
        saved.documents = dict(data["document_texts"])

    def _restore_silences(self, saved: list[dict[str, Any]]) -> None:
        self._evaluator.silences.restore(
            Silence(
                id=str(s["id"]),
                metric=str(s["metric"]),
                matchers={str(k): str(v) for k, v in s["matchers"].items()},
                until=float(s["until"]),
                created=float(s["created"]),
                comment=str(s.get("comment", "")),
            )
            for s in saved
        )

    def _revert_unvalidated(self, in_flight: list[dict[str, Any]]) -> None:
        """Put back the knobs of actions a killed daemon left unvalidated.

        The write-ahead journal (:mod:`perfwarden.optimize.journal`) is read first
        and is the authority; this copy in ``state.db`` only covers what a daemon
        older than the journal left, so an action is reverted (and logged) once.
        """
        done = self._optimizer.reverted_at_start
        revert_unfinished(
            [e for e in in_flight if str(e.get("correlation_id")) not in done],
            self._knobs,
            reason="the daemon stopped before the verdict (restored at start)",
        )

    # -- checkpointing --------------------------------------------------------------

    async def checkpoint(self, *, final: bool = False) -> bool:
        """Snapshot now and write it; True when committed.

        A periodic checkpoint is skipped while the previous one is still writing;
        the ``final`` one (shutdown) waits for it and then folds the WAL into the
        database file.
        """
        if self._conn is None:
            return False
        if self._writing is not None and not self._writing.done():
            if not final:
                self.skipped += 1
                return False
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writing)
        started = time.perf_counter()
        snapshot, snapshot_cpu = await self._snapshot()
        self.last_snapshot_seconds = time.perf_counter() - started
        writing = asyncio.ensure_future(asyncio.to_thread(self._write, snapshot, final))
        writing.add_done_callback(_retrieve)
        self._writing = writing
        try:
            self.last_write_seconds, write_cpu = await asyncio.shield(writing)
            self.last_cpu_seconds = snapshot_cpu + write_cpu
        except Exception as exc:  # noqa: BLE001 - a checkpoint never stops the loop
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, MissingRows):
                keys = exc.keys(self._saved.series_marks)
                self._saved.rewrite(keys)
                self.last_error = f"MissingRows: {len(keys)} series rows missing"
            _log.error(
                "state.checkpoint_failed", path=str(self.path), error=self.last_error
            )
            return False
        self._committed(snapshot)
        return True

    def forget(self, keys: Iterable[str]) -> None:
        """Series that left the store (and their alerts): the next checkpoint deletes
        their rows, or rewrites them in full should the key be back by then."""
        self._saved.forget(keys)

    async def _snapshot(self) -> tuple[Snapshot, float]:
        """Take the snapshot in slices of at most ``slice_seconds`` of loop time;
        return it and the loop thread's CPU time it took."""
        steps = self._saved.snapshot_steps(
            store=self._store,
            evaluator=self._evaluator,
            optimizer=self._optimizer,
            learning=self._learning,
            mono=self._clock(),
            wall=self._wall(),
        )
        slice_started = time.perf_counter()
        cpu = 0.0
        while True:
            began = time.thread_time()
            try:
                next(steps)
            except StopIteration as done:
                snapshot: Snapshot = done.value
                return snapshot, cpu + time.thread_time() - began
            cpu += time.thread_time() - began
            if (
                self.slice_seconds is not None
                and time.perf_counter() - slice_started >= self.slice_seconds
            ):
                await asyncio.sleep(0)
                slice_started = time.perf_counter()

    def _write(self, snap: Snapshot, final: bool) -> tuple[float, float]:
        """One transaction (worker thread); returns the seconds it took, wall
        and this thread's CPU."""
        conn = self._conn
        if conn is None:
            msg = "state database is closed"
            raise ValueError(msg)
        started, cpu = time.perf_counter(), time.thread_time()
        with self._write_lock:
            write_snapshot(conn, snap, final=final)
        return time.perf_counter() - started, time.thread_time() - cpu

    def _committed(self, snap: Snapshot) -> None:
        self._saved.committed(snap)
        self.checkpoints += 1
        self.last_checkpoint_at = snap.at
        self.last_series_written = snap.series_written
        self.last_error = None

    async def close(self) -> None:
        """Wait for a write in progress, then close the database."""
        if self._writing is not None and not self._writing.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writing)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def status(self) -> dict[str, Any]:
        """For ``perfwarden status``: the file, the last checkpoint, the restore."""
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += self.path.with_name(STATE_FILE + suffix).stat().st_size
        return {
            "path": str(self.path),
            "enabled": self._conn is not None,
            "disabled": self.disabled,
            "checkpoints": self.checkpoints,
            "failures": self.failures,
            "skipped": self.skipped,
            "last_checkpoint_at": self.last_checkpoint_at,
            "last_checkpoint_age_seconds": (
                None
                if self.last_checkpoint_at is None
                else round(self._wall() - self.last_checkpoint_at, 3)
            ),
            "last_snapshot_ms": round(self.last_snapshot_seconds * 1000, 3),
            "last_write_ms": round(self.last_write_seconds * 1000, 3),
            "last_cpu_ms": round(self.last_cpu_seconds * 1000, 3),
            "last_series_written": self.last_series_written,
            "last_error": self.last_error,
            "bytes": size,
            "restored": self.restored.as_dict() if self.restored else None,
        }


def _retrieve(future: asyncio.Future[tuple[float, float]]) -> None:
    # A write whose waiter was cancelled (shutdown) must not warn about an
    # unretrieved exception; the next checkpoint reports and retries.
    if not future.cancelled():
        future.exception()
