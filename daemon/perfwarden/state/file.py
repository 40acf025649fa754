"""The state database's file: its schema, how it is opened, recognised and
migrated, and how its rows become series, windows and alerts again.

Responsibility: everything that knows the layout of ``state.db`` but the SQL of a
checkpoint's write (:mod:`perfwarden.state.writing`); what is saved when, and how
it is put back into the daemon, is :mod:`perfwarden.state.persistence`.

**Durability.** ``journal_mode=WAL``: a checkpoint is one atomic commit and the
reader of a crashed file sees the last commit, never half of one. ``synchronous=
NORMAL``: in WAL mode a commit is not fsynced, only the WAL-to-database copies are;
a killed *process* loses nothing committed (the pages are in the kernel's cache),
a *power loss* can lose the last commits but never corrupts the file. That trade
suits a state that is by design a few seconds behind: ``FULL`` would add an fsync
every interval for no gain against ``kill -9``. The shutdown checkpoint ends with
``wal_checkpoint(TRUNCATE)``, which fsyncs, so a clean stop is durable outright.

**Recognition.** ``PRAGMA application_id`` is :data:`APPLICATION_ID` and the ``meta``
table carries ``schema_version``. A file that is not SQLite, a SQLite database of
another application, a newer schema or a failed ``quick_check`` is renamed to
``state.db.corrupt-<timestamp>`` (with its ``-wal``/``-shm``), logged as
``state.discarded`` with the reason, and the daemon starts fresh.

**Series fields.** A series row is written whole once (name, type, tags and the
fields of that moment); what changes at every checkpoint (capacity, total count,
pending, last update) goes with the series' newest chunk: a changed series costs
one statement, the ``INSERT`` of its new chunk, or, without new samples, an
``UPDATE`` of its newest chunk's fields by ``seq``. The fields of the chunk with
the highest ``seq`` that carries them are the series'; without one, the row's.
A series' ``last_update`` is wall-clock time less the daemon's time offline
before it was written (``meta.offline_seconds``, grown at each restore): a restart
need not rewrite every series to keep the downtime out of their idle times.

**Migration.** Schema 1 (the first release) kept each window as one blob in the
``series`` row; it is converted in place, in one transaction, to schema 2's chunks.
Schema 2 kept the changing fields in the series row, updated at every checkpoint
(two statements per changed series); schema 3 adds the chunk columns, which old
rows leave NULL, and starts ``offline_seconds`` at 0 (``state.migrated``).
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from perfwarden import __version__
from perfwarden.alerts.machine import AlertState, Level, SeriesAlert
from perfwarden.ingest.statsd import MetricType
from perfwarden.logs.setup import get_logger
from perfwarden.series.store import Series
from perfwarden.series.window import RollingWindow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "APPLICATION_ID",
    "CACHE_KIB",
    "MAX_CAPACITY",
    "SCHEMA_VERSION",
    "STATE_FILE",
    "UnusableFile",
    "alert_from_row",
    "check",
    "configure",
    "read_all",
    "reason_of",
    "saved_at",
    "series_from_row",
    "transaction",
    "window_values",
]

_log = get_logger("perfwarden.state")

#: The database file in the state directory.
STATE_FILE: Final = "state.db"
#: The layout this perfwarden writes; a newer one is not read.
SCHEMA_VERSION: Final = 3
#: ``PRAGMA application_id`` of a perfwarden state database (``"PWD1"``).
APPLICATION_ID: Final = 0x50574431

SCHEMA: Final = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE series (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    tags TEXT NOT NULL,            -- JSON list of canonical tags
    capacity INTEGER NOT NULL,
    total_count INTEGER NOT NULL,
    pending REAL NOT NULL,         -- a count's sum since the last interval roll
    last_update REAL               -- as in samples (NULL: never)
);
CREATE TABLE samples (
    seq INTEGER PRIMARY KEY,       -- grows with every chunk written
    key TEXT NOT NULL,             -- the series
    first INTEGER NOT NULL,        -- number of the first sample (0: the first ever)
    data BLOB NOT NULL,            -- little-endian float64, oldest first
    capacity INTEGER,              -- the series' fields when this chunk was its
    total_count INTEGER,           -- newest (NULL in chunks of schema 2)
    pending REAL,
    last_update REAL               -- wall clock less meta.offline_seconds
);
CREATE TABLE alerts (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    level TEXT,
    since REAL NOT NULL,           -- wall clock
    fired_at REAL,                 -- wall clock
    observed_low REAL,
    observed_high REAL,
    seen INTEGER                   -- sample count at the last observation
);
CREATE TABLE documents (name TEXT PRIMARY KEY, data TEXT NOT NULL);  -- JSON
CREATE TABLE history (seq INTEGER PRIMARY KEY, data TEXT NOT NULL);  -- JSON rows
"""
#: The columns schema 3 added to ``samples`` (the series' changing fields).
FIELD_COLUMNS: Final = (
    "capacity INTEGER",
    "total_count INTEGER",
    "pending REAL",
    "last_update REAL",
)
CACHE_KIB: Final = 256  # SQLite page cache per connection, KiB
#: The largest window a saved row may claim: a damaged or forged row with a larger
#: one is skipped instead of allocating it (capacity 1e13 is 80 TB of float64).
MAX_CAPACITY: Final = 10_000_000
TABLES: Final = frozenset(
    {"meta", "series", "samples", "alerts", "documents", "history"}
)


class UnusableFile(Exception):
    """The file is not a state database this perfwarden can read (the reason)."""


def check(conn: sqlite3.Connection, *, migrate: bool = True) -> None:
    """Recognise a perfwarden state database (creating the schema in an empty one,
    migrating an older one); raise :class:`UnusableFile` or
    ``sqlite3.DatabaseError`` otherwise. ``migrate=False`` (a file the daemon may
    not write): a schema 2 file is read as it is."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    tables = {
        str(row[0])
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if app_id == 0 and not tables:
        _create(conn)
        return
    if app_id != APPLICATION_ID:
        msg = f"not a perfwarden state database (application_id {app_id:#x})"
        raise UnusableFile(msg)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row is not None else 0
    if version > SCHEMA_VERSION:
        msg = (
            f"schema version {version} is newer than this perfwarden's "
            f"{SCHEMA_VERSION} (written by a later release)"
        )
        raise UnusableFile(msg)
    if version == 1 and TABLES - {"samples"} <= tables and migrate:
        _migrate_from_v1(conn)
        tables.add("samples")
        version = 2
    if version == 2 and tables >= TABLES and migrate:
        _migrate_from_v2(conn)
        version = SCHEMA_VERSION
    if version < 1 or not TABLES.issubset(tables):
        msg = f"unknown schema (version {version}, tables {sorted(tables)})"
        raise UnusableFile(msg)
    result = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
    if result != "ok":
        msg = f"integrity check failed: {result}"
        raise UnusableFile(msg)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _create(conn: sqlite3.Connection) -> None:
    """The schema, the meta rows and the header ids, in one transaction."""
    with transaction(conn):
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("schema_version", str(SCHEMA_VERSION)),
                ("application", "perfwarden"),
                ("created_by", __version__),
                ("created_at", repr(time.time())),
                ("offline_seconds", "0.0"),
            ],
        )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _migrate_from_v1(conn: sqlite3.Connection) -> None:
    """Schema 1 kept each window as one blob in ``series.samples``: make each blob
    the series' one chunk (its first sample numbered ``total_count - len``)."""
    with transaction(conn):
        conn.execute(
            "CREATE TABLE samples (seq INTEGER PRIMARY KEY, key TEXT NOT NULL,"
            " first INTEGER NOT NULL, data BLOB NOT NULL)"
        )
        conn.execute(
            "INSERT INTO samples (key, first, data)"
            " SELECT key, total_count - length(samples) / 8, samples FROM series"
            " WHERE length(samples) > 0"
        )
        conn.execute("ALTER TABLE series DROP COLUMN samples")
        _set_version(conn, 2)
    _log.info("state.migrated", from_version=1, to_version=2)


def _migrate_from_v2(conn: sqlite3.Connection) -> None:
    """Schema 2 kept the changing fields in the series rows (and their last update
    as plain wall-clock time: no time offline yet)."""
    with transaction(conn):
        for column in FIELD_COLUMNS:
            conn.execute(f"ALTER TABLE samples ADD COLUMN {column}")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('offline_seconds', '0.0')")
        _set_version(conn, SCHEMA_VERSION)
    _log.info("state.migrated", from_version=2, to_version=SCHEMA_VERSION)


def _set_version(conn: sqlite3.Connection, version: int) -> None:
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
    )
    conn.execute(f"PRAGMA user_version = {version}")


def configure(conn: sqlite3.Connection) -> None:
    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if mode.lower() != "wal":
        msg = f"cannot switch to WAL (journal_mode {mode})"
        raise UnusableFile(msg)
    conn.execute("PRAGMA synchronous = NORMAL")
    # Keep the WAL from staying large after a big checkpoint.
    conn.execute("PRAGMA journal_size_limit = 67108864")
    # A checkpoint appends each changed series' new samples at the end of the
    # table and the restore reads the tables once, so the page cache (2 MiB by
    # default, resident for the connection's life) buys little: with 256 KiB,
    # which holds the b-trees' inner pages, checkpoints of 1,000 series under
    # steady ingest took as long and the daemon held 1.7 MiB less
    # (bench/memory.md).
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")


def read_all(conn: sqlite3.Connection) -> dict[str, Any]:
    series = conn.execute(
        "SELECT key, name, type, tags, capacity, total_count, pending, last_update"
        " FROM series"
    ).fetchall()
    chunks: dict[str, list[tuple[int, int, bytes]]] = {}
    fields: dict[str, tuple[Any, ...]] = {}  # of each series' newest chunk
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(samples)")}
    fields_of = (  # NULL in a schema 2 file read without migrating
        "capacity, total_count, pending, last_update"
        if "total_count" in columns
        else "NULL, NULL, NULL, NULL"
    )
    for seq, key, first, data, *newest in conn.execute(
        f"SELECT seq, key, first, data, {fields_of} FROM samples ORDER BY seq"  # noqa: S608 - fixed column lists
    ):
        chunks.setdefault(str(key), []).append((int(seq), int(first), data))
        if newest[1] is not None:
            fields[str(key)] = tuple(newest)
    (last_seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM samples").fetchone()
    alerts = conn.execute(
        "SELECT key, state, level, since, fired_at, observed_low, observed_high, seen"
        " FROM alerts"
    ).fetchall()
    documents: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for name, text in conn.execute("SELECT name, data FROM documents"):
        texts[str(name)] = str(text)
        try:
            documents[str(name)] = json.loads(text)
        except ValueError as exc:
            msg = f"document {name!r} is not JSON: {exc}"
            raise UnusableFile(msg) from None
    history = []
    for (text,) in conn.execute("SELECT data FROM history ORDER BY seq"):
        with contextlib.suppress(ValueError):
            row = json.loads(text)
            if isinstance(row, dict):
                history.append(row)
    return {
        "series": series,
        "chunks": chunks,
        "fields": fields,
        "next_seq": int(last_seq) + 1,
        "alerts": alerts,
        "documents": documents,
        "document_texts": texts,
        "history": history,
        "saved_at": saved_at(conn),
        "offline": _meta_seconds(conn, "offline_seconds") or 0.0,
    }


def saved_at(conn: sqlite3.Connection) -> float | None:
    """The wall-clock time of the last committed checkpoint, if the file says."""
    return _meta_seconds(conn, "last_checkpoint_at")


def _meta_seconds(conn: sqlite3.Connection, name: str) -> float | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
    try:
        seconds = float(row[0]) if row is not None else math.nan
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None


def series_from_row(
    row: tuple[Any, ...],
    chunks: list[tuple[int, int, bytes]],
    to_mono: Callable[[float | None], float | None],
    fields: tuple[Any, ...] | None = None,
) -> Series:
    """A series from its row, its chunks and the fields of its newest chunk that
    carries them (None: the row's)."""
    key, name, type_, tags, capacity, total, pending, last_update = row
    if fields is not None:
        capacity, total, pending, last_update = fields
    if not 1 <= int(capacity) <= MAX_CAPACITY:
        msg = f"capacity {capacity} is not between 1 and {MAX_CAPACITY}"
        raise ValueError(msg)
    values = window_values(chunks, int(total), int(capacity))
    tag_list = json.loads(tags)
    if not isinstance(tag_list, list):
        msg = "tags must be a list"
        raise TypeError(msg)
    window = RollingWindow.restored(int(capacity), values, int(total))
    return Series(
        key=str(key),
        name=str(name),
        type=MetricType(type_),
        tags=tuple(str(t) for t in tag_list),
        window=window,
        last_update=to_mono(last_update) or 0.0,
        pending=float(pending),
    )


def window_values(
    chunks: list[tuple[int, int, bytes]], total: int, capacity: int
) -> npt.NDArray[np.float64]:
    """The newest ``capacity`` samples numbered up to ``total - 1``: the run of
    consecutive chunks that ends there (chunks in the order they were written)."""
    parts: list[npt.NDArray[np.float64]] = []
    end = total  # the number just past the next (older) chunk's last sample
    held = 0
    for _seq, first, data in sorted(chunks, key=lambda c: c[1], reverse=True):
        if not isinstance(data, bytes) or len(data) % 8:
            msg = "samples must be a whole number of float64 values"
            raise ValueError(msg)
        count = len(data) // 8
        if first + count < end or held >= capacity:
            break  # a gap (older chunks are not this window's), or enough
        if first >= end:
            continue  # overlaps what newer chunks hold (cannot happen; harmless)
        values = np.frombuffer(data, dtype="<f8").astype(np.float64)
        parts.append(values[: end - first])
        held += end - first
        end = first
    if total and held == 0 and chunks:
        msg = f"no chunk ends at sample {total - 1}"
        raise ValueError(msg)
    if not parts:
        return np.empty(0, dtype=np.float64)
    return np.concatenate(parts[::-1])[-capacity:]


def alert_from_row(
    row: tuple[Any, ...], to_mono: Callable[[float | None], float | None]
) -> tuple[SeriesAlert, tuple[float, float] | None, int | None]:
    _key, state, level, since, fired_at, low, high, seen = row
    alert = SeriesAlert(
        state=AlertState(state),
        level=Level(level) if level is not None else None,
        since=to_mono(float(since)) or 0.0,
        fired_at=to_mono(fired_at),
    )
    observation = None if low is None or high is None else (float(low), float(high))
    return alert, observation, None if seen is None else int(seen)


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, UnusableFile):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
