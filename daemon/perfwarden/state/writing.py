"""A checkpoint's write: one snapshot, one transaction.

Responsibility: the SQL a checkpoint runs (the layout is
:mod:`perfwarden.state.file`'s).
Per changed series one statement: the ``INSERT`` of its new chunk, which carries
the series' changing fields, or without new samples the ``UPDATE`` of those fields
in its newest chunk (by ``seq``); a series row is written whole only when the file
holds none, or a stale one. Rows the write meant to update but found missing (a
file edited behind the daemon's back) roll the transaction back with
:class:`MissingRows`, and the next checkpoint writes those series whole.

The writer binds its rows in batches with a 1 ms pause between them, all in the
one transaction: binding holds the GIL, and one ``executemany`` of 10k rows held
the event loop thread off it in bursts (bench/hostile.md).
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from perfwarden.state.file import transaction

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Iterator

    from perfwarden.state.saved import Snapshot

__all__ = ["MissingRows", "write_snapshot"]


class MissingRows(Exception):
    """A checkpoint found rows it meant to update missing from the file (deleted
    behind the daemon's back): it is rolled back, and the next one writes those
    series whole. ``held``: the series rows the file holds; ``chunkless``: series
    whose newest chunk was missing."""

    def __init__(self, held: set[str], chunkless: list[str]) -> None:
        super().__init__("series rows missing from the file")
        self.held = held
        self.chunkless = chunkless

    def keys(self, saved: Iterable[str]) -> list[str]:
        """The series to write whole, of those the file should hold (``saved``)."""
        return [*(key for key in saved if key not in self.held), *self.chunkless]


#: Rows bound per ``executemany`` call of a checkpoint, and the pause between calls.
_BATCH_ROWS: Final = 128
_BATCH_PAUSE: Final = 0.001


def _in_batches(conn: sqlite3.Connection, sql: str, rows: Iterable[Any]) -> int:
    """``executemany`` in batches with a short sleep between them.

    The writer thread binds every row holding the GIL and gives it up only during
    SQLite's own steps, so a long ``executemany`` leaves the event loop thread
    waiting for the GIL in bursts; the sleeps hand it over (bench/hostile.md).
    ``rows`` may be a generator, so that large blobs are made one batch at a time.
    Returns the number of rows the statements changed.
    """
    rows = iter(rows)
    first = True
    changed = 0
    while batch := list(itertools.islice(rows, _BATCH_ROWS)):
        if not first:
            time.sleep(_BATCH_PAUSE)
        first = False
        changed += conn.executemany(sql, batch).rowcount
    return changed


def _chunk_rows(snap: Snapshot) -> Iterator[tuple[Any, ...]]:
    """The rows of ``snap``'s new chunks, each blob made as it is bound (10,000
    changed series are many MiB), and each copied window tail freed once bound:
    here, between batches, not all at once on the loop thread after the commit. A
    failed write leaves the snapshot unusable, but it is never retried (the next
    checkpoint takes a new one)."""
    added = snap.chunks_added
    added.reverse()
    while added:
        seq, key, first, values, capacity, total, pending, at = added.pop()
        data = np.ascontiguousarray(values, dtype="<f8").tobytes()
        yield seq, key, first, data, capacity, total, pending, at


def write_snapshot(conn: sqlite3.Connection, snap: Snapshot, *, final: bool) -> None:
    """Write ``snap`` in one transaction; ``final`` then folds the WAL into the
    database file (which fsyncs)."""
    with transaction(conn):
        _in_batches(
            conn,
            "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            snap.series,
        )
        conn.executemany(
            "DELETE FROM series WHERE key = ?",
            [(k,) for k in snap.series_removed],
        )
        _in_batches(
            conn,
            "DELETE FROM samples WHERE seq = ?",
            [(seq,) for seq in snap.chunks_removed],
        )
        _in_batches(
            conn,
            "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _chunk_rows(snap),
        )
        updated = _in_batches(
            conn,
            "UPDATE samples SET capacity = ?1, total_count = ?2, pending = ?3,"
            " last_update = ?4 WHERE seq = ?5 AND key = ?6",
            snap.chunk_fields,
        ) + _in_batches(
            conn,
            "UPDATE series SET capacity = ?, total_count = ?, pending = ?,"
            " last_update = ? WHERE key = ?",
            snap.series_fields,
        )
        (held,) = conn.execute("SELECT COUNT(*) FROM series").fetchone()
        if held < snap.series_rows or updated < len(snap.chunk_fields) + len(
            snap.series_fields
        ):
            raise _missing(conn, snap)
        conn.executemany(
            "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            snap.alerts,
        )
        conn.executemany(
            "DELETE FROM alerts WHERE key = ?",
            [(k,) for k in snap.alerts_removed],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO documents VALUES (?, ?)",
            list(snap.documents.items()),
        )
        if snap.history is not None:
            conn.execute("DELETE FROM history")
            conn.executemany(
                "INSERT INTO history (data) VALUES (?)",
                [(row,) for row in snap.history],
            )
        conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [
                ("last_checkpoint_at", repr(snap.at)),
                ("offline_seconds", repr(snap.offline)),
            ],
        )
    if final:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _missing(conn: sqlite3.Connection, snap: Snapshot) -> MissingRows:
    held = {str(key) for (key,) in conn.execute("SELECT key FROM series")}
    chunkless = [
        str(key)
        for *_, seq, key in snap.chunk_fields
        if conn.execute(
            "SELECT 1 FROM samples WHERE seq = ? AND key = ?", (seq, key)
        ).fetchone()
        is None
    ]
    return MissingRows(held, chunkless)
