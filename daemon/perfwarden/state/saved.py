"""What ``state.db`` holds, as change marks, and the snapshot of what differs.

Responsibility: decide what a checkpoint writes. Per series the mark is the
window's ``(total_count, capacity, pending)`` and the list of its sample chunks in
the file; per alert its state, observation and sample count; per document its
JSON text; for the history a version. A snapshot (taken on the loop thread)
carries only what differs from the marks: the rows to write, update or delete
(a series row, with its tags' JSON, only for a series the file holds none of),
and each changed window's new samples as one chunk that carries the series'
changing fields (or the whole window, when its samples all changed, it was
resized or it holds :data:`MAX_CHUNKS` chunks; without new samples, the update of
its newest chunk's fields). The marks
move only once the snapshot is committed (:meth:`Saved.committed`), so a failed
write is retried in full.

At 10k series a snapshot is tens of ms of work (bench/checkpoint_parts.py), so
it is taken in steps (:meth:`Saved.snapshot_steps` yields after every few series
and each alert) that the checkpoint spreads over several loop turns: each series
is copied whole at one instant, and a series that leaves the store meanwhile is
forgotten as usual (its row is deleted by the next checkpoint). A series' few new
samples are usually still in its window's pending list: they are copied from it
(``tail_into``) without flushing them into the window's buffer.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import numpy as np

from perfwarden.alerts.machine import SeriesAlert

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable

    from perfwarden.alerts.evaluator import Evaluator
    from perfwarden.optimize.engine import OptimizerEngine
    from perfwarden.optimize.learning import Learning
    from perfwarden.series.store import MetricStore
    from perfwarden.series.window import RollingWindow

__all__ = [
    "MAX_CHUNKS",
    "STALE_ALERT",
    "STALE_SERIES",
    "AlertMark",
    "Chunk",
    "ChunkList",
    "Saved",
    "SeriesMark",
    "Snapshot",
    "chunk_triples",
    "pack_chunks",
]

#: A series with more chunks than this is written whole at its next checkpoint.
MAX_CHUNKS: Final = 64

SeriesMark = tuple[int, int, float]
#: A chunk of a series' samples in the file: ``(seq, first, count)``.
Chunk = tuple[int, int, int]
#: A series' chunks as flat ``seq, first, count`` triples of native int64: 24 bytes
#: a chunk where a list of tuples takes ~130, and 10,000 series hold up to 64 chunks
#: each. Bytes, not ``array``: the collector tracks arrays (10,000 more objects that
#: every full collection walks, a quarter of one at 10k series) and not bytes.
ChunkList: TypeAlias = bytes
AlertMark = tuple[SeriesAlert, tuple[float, float] | None, int | None]
#: The marks of a row the file holds but memory does not match: rewritten or deleted.
STALE_SERIES: Final[SeriesMark] = (-1, -1, 0.0)
STALE_ALERT: Final[AlertMark] = (SeriesAlert(since=-1.0), None, None)


@dataclass(slots=True)
class Snapshot:
    """One checkpoint's data, taken in the loop thread, written in a worker."""

    at: float
    #: Whole rows, for series the file holds no (or a stale) row of.
    series: list[tuple[Any, ...]] = field(default_factory=list)
    #: The series rows the file holds once this snapshot is written.
    series_rows: int = 0
    #: Series that changed (each gets a chunk or an update of its fields).
    series_written: int = 0
    series_marks: dict[str, SeriesMark] = field(default_factory=dict)
    series_removed: list[str] = field(default_factory=list)
    #: New chunks ``(seq, key, first, values, *fields)``: values as an array
    #: (float64, or a window's buffer type), then the series' ``(capacity,
    #: total_count, pending, last_update)`` (the writer empties the list as it
    #: binds them); the seqs of chunks to delete.
    chunks_added: list[tuple[Any, ...]] = field(default_factory=list)
    chunks_removed: list[int] = field(default_factory=list)
    #: ``(*fields, seq, key)`` of changed series without new samples: the fields
    #: go to their newest chunk; ``(*fields, key)`` of those without a chunk (an
    #: empty window): to their series row.
    chunk_fields: list[tuple[Any, ...]] = field(default_factory=list)
    series_fields: list[tuple[Any, ...]] = field(default_factory=list)
    #: Each touched series' chunk list once this snapshot is committed.
    chunk_lists: dict[str, ChunkList] = field(default_factory=dict)
    alerts: list[tuple[Any, ...]] = field(default_factory=list)
    alert_marks: dict[str, AlertMark] = field(default_factory=dict)
    alerts_removed: list[str] = field(default_factory=list)
    #: The file's ``offline_seconds``: its saved ``last_update`` times are wall
    #: clock less this.
    offline: float = 0.0
    documents: dict[str, str] = field(default_factory=dict)
    history: list[str] | None = None
    history_version: int = 0


class Saved:
    """The marks of what the file holds, and the snapshots of what differs."""

    def __init__(self) -> None:
        self.series_marks: dict[str, SeriesMark] = {}
        self.chunks: dict[str, ChunkList] = {}
        #: Chunks in the file that no series owns (deleted at the next checkpoint).
        self.orphan_chunks: list[int] = []
        self.next_seq = 1
        self.alert_marks: dict[str, AlertMark] = {}
        self.documents: dict[str, str] = {}
        self.history_version = -1
        #: Keys forgotten since the last snapshot.
        self.forgotten: set[str] = set()
        #: Seconds the daemon was offline, over the file's life: saved
        #: ``last_update`` times are wall clock less this (set at the restore).
        self.offline = 0.0

    def forget(self, keys: Iterable[str]) -> None:
        """Series that left the store (and their alerts): the next checkpoint deletes
        their rows, or rewrites them in full should the key be back by then."""
        for key in keys:
            self.forgotten.add(key)
            if key in self.series_marks:
                self.series_marks[key] = STALE_SERIES
            if key in self.alert_marks:
                self.alert_marks[key] = STALE_ALERT

    def rewrite(self, keys: Iterable[str]) -> None:
        """Rows the file turned out not to hold: the next checkpoint writes them
        whole."""
        for key in keys:
            if key in self.series_marks:
                self.series_marks[key] = STALE_SERIES

    def snapshot_steps(
        self,
        *,
        store: MetricStore,
        evaluator: Evaluator,
        optimizer: OptimizerEngine,
        learning: Learning,
        mono: float,
        wall: float,
    ) -> Generator[None, None, Snapshot]:
        """What differs from the file now, in steps: yields after every
        :data:`_SERIES_A_STEP` changed series and each alert (the caller lets the
        loop run there) and returns the snapshot; call it on the loop thread."""

        def to_wall(at: float | None) -> float | None:
            return None if at is None else wall - (mono - at)

        snap = Snapshot(at=wall, offline=self.offline)
        online = wall - self.offline  # wall clock less the time offline
        store.sync_direct()  # last_update of the series the parser feeds
        self.forgotten.clear()
        marks = self.series_marks
        present: set[str] = set()
        for series in list(store):
            key = series.key
            present.add(key)
            window = series.window
            total, capacity, pending = mark = (
                window.total_count,
                window.capacity,
                series.pending,
            )
            saved = marks.get(key)
            if saved == mark:
                continue
            last_update = series.last_update
            at = online - (mono - last_update) if last_update else None
            if saved is None or saved[0] < 0:  # no row in the file, or a stale one
                snap.series.append(
                    (
                        key,
                        series.name,
                        series.type.value,
                        json.dumps(list(series.tags)) if series.tags else "[]",
                        capacity,
                        total,
                        pending,
                        at,
                    )
                )
                snap.series_rows += saved is None
                saved = None
            self._plan_chunks(snap, key, window, saved, (capacity, total, pending, at))
            snap.series_marks[key] = mark
            snap.series_written += 1
            if not snap.series_written % _SERIES_A_STEP:
                yield
        # A series forgotten while the steps ran is marked stale once this snapshot
        # is committed (as during the write), so the next checkpoint deletes it.
        snap.series_removed = [key for key in marks if key not in present]
        snap.series_rows += len(marks) - len(snap.series_removed)
        for key in snap.series_removed:
            chunks = memoryview(self.chunks.get(key, _NO_CHUNKS)).cast("q")
            snap.chunks_removed.extend(chunks[0::3])
        snap.chunks_removed.extend(self.orphan_chunks)
        alert_marks = self.alert_marks
        for key, alert in list(evaluator.alerts.items()):
            observation = evaluator.observations.get(key)
            seen = evaluator.seen(key)
            alert_mark = (alert, observation, seen)
            if alert_marks.get(key) == alert_mark:
                continue
            snap.alerts.append(
                (
                    key,
                    alert.state.value,
                    alert.level.value if alert.level else None,
                    to_wall(alert.since),
                    to_wall(alert.fired_at),
                    observation[0] if observation else None,
                    observation[1] if observation else None,
                    seen,
                )
            )
            snap.alert_marks[key] = alert_mark
            yield
        snap.alerts_removed = [k for k in alert_marks if k not in evaluator.alerts]
        snap.documents = {
            name: text
            for name, text in _documents_now(evaluator, optimizer, learning).items()
            if self.documents.get(name) != text
        }
        snap.history_version = optimizer.history_version
        if snap.history_version != self.history_version:
            snap.history = [
                json.dumps(row, default=_jsonable) for row in optimizer.history
            ]
        return snap

    def _plan_chunks(
        self,
        snap: Snapshot,
        key: str,
        window: RollingWindow,
        saved: SeriesMark | None,
        fields: tuple[Any, ...],
    ) -> None:
        """Add to ``snap`` the chunk that carries the window's new samples and the
        series' ``fields`` (or, without new samples, the update of its newest
        chunk's fields), and the deletion of the chunks the window no longer
        reaches. ``saved`` None: the series' row is written whole."""
        capacity, total, pending, at = fields
        size = len(window)
        packed = self.chunks.get(key, _NO_CHUNKS)
        new = total - saved[0] if saved is not None else total
        if (
            saved is None
            or saved[1] != capacity
            or not 0 <= new < size
            or len(packed) >= _CHUNK.size * MAX_CHUNKS
        ):
            snap.chunks_removed.extend(memoryview(packed).cast("q")[0::3])
            kept = _NO_CHUNKS
            new = size
        elif packed and sum(_CHUNK.unpack_from(packed)[1:]) <= total - size:
            # Chunks are kept in sample order, so the ones the window left behind
            # (every sample older than its oldest) are a prefix.
            chunks = memoryview(packed).cast("q")
            start = total - size
            drop = 0
            while drop < len(chunks) and chunks[drop + 1] + chunks[drop + 2] <= start:
                drop += 3
            snap.chunks_removed.extend(chunks[0:drop:3])
            kept = packed[drop * 8 :]
        else:
            kept = packed  # the common case: the oldest chunk is still needed
        if new:
            seq = self.next_seq
            self.next_seq += 1
            if new <= total - window.flushed:
                # A few new samples are usually all still pending: copied from
                # that list, they are left to ingest to flush into the buffer
                # (32 at a time) instead of a few per series at every checkpoint.
                stored = np.empty(new)
                window.tail_into(stored)
            else:
                stored = window.tail_stored(new)  # float64 by the writer
            snap.chunks_added.append(
                (seq, key, total - new, stored, capacity, total, pending, at)
            )
            kept += _CHUNK.pack(seq, total - new, new)
        elif kept:
            newest = _CHUNK.unpack_from(kept, len(kept) - _CHUNK.size)[0]
            snap.chunk_fields.append((capacity, total, pending, at, newest, key))
        elif saved is not None:  # an empty window: its row holds the fields
            snap.series_fields.append((capacity, total, pending, at, key))
        snap.chunk_lists[key] = kept

    def committed(self, snap: Snapshot) -> None:
        """Move the marks to what ``snap`` wrote (after its commit)."""
        self.series_marks.update(snap.series_marks)
        self.chunks.update(snap.chunk_lists)
        for key in snap.series_removed:
            self.series_marks.pop(key, None)
            self.chunks.pop(key, None)
        if self.orphan_chunks:
            removed = set(snap.chunks_removed)
            self.orphan_chunks = [s for s in self.orphan_chunks if s not in removed]
        self.alert_marks.update(snap.alert_marks)
        for key in snap.alerts_removed:
            self.alert_marks.pop(key, None)
        # Forgotten while this checkpoint was writing: stale again.
        self.forget(list(self.forgotten))
        self.documents.update(snap.documents)
        if snap.history is not None:
            self.history_version = snap.history_version


def pack_chunks(chunks: Iterable[Chunk]) -> ChunkList:
    """Chunks as a :data:`ChunkList`."""
    return b"".join(_CHUNK.pack(*chunk) for chunk in chunks)


def chunk_triples(chunks: ChunkList) -> Iterable[Chunk]:
    """The ``(seq, first, count)`` triples of a :data:`ChunkList`."""
    return _CHUNK.iter_unpack(chunks)


_CHUNK: Final = struct.Struct("=3q")
_NO_CHUNKS: Final[ChunkList] = b""
#: Changed series a snapshot step handles before it yields to the caller (who
#: lets the loop run once a slice is used up): a few microseconds each.
_SERIES_A_STEP: Final = 16


def _documents_now(
    evaluator: Evaluator, optimizer: OptimizerEngine, learning: Learning
) -> dict[str, str]:
    silences = [s.as_dict() for s in evaluator.silences.active()]
    return {
        "learning": json.dumps(learning.as_dict(), sort_keys=True),
        "plugin_counts": json.dumps(
            optimizer.runtime.counts_document(), sort_keys=True
        ),
        "silences": json.dumps(silences, sort_keys=True),
        # Experiments in flight live in the write-ahead journal (inflight.json,
        # :mod:`perfwarden.optimize.journal`), durable before their knobs change.
        # An empty list here replaces, once restored, what an older daemon kept.
        "in_flight": "[]",
    }


def _jsonable(value: object) -> object:
    """``json.dumps`` fallback for numpy scalars and other odd values."""
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)
