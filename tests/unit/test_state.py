"""``state.db``: round trips of windows, alerts, learning and history; dirty tracking;
foreign, garbage and newer files moved aside; a checkpoint's cost at scale."""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
from structlog.testing import capture_logs

from perfwarden.alerts.machine import AlertState, Level, SeriesAlert, Transition
from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.ingest.statsd import Batch
from perfwarden.state.file import check, read_all
from perfwarden.state.persistence import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    STATE_FILE,
    StateStore,
)
from perfwarden.state.saved import chunk_triples

if TYPE_CHECKING:
    from pathlib import Path

    from perfwarden.alerts.evaluator import AlertEvent

CONFIG = """\
version: 1
statistics: {window: 100, min_samples: 10}
evaluation: {basis: mean, window: 20}
metrics:
  latency: {bound: upper, warning: 150, critical: 200}
  small: {bound: upper, window: WINDOW}
knobs:
  batch.size: {min: 1, max: 256, initial: 16}
"""


def make(state_dir: Path, window: int = 50) -> Daemon:
    config = parse_config(CONFIG.replace("WINDOW", str(window)))
    return Daemon(config, state_dir / "perfwarden.yaml", state_dir / "run", state_dir)


def feed(daemon: Daemon, key: str, values: list[float] | np.ndarray) -> None:
    batch = Batch(received=len(values), accepted=len(values))
    batch.values[key] = [float(v) for v in values]
    daemon.store.ingest(batch, time.monotonic())


def checkpoint(daemon: Daemon, *, final: bool = False) -> bool:
    async def run() -> bool:
        try:
            return await daemon.state.checkpoint(final=final)
        finally:
            if final:
                await daemon.state.close()

    return asyncio.run(run())


def restart(daemon: Daemon, state_dir: Path, window: int = 50) -> Daemon:
    checkpoint(daemon, final=True)
    fresh = make(state_dir, window)
    fresh.knobs.load()
    fresh.state.restore()
    return fresh


#: The tables every schema has had alike.
_TABLES_OF_EVERY_SCHEMA = """
CREATE TABLE alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL,
    level TEXT, since REAL NOT NULL, fired_at REAL,
    observed_low REAL, observed_high REAL, seen INTEGER);
CREATE TABLE documents (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE history (seq INTEGER PRIMARY KEY, data TEXT NOT NULL);
"""


def old_schema(db: sqlite3.Connection, version: int, tables: str) -> None:
    """An empty state file of an older ``version``: its own ``tables`` (series and
    samples, written out in the test), and those every schema has had alike."""
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.executescript(tables + _TABLES_OF_EVERY_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


class TestRoundTrip:
    def test_windows(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(7)
        a = make(tmp_path)
        a.state.restore()
        wrapped = rng.normal(1e6, 3.0, 537)  # wraps the 100-slot ring 5 times
        feed(a, "latency|ms|#route:/b,route:/a", wrapped[:300])
        feed(a, "latency|ms|#route:/a,route:/b", wrapped[300:])  # same series
        feed(a, "small|g", [1.0, 2.0, 3.0])
        feed(a, "hits|c", [1.0, 4.0])  # a count: pending until the interval rolls
        b = restart(a, tmp_path)
        assert len(b.store) == 3
        for series in a.store:
            other = b.store.get(series.key)
            assert other is not None
            assert (other.name, other.type, other.tags) == (
                series.name,
                series.type,
                series.tags,
            )
            np.testing.assert_array_equal(other.window.values(), series.window.values())
            assert other.window.capacity == series.window.capacity
            assert other.window.total_count == series.window.total_count
            assert other.pending == series.pending
            if len(series.window) > 1:
                assert other.window.mean() == pytest.approx(series.window.mean(), 1e-13)
                assert other.window.variance() == pytest.approx(
                    series.window.variance(), 1e-10
                )
                assert other.window.variance() == pytest.approx(
                    float(np.var(series.window.values(), ddof=1)), 1e-10
                )
            assert abs(other.last_update - series.last_update) < 0.5
        latency = b.store.get("latency|ms|#route:/a,route:/b")
        assert latency is not None
        assert latency.window.total_count == 537
        np.testing.assert_array_equal(latency.window.values(), wrapped[-100:])
        # the restored window goes on rolling correctly
        latency.window.extend(wrapped[:10])
        np.testing.assert_array_equal(
            latency.window.values(), np.concatenate([wrapped[-90:], wrapped[:10]])
        )
        assert b.state.restored is not None
        assert b.state.restored.series == 3

    def test_smaller_configured_window_keeps_the_newest(self, tmp_path: Path) -> None:
        a = make(tmp_path, window=50)
        a.state.restore()
        feed(a, "small|g", list(range(40)))
        b = restart(a, tmp_path, window=10)
        small = b.store.get("small|g")
        assert small is not None
        assert small.window.capacity == 10
        np.testing.assert_array_equal(small.window.values(), np.arange(30.0, 40.0))
        assert small.window.total_count == 40

    def test_a_firing_alert_stays_firing_without_firing_again(
        self, tmp_path: Path
    ) -> None:
        a = make(tmp_path)
        a.state.restore()
        feed(a, "latency|ms", [300.0] * 30)
        with capture_logs():
            a.evaluator.evaluate_updated()
        alert = a.evaluator.alerts["latency|ms"]
        assert (alert.state, alert.level) == (AlertState.FIRING, Level.CRITICAL)
        b = restart(a, tmp_path)
        restored = b.evaluator.alerts["latency|ms"]
        assert (restored.state, restored.level) == (AlertState.FIRING, Level.CRITICAL)
        assert restored.fired_at is not None
        assert alert.fired_at is not None
        assert abs(restored.fired_at - alert.fired_at) < 0.5  # same boot, same clock
        assert b.evaluator.observations["latency|ms"] == (300.0, 300.0)
        series = b.store.get("latency|ms")
        assert series is not None
        assert b.evaluator.status_of(series) == "critical"
        events: list[AlertEvent] = []
        b.evaluator.subscribers.append(events.append)
        feed(b, "latency|ms", [310.0] * 5)
        with capture_logs() as logs:
            b.evaluator.evaluate_updated()
            b.evaluator.tick()
        assert events == []
        assert not [e for e in logs if e["event"] == f"alert.{Transition.FIRED}"]

    def test_alert_times_are_stored_as_wall_clock(self, tmp_path: Path) -> None:
        a = make(tmp_path)
        a.state.restore()
        feed(a, "latency|ms", [160.0] * 30)
        mono = time.monotonic()
        a.evaluator.alerts["latency|ms"] = SeriesAlert(
            AlertState.FIRING, Level.WARNING, since=mono - 100.0, fired_at=mono - 40.0
        )
        checkpoint(a, final=True)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            since, fired = db.execute(
                "SELECT since, fired_at FROM alerts WHERE key = 'latency|ms'"
            ).fetchone()
        assert since == pytest.approx(time.time() - 100.0, abs=1.0)
        assert fired == pytest.approx(time.time() - 40.0, abs=1.0)

    def test_learning_history_and_silences(self, tmp_path: Path) -> None:
        a = make(tmp_path)
        a.state.restore()
        for verdict in ("kept", "kept", "reverted", "inconclusive"):
            a.learning.record(
                strategy="context_compression",
                plugin="compression",
                metric="latency",
                tags={"route": "/a"},
                verdict=verdict,
                improvement=0.2,
            )
        a.learning.record(
            strategy="cache_optimization",
            plugin="caching",
            metric="latency",
            tags={},
            verdict="reverted",
            improvement=-0.1,
        )
        rows = [
            {"correlation_id": f"c{i}", "verdict": "kept", "at": 1.0 + i, "p": 0.01}
            for i in range(3)
        ]
        a.optimizer.restore_history(rows)
        silence = a.evaluator.silences.add("latency", {"route": "/a"}, 3600, "deploy")
        b = restart(a, tmp_path)
        assert b.learning.as_dict() == a.learning.as_dict()
        for strategy in ("context_compression", "cache_optimization", "other"):
            assert b.learning.weight(strategy, "latency") == a.learning.weight(
                strategy, "latency"
            )
        assert b.learning.weight("context_compression", "latency") != 1.0
        assert list(b.optimizer.history) == rows
        assert [s.as_dict() for s in b.evaluator.silences.active()] == [
            silence.as_dict()
        ]
        assert b.state.restored is not None
        assert b.state.restored.strategies == 2
        assert b.state.restored.history == 3

    def test_unvalidated_actions_are_reverted_at_start(self, tmp_path: Path) -> None:
        a = make(tmp_path)
        a.state.restore()
        a.knobs.set("batch.size", 64, source="optimizer:batching", reason="c1")
        checkpoint(a, final=True)
        # what a daemon killed during validation leaves behind
        in_flight = [
            {
                "correlation_id": "c1",
                "metric": "latency",
                "strategy": "batching",
                "plugin": "batching",
                "originals": {"batch.size": 16},
                "applied": {"batch.size": 64},
                "action": None,
            }
        ]
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            db.execute(
                "INSERT OR REPLACE INTO documents VALUES ('in_flight', ?)",
                (json.dumps(in_flight),),
            )
        b = make(tmp_path)
        assert b.knobs.load() == ["batch.size"]
        assert b.knobs.get("batch.size") == 64
        with capture_logs() as logs:
            b.state.restore()
        assert b.knobs.get("batch.size") == 16
        assert b.knobs.record("batch.size").changed_by == "revert"
        assert [e["correlation_id"] for e in logs if e["event"] == "optimizer.reverted"]
        # the next checkpoint clears the record: a second restart reverts nothing
        c = restart(b, tmp_path)
        assert c.state.restored is not None
        assert c.state.restored.reverted == 0


class TestCheckpoints:
    def test_only_changed_series_are_written(self, tmp_path: Path) -> None:
        a = make(tmp_path)
        a.state.restore()
        for i in range(20):
            feed(a, f"m{i}|g", [1.0, 2.0])
        assert checkpoint(a)
        assert a.state.last_series_written == 20
        assert checkpoint(a)
        assert a.state.last_series_written == 0
        feed(a, "m3|g", [5.0])
        assert checkpoint(a)
        assert a.state.last_series_written == 1
        a.store.drop_names(lambda name: name != "m4")
        assert checkpoint(a, final=True)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            keys = {k for (k,) in db.execute("SELECT key FROM series")}
        assert "m4|g" not in keys
        assert len(keys) == 19

    def test_a_checkpoint_reports_its_cpu(self, tmp_path: Path) -> None:
        """Both threads' CPU time of the last checkpoint, in the status too."""
        a = make(tmp_path)
        a.state.restore()
        for i in range(200):
            feed(a, f"m{i}|g", [1.0, 2.0])
        assert checkpoint(a)
        cpu = a.state.last_cpu_seconds
        assert 0 < cpu <= a.state.last_snapshot_seconds + a.state.last_write_seconds
        assert round(cpu * 1000, 3) == a.state.status()["last_cpu_ms"]

    def test_a_failed_checkpoint_is_logged_and_retried_in_full(
        self, tmp_path: Path
    ) -> None:
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g", [1.0])
        conn = a.state._conn
        assert conn is not None
        conn.execute(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON series"
            " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        with capture_logs() as logs:
            assert not checkpoint(a)
        assert a.state.failures == 1
        assert [e for e in logs if e["event"] == "state.checkpoint_failed"]
        conn.execute("DROP TRIGGER boom")
        assert checkpoint(a)
        assert a.state.last_series_written == 1
        assert a.state.last_error is None

    def test_a_changed_series_writes_one_row(self, tmp_path: Path) -> None:
        """A series the file holds gets its new chunk, which carries its count and
        last update, or without new samples its newest chunk's fields updated; its
        row (name, type and tags) stays as first written."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "hits|c", [1.0])
        feed(a, "idle|c", [1.0])
        a.store.roll_interval(1.0)  # each count gets its first rate sample
        feed(a, "m|g|#b:2,a:1", [1.0])
        feed(a, "empty|c", [1.0])  # no sample yet: a pending sum alone
        assert checkpoint(a)
        feed(a, "m|g|#b:2,a:1", [2.0, 3.0])
        feed(a, "hits|c", [4.0])  # its pending sum alone changes
        feed(a, "empty|c", [2.0])
        assert checkpoint(a)
        assert 3 == a.state.last_series_written
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            rows = db.execute(
                "SELECT key, name, type, tags, total_count, pending FROM series"
                " ORDER BY key"
            ).fetchall()
            chunks = db.execute(
                "SELECT key, first, total_count, pending FROM samples ORDER BY seq"
            ).fetchall()
        assert [
            ("empty|c", "empty", "c", "[]", 0, 3.0),  # no chunk: its row's fields
            ("hits|c", "hits", "c", "[]", 1, 0.0),
            ("idle|c", "idle", "c", "[]", 1, 0.0),
            ("m|g|#a:1,b:2", "m", "g", '["a:1", "b:2"]', 1, 0.0),
        ] == rows
        assert [
            ("hits|c", 0, 1, 4.0),  # its fields updated in place
            ("idle|c", 0, 1, 0.0),
            ("m|g|#a:1,b:2", 0, 1, 0.0),
            ("m|g|#a:1,b:2", 1, 3, 0.0),
        ] == chunks
        b = restart(a, tmp_path)
        series = b.store.get("m|g|#a:1,b:2")
        assert series is not None
        assert ("a:1", "b:2") == series.tags
        assert [1.0, 2.0, 3.0] == series.window.values().tolist()
        restored = {s.key: (s.pending, s.window.values().tolist()) for s in b.store}
        assert (4.0, [1.0]) == restored["hits|c"]
        assert (3.0, []) == restored["empty|c"]

    def test_a_row_missing_from_the_file_is_written_whole_next(
        self, tmp_path: Path
    ) -> None:
        """An update that finds no row (deleted behind the daemon's back) fails that
        checkpoint, rolled back; the next one writes the series whole."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g", [1.0])
        feed(a, "n|g", [1.0])
        assert checkpoint(a)
        conn = a.state._conn
        assert conn is not None
        conn.execute("DELETE FROM series WHERE key = 'm|g'")
        feed(a, "m|g", [2.0])
        feed(a, "n|g", [2.0])
        with capture_logs() as logs:
            assert not checkpoint(a)
        [failed] = [e for e in logs if e["event"] == "state.checkpoint_failed"]
        assert "1 series rows missing" in failed["error"]
        assert checkpoint(a)
        b = restart(a, tmp_path)
        assert {"m|g": [1.0, 2.0], "n|g": [1.0, 2.0]} == {
            s.key: s.window.values().tolist() for s in b.store
        }

    def test_a_newest_chunk_missing_from_the_file_is_written_whole_next(
        self, tmp_path: Path
    ) -> None:
        """An update of a newest chunk's fields that finds no chunk fails that
        checkpoint, rolled back; the next one writes the series whole."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "hits|c", [1.0])
        a.store.roll_interval(1.0)
        assert checkpoint(a)
        conn = a.state._conn
        assert conn is not None
        conn.execute("DELETE FROM samples WHERE key = 'hits|c'")
        feed(a, "hits|c", [2.0])  # its pending sum alone changes
        with capture_logs() as logs:
            assert not checkpoint(a)
        [failed] = [e for e in logs if e["event"] == "state.checkpoint_failed"]
        assert "1 series rows missing" in failed["error"]
        assert checkpoint(a)
        b = restart(a, tmp_path)
        hits = b.store.get("hits|c")
        assert hits is not None
        assert (2.0, [1.0]) == (hits.pending, hits.window.values().tolist())

    def test_the_saved_chunk_lists_are_not_walked_by_the_collector(
        self, tmp_path: Path
    ) -> None:
        """What the state store keeps per series between checkpoints (its change mark
        and chunk list) adds nothing a full collection walks: 10,000 series are
        10,000 objects fewer to scan each time (bench/hostile.md)."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g", [1.0, 2.0])
        assert checkpoint(a)
        feed(a, "m|g", [3.0])
        assert checkpoint(a)
        saved = a.state._saved
        gc.collect()  # tuples of plain values are untracked by a collection
        assert not gc.is_tracked(saved.chunks["m|g"])
        assert not gc.is_tracked(saved.series_marks["m|g"])
        assert [(1, 0, 2), (2, 2, 1)] == list(chunk_triples(saved.chunks["m|g"]))

    def test_the_file_is_wal_and_versioned(self, tmp_path: Path) -> None:
        a = make(tmp_path)
        a.state.restore()
        checkpoint(a, final=True)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            version = db.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()[0]
        assert int(version) == SCHEMA_VERSION

    def test_a_checkpoint_appends_only_the_new_samples(self, tmp_path: Path) -> None:
        """One chunk per checkpoint with the samples since the last; chunks the
        window left behind are deleted; the window restores exactly."""
        a = make(tmp_path)  # latency: a 100-sample window
        a.state.restore()
        feed(a, "latency|ms", np.arange(100.0))
        assert checkpoint(a)
        for start in range(100, 190, 30):
            feed(a, "latency|ms", np.arange(start, start + 30.0))
            assert checkpoint(a)

        def chunks() -> list[tuple[int, int]]:
            with sqlite3.connect(tmp_path / STATE_FILE) as db:
                rows = db.execute(
                    "SELECT first, length(data) / 8 FROM samples ORDER BY seq"
                ).fetchall()
            return [(int(f), int(n)) for f, n in rows]

        # The whole first window went out: samples 90..189 are held.
        assert [(100, 30), (130, 30), (160, 30)] == chunks()[-3:]
        assert chunks()[0] == (0, 100)  # still holds 90..99
        feed(a, "latency|ms", np.arange(190.0, 200.0))
        assert checkpoint(a)
        assert [(100, 30), (130, 30), (160, 30), (190, 10)] == chunks()
        b = restart(a, tmp_path)
        latency = b.store.get("latency|ms")
        assert latency is not None
        np.testing.assert_array_equal(np.arange(100.0, 200.0), latency.window.values())
        assert 200 == latency.window.total_count

    @pytest.mark.parametrize("seed", range(6))
    def test_random_batches_checkpoints_and_restarts(
        self, tmp_path: Path, seed: int
    ) -> None:
        """Whatever the batch sizes, checkpoints, window resizes and restarts, the
        restored windows equal the live ones and the file holds no chunk the
        windows do not need, nor more than a bounded number per series."""
        rng = np.random.default_rng(seed)
        window = 50
        daemon = make(tmp_path, window)
        daemon.state.restore()
        for _ in range(40):
            key = ("small|g", "latency|ms")[int(rng.integers(2))]
            feed(daemon, key, rng.normal(size=int(rng.integers(0, 130))))
            if rng.random() < 0.5:
                assert checkpoint(daemon)
            if rng.random() < 0.1:
                live = {s.key: s.window.values() for s in daemon.store}
                window = int(rng.integers(5, 80))
                daemon = restart(daemon, tmp_path, window)
                for key, values in live.items():
                    restored = daemon.store.get(key)
                    assert restored is not None
                    capacity = restored.window.capacity
                    np.testing.assert_array_equal(
                        values[-capacity:], restored.window.values()
                    )
        live = {s.key: (s.window.values(), s.window.total_count) for s in daemon.store}
        daemon = restart(daemon, tmp_path, window)
        for key, (values, total) in live.items():
            restored = daemon.store.get(key)
            assert restored is not None
            np.testing.assert_array_equal(values, restored.window.values())
            assert total == restored.window.total_count
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            per_key = dict(db.execute("SELECT key, COUNT(*) FROM samples GROUP BY key"))
            stored = dict(
                db.execute(
                    "SELECT key, SUM(length(data)) / 8 FROM samples GROUP BY key"
                )
            )
        for key, count in per_key.items():
            series = daemon.store.get(key)
            assert series is not None
            assert count <= 64
            # at most one partly evicted chunk beyond the window
            assert stored[key] < len(series.window) + 130

    def test_a_gap_in_the_chunks_skips_the_series(self, tmp_path: Path) -> None:
        """A series whose counts say it has samples no chunk holds is skipped."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "latency|ms", np.arange(100.0))
        feed(a, "small|g", [1.0, 2.0])
        assert checkpoint(a)
        feed(a, "latency|ms", np.arange(5.0))
        assert checkpoint(a)
        feed(a, "latency|ms", np.arange(5.0))
        assert checkpoint(a, final=True)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            db.execute("DELETE FROM samples WHERE key = 'latency|ms' AND first = 105")
            db.execute(
                "UPDATE samples SET total_count = 110"
                " WHERE key = 'latency|ms' AND first = 100"
            )
        b = make(tmp_path)
        with capture_logs() as logs:
            b.state.restore()
        assert b.store.get("latency|ms") is None
        assert b.store.get("small|g") is not None
        skipped = [e for e in logs if e["event"] == "state.row_skipped"]
        assert "no chunk ends at sample 109" in str(skipped[0]["error"])

    def test_without_its_newest_chunk_a_series_is_as_at_the_one_before(
        self, tmp_path: Path
    ) -> None:
        """Each chunk carries its series' counts: the newest chunk gone, the series
        restores as the checkpoint before left it, whole."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "latency|ms", np.arange(100.0))
        assert checkpoint(a)
        feed(a, "latency|ms", np.arange(5.0))
        assert checkpoint(a, final=True)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            db.execute("DELETE FROM samples WHERE key = 'latency|ms' AND first = 100")
        b = make(tmp_path)
        b.state.restore()
        latency = b.store.get("latency|ms")
        assert latency is not None
        assert 100 == latency.window.total_count
        np.testing.assert_array_equal(np.arange(100.0), latency.window.values())

    def test_a_schema_1_file_is_migrated(self, tmp_path: Path) -> None:
        """The first release stored each window as one blob in the series row."""
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            old_schema(
                db,
                1,
                """
                CREATE TABLE series (key TEXT PRIMARY KEY, name TEXT NOT NULL,
                    type TEXT NOT NULL, tags TEXT NOT NULL, capacity INTEGER NOT NULL,
                    total_count INTEGER NOT NULL, pending REAL NOT NULL,
                    last_update REAL, samples BLOB NOT NULL);
                """,
            )
            db.execute(
                "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    "latency|ms",
                    "latency",
                    "ms",
                    "[]",
                    100,
                    250,
                    0.0,
                    time.time(),
                    np.arange(150.0, 250.0).astype("<f8").tobytes(),
                ),
            )
        a = make(tmp_path)
        with capture_logs() as logs:
            a.state.restore()
        assert [e for e in logs if e["event"] == "state.migrated"]
        latency = a.store.get("latency|ms")
        assert latency is not None
        np.testing.assert_array_equal(np.arange(150.0, 250.0), latency.window.values())
        assert 250 == latency.window.total_count
        feed(a, "latency|ms", [1.0])
        b = restart(a, tmp_path)
        restored = b.store.get("latency|ms")
        assert restored is not None
        assert [*range(151, 250), 1.0] == restored.window.values().tolist()

    @staticmethod
    def _schema_2_file(path: Path, saved_at: float) -> None:
        """A file as schema 2 (main before schema 3) left it: the series' changing
        fields in its row, chunks without them, no time offline recorded."""
        with sqlite3.connect(path) as db:
            old_schema(
                db,
                2,
                """
                CREATE TABLE series (key TEXT PRIMARY KEY, name TEXT NOT NULL,
                    type TEXT NOT NULL, tags TEXT NOT NULL, capacity INTEGER NOT NULL,
                    total_count INTEGER NOT NULL, pending REAL NOT NULL,
                    last_update REAL);
                CREATE TABLE samples (seq INTEGER PRIMARY KEY, key TEXT NOT NULL,
                    first INTEGER NOT NULL, data BLOB NOT NULL);
                """,
            )
            db.execute(
                "INSERT INTO meta VALUES ('last_checkpoint_at', ?)", (repr(saved_at),)
            )
            db.execute(
                "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("latency|ms", "latency", "ms", "[]", 100, 130, 0.0, saved_at - 60),
            )
            for seq, first, count in ((1, 0, 100), (2, 100, 30)):
                data = np.arange(first, first + count, dtype="<f8").tobytes()
                db.execute(
                    "INSERT INTO samples VALUES (?, 'latency|ms', ?, ?)",
                    (seq, first, data),
                )

    def test_a_schema_2_file_is_migrated(self, tmp_path: Path) -> None:
        """A schema 2 file restores as it was (counts and idle time from the series
        row), gains the chunk columns, and its series then write one row each."""
        self._schema_2_file(tmp_path / STATE_FILE, time.time() - 3600)
        a = make(tmp_path)
        with capture_logs() as logs:
            a.state.restore()
        [migrated] = [e for e in logs if e["event"] == "state.migrated"]
        assert (2, 3) == (migrated["from_version"], migrated["to_version"])
        latency = a.store.get("latency|ms")
        assert latency is not None
        assert 130 == latency.window.total_count
        np.testing.assert_array_equal(np.arange(30.0, 130.0), latency.window.values())
        # idle a minute at the last checkpoint, an hour ago: the hour does not count
        assert time.monotonic() - latency.last_update == pytest.approx(60.0, abs=1.0)
        feed(a, "latency|ms", [1.0])
        assert checkpoint(a)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            # schema 2's chunks carry no fields; the new one does
            assert [(1, None), (2, None), (3, 131)] == db.execute(
                "SELECT seq, total_count FROM samples ORDER BY seq"
            ).fetchall()
            assert (130,) == db.execute(
                "SELECT total_count FROM series WHERE key = 'latency|ms'"
            ).fetchone()
        b = restart(a, tmp_path)
        restored = b.store.get("latency|ms")
        assert restored is not None
        assert 131 == restored.window.total_count
        assert [*range(31, 130), 1.0] == restored.window.values().tolist()
        assert time.monotonic() - restored.last_update == pytest.approx(0.0, abs=1.0)

    def test_a_read_only_schema_2_file_is_read_as_it_is(self, tmp_path: Path) -> None:
        """A schema 2 file the daemon may not write is read without migrating."""
        path = tmp_path / STATE_FILE
        self._schema_2_file(path, time.time())
        uri = f"{path.absolute().as_uri()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True)
        try:
            check(conn, migrate=False)
            data = read_all(conn)
        finally:
            conn.close()
        assert {} == data["fields"]
        assert [1, 2] == [seq for seq, _, _ in data["chunks"]["latency|ms"]]
        with sqlite3.connect(path) as db:
            assert ("2",) == db.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()

    def test_timing_1000_series_of_1000_samples(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = parse_config("version: 1\nstatistics: {window: 1000}\n")
        a = Daemon(config, tmp_path / "c.yaml", tmp_path / "run", tmp_path)
        a.state.restore()
        rng = np.random.default_rng(1)
        for i in range(1000):
            feed(a, f"bench|ms|#series:{i}", rng.uniform(1.0, 1000.0, 1000))
        started = time.perf_counter()
        assert checkpoint(a)
        total = time.perf_counter() - started
        status = a.state.status()
        checkpoint(a, final=True)
        b = Daemon(config, tmp_path / "c.yaml", tmp_path / "run", tmp_path)
        b.state.restore()
        assert b.state.restored is not None
        with capsys.disabled():
            print(
                f"\n[state] checkpoint 1000 series x 1000 samples: "
                f"snapshot {status['last_snapshot_ms']:.1f} ms (loop thread), "
                f"write {status['last_write_ms']:.1f} ms (worker), "
                f"total {total * 1000:.1f} ms, file {status['bytes'] / 2**20:.1f} MiB; "
                f"restore {b.state.restored.seconds * 1000:.1f} ms"
            )
        assert b.state.restored.samples == 1_000_000


def restart_later(daemon: Daemon, state_dir: Path, seconds: float) -> Daemon:
    """``restart`` with the new wall clock ``seconds`` ahead (after a downtime)."""
    checkpoint(daemon, final=True)
    fresh = make(state_dir)
    fresh.state = StateStore(
        state_dir,
        store=fresh.store,
        evaluator=fresh.evaluator,
        learning=fresh.learning,
        optimizer=fresh.optimizer,
        knobs=fresh.knobs,
        wall=lambda: time.time() + seconds,
    )
    fresh.knobs.load()
    fresh.state.restore()
    return fresh


def saved_rows(state_dir: Path) -> dict[str, tuple[float, list[float]]]:
    """``key: (last_update, samples)`` of every series in the file (its newest
    chunk's last update, or its row's; its chunks' samples in order)."""
    with sqlite3.connect(state_dir / STATE_FILE) as db:
        rows = db.execute("SELECT key, last_update FROM series").fetchall()
        newest = dict(
            db.execute(
                "SELECT key, last_update FROM samples WHERE total_count NOT NULL"
                " ORDER BY seq"
            ).fetchall()
        )
        chunks = db.execute("SELECT key, data FROM samples ORDER BY first").fetchall()
    rows = [(key, newest.get(key, at)) for key, at in rows]
    values: dict[str, list[float]] = {}
    for key, data in chunks:
        values.setdefault(key, []).extend(np.frombuffer(data, dtype="<f8").tolist())
    return {key: (at, values.get(key, [])) for key, at in rows}


class TestExpiredSeries:
    def test_forgotten_series_leave_the_file(self, tmp_path: Path) -> None:
        """Expired series' rows are deleted at the next checkpoint."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g|#pid:1", [1.0])
        feed(a, "m|g|#pid:2", [2.0])
        assert checkpoint(a)
        gone = a.store.expire(time.monotonic() + 7200, lambda name: 3600.0)
        a.state.forget(series.key for series, _ in gone)
        assert checkpoint(a, final=True)
        assert {} == saved_rows(tmp_path)
        b = restart(a, tmp_path)
        assert 0 == len(b.store)

    def test_a_key_back_before_the_checkpoint_is_rewritten(
        self, tmp_path: Path
    ) -> None:
        """A key that expires and comes back is saved anew, even when its new window
        looks like the old one by the change marks (same count and capacity)."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g|#pid:2", [2.0])
        assert checkpoint(a)
        gone = a.store.expire(time.monotonic() + 7200, lambda name: 3600.0)
        a.state.forget(series.key for series, _ in gone)
        feed(a, "m|g|#pid:2", [5.0])
        assert checkpoint(a, final=True)
        assert [5.0] == saved_rows(tmp_path)["m|g|#pid:2"][1]

    def test_a_key_back_is_not_pieced_onto_its_old_chunks(self, tmp_path: Path) -> None:
        """A key back with more samples than it had is saved whole: its window after
        a restart holds only the new series' samples."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g", [1.0, 2.0, 3.0])
        assert checkpoint(a)
        gone = a.store.expire(time.monotonic() + 7200, lambda name: 3600.0)
        a.state.forget(series.key for series, _ in gone)
        feed(a, "m|g", [10.0, 20.0, 30.0, 40.0, 50.0])
        b = restart(a, tmp_path)
        series = b.store.get("m|g")
        assert series is not None
        assert [10.0, 20.0, 30.0, 40.0, 50.0] == series.window.values().tolist()

    def test_forgotten_while_a_checkpoint_writes(self, tmp_path: Path) -> None:
        """A series that expires while a checkpoint is writing is saved anew next."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g", [2.0])
        snap, _ = asyncio.run(a.state._snapshot())
        gone = a.store.expire(time.monotonic() + 7200, lambda name: 3600.0)
        a.state.forget(series.key for series, _ in gone)
        feed(a, "m|g", [5.0])
        a.state._write(snap, final=False)
        a.state._committed(snap)
        assert checkpoint(a, final=True)
        assert [5.0] == saved_rows(tmp_path)["m|g"][1]

    def test_downtime_does_not_count_as_idle(self, tmp_path: Path) -> None:
        """A series idle 10 minutes at a checkpoint is idle 10 minutes after a restart
        two hours later; the first checkpoint records the time offline in the file,
        rewriting no series."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g", [1.0, 2.0])
        series = a.store.get("m|g")
        assert series is not None
        series.last_update -= 600.0
        b = restart_later(a, tmp_path, 7200.0)
        restored = b.store.get("m|g")
        assert restored is not None
        assert time.monotonic() - restored.last_update == pytest.approx(600.0, abs=1.0)
        assert checkpoint(b)
        assert 0 == b.state.last_series_written
        saved_at, values = saved_rows(tmp_path)["m|g"]
        assert saved_at == pytest.approx(time.time() - 600.0, abs=1.0)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            (offline,) = db.execute(
                "SELECT value FROM meta WHERE key = 'offline_seconds'"
            ).fetchone()
        assert float(offline) == pytest.approx(7200.0, abs=1.0)
        assert [1.0, 2.0] == values
        # a later restart without downtime: still 10 minutes, not two hours more
        c = restart_later(b, tmp_path, 7200.0)
        again = c.store.get("m|g")
        assert again is not None
        assert time.monotonic() - again.last_update == pytest.approx(600.0, abs=1.0)

    def test_a_crash_before_the_first_checkpoint_counts_downtime_once(
        self, tmp_path: Path
    ) -> None:
        """Killed before it checkpoints, a restored daemon leaves the file as it was."""
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g", [1.0])
        b = restart_later(a, tmp_path, 3600.0)
        asyncio.run(b.state.close())  # no checkpoint: as good as a kill -9
        c = restart_later(b, tmp_path, 7200.0)
        restored = c.store.get("m|g")
        assert restored is not None
        assert time.monotonic() - restored.last_update == pytest.approx(0.0, abs=1.0)


class TestUnusableFiles:
    def _discarded(self, tmp_path: Path) -> tuple[Daemon, list[dict[str, object]]]:
        daemon = make(tmp_path)
        with capture_logs() as logs:
            daemon.state.restore()
        events = [e for e in logs if e["event"] == "state.discarded"]
        return daemon, events

    def _assert_moved_and_fresh(self, tmp_path: Path, daemon: Daemon) -> None:
        moved = [
            p
            for p in tmp_path.glob(f"{STATE_FILE}.corrupt-*")
            if not p.name.endswith(("-wal", "-shm"))
        ]
        assert len(moved) == 1
        feed(daemon, "m|g", [1.0])
        assert checkpoint(daemon, final=True)
        fresh = make(tmp_path)
        fresh.state.restore()
        assert fresh.store.get("m|g") is not None

    def test_garbage_is_moved_aside(self, tmp_path: Path) -> None:
        (tmp_path / STATE_FILE).write_bytes(b"\x00garbage, not sqlite\n" * 300)
        daemon, events = self._discarded(tmp_path)
        assert len(events) == 1
        assert "not a database" in str(events[0]["reason"])
        self._assert_moved_and_fresh(tmp_path, daemon)

    def test_a_foreign_database_is_moved_aside(self, tmp_path: Path) -> None:
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            db.execute("CREATE TABLE photos (id INTEGER, data BLOB)")
        daemon, events = self._discarded(tmp_path)
        assert len(events) == 1
        assert "not a perfwarden state database" in str(events[0]["reason"])
        self._assert_moved_and_fresh(tmp_path, daemon)

    def test_a_newer_schema_is_refused(self, tmp_path: Path) -> None:
        a = make(tmp_path)
        a.state.restore()
        feed(a, "m|g", [1.0])
        checkpoint(a, final=True)
        with sqlite3.connect(tmp_path / STATE_FILE) as db:
            db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        daemon, events = self._discarded(tmp_path)
        assert len(events) == 1
        assert "schema version 99 is newer" in str(events[0]["reason"])
        assert daemon.store.get("m|g") is None  # nothing read from the newer file
        self._assert_moved_and_fresh(tmp_path, daemon)

    def test_a_corrupt_page_is_moved_aside(self, tmp_path: Path) -> None:
        a = make(tmp_path)
        a.state.restore()
        for i in range(50):
            feed(a, f"m{i}|g", list(range(100)))
        checkpoint(a, final=True)
        path = tmp_path / STATE_FILE
        data = bytearray(path.read_bytes())
        data[4096 * 2 : 4096 * 6] = b"\xa5" * (4096 * 4)  # smash pages, keep header
        path.write_bytes(bytes(data))
        daemon, events = self._discarded(tmp_path)
        assert len(events) == 1
        self._assert_moved_and_fresh(tmp_path, daemon)

    def test_an_empty_file_is_a_fresh_database(self, tmp_path: Path) -> None:
        (tmp_path / STATE_FILE).write_bytes(b"")
        daemon, events = self._discarded(tmp_path)
        assert events == []
        feed(daemon, "m|g", [1.0])
        assert checkpoint(daemon, final=True)
