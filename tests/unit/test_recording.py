"""The recording: block format, torn segments, the writer's bounds and retention."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.config.load import RecordingConfig
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.recording.reader import read_recording
from perfwarden.recording.recorder import MAX_IN_FLIGHT, TICK_KEY, Recorder
from perfwarden.recording.segments import (
    MAGIC,
    BlockError,
    decode_block,
    encode_block,
    iter_blocks,
    segment_paths,
    truncate_torn,
)
from perfwarden.recording.silences import (
    decode_silences,
    encode_silences,
    is_silences,
)
from perfwarden.testing import FakeClock, wait_until

if TYPE_CHECKING:
    from pathlib import Path

WALL = 1_700_000_000.0


def write_segment(path: Path, blocks: list[bytes]) -> None:
    path.write_bytes(MAGIC + b"".join(blocks))


def block(values: list[float], at: float = WALL, key: str = "m|g") -> bytes:
    return encode_block([key], [0], [at], [math.nan], [len(values)], values)


def problems_of(
    directory: Path,
) -> tuple[list[tuple[float, str, list[float]]], list[str]]:
    problems: list[str] = []
    chunks = [
        (at, key, values)
        for at, key, values, _ in read_recording(
            directory,
            lambda path, where, message: problems.append(
                f"{path.name}:{where}: {message}"
            ),
        )
    ]
    return chunks, problems


class TestBlocks:
    def test_round_trip(self) -> None:
        """Keys, times, stamps, counts and values come back as written."""
        data = encode_block(
            ["a|g", "b|ms|#x:y"], [0, 1, 0], [1.0, 2.0, 3.0], [math.nan, 7.0, math.nan],
            [2, 1, 0], [0.5, -1e100, 42.0],
        )  # fmt: skip
        decoded = decode_block(data[12:])
        assert ["a|g", "b|ms|#x:y"] == decoded.keys
        assert [0, 1, 0] == decoded.key_index.tolist()
        assert [1.0, 2.0, 3.0] == decoded.times.tolist()
        assert [2, 1, 0] == decoded.counts.tolist()
        assert [0.5, -1e100, 42.0] == decoded.values.tolist()
        assert 7.0 == decoded.stamps[1]
        assert np.isnan(decoded.stamps[0])

    @pytest.mark.parametrize(
        "values",
        [
            [87.0, 91.0, 250.0],  # integers: one byte each
            [0.93, 0.95, 0.9],  # two decimals
            [1240.125, -3.5, 70000.001],  # three decimals, negative
            [-0.0, 0.0, 1.0],  # the sign of zero survives
            [1e100, -1e100, 3.0],  # beyond the integer form
            [0.1 + 0.2, 1 / 3],  # not short decimals
            [],
        ],
    )
    def test_values_come_back_bit_for_bit(self, values: list[float]) -> None:
        """Whatever form the values take in the block, they decode exactly."""
        data = encode_block(["k"], [0], [1.0], [math.nan], [len(values)], values)
        back = decode_block(data[12:]).values
        assert np.asarray(values, dtype=np.float64).tobytes() == back.tobytes()

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.floats(-1e100, 1e100),
                st.integers(-(10**9), 10**9).map(lambda n: n / 1000),
                st.integers(0, 300).map(float),
            ),
            max_size=300,
        )
    )
    def test_any_values_round_trip(self, values: list[float]) -> None:
        """Property: encode then decode is the identity on the float64 bits."""
        data = encode_block(["k"], [0], [1.0], [math.nan], [len(values)], values)
        back = decode_block(data[12:]).values
        assert np.asarray(values, dtype=np.float64).tobytes() == back.tobytes()

    def test_garbage_is_a_block_error(self) -> None:
        """Undecodable payloads raise BlockError naming the offset."""
        with pytest.raises(BlockError) as raised:
            decode_block(b"not zlib", offset=99)
        assert 99 == raised.value.offset


class TestTornSegments:
    def test_torn_tail_is_cut_at_the_last_whole_block(self, tmp_path: Path) -> None:
        """A block cut short by kill -9 is removed; the whole ones stay readable."""
        segment = tmp_path / "00000001.pwrec"
        whole = [block([1.0]), block([2.0, 3.0])]
        torn = block([4.0] * 100)
        write_segment(segment, [*whole, torn[: len(torn) // 2]])
        assert len(torn) // 2 == truncate_torn(segment)
        assert len(MAGIC) + sum(map(len, whole)) == segment.stat().st_size
        assert 2 == len(list(iter_blocks(segment)))
        assert 0 == truncate_torn(segment)

    def test_corrupt_block_is_reported_and_the_next_segment_read(
        self, tmp_path: Path
    ) -> None:
        """A bad checksum names segment and byte; the rest of the recording goes on."""
        first = block([1.0], WALL)
        damaged = bytearray(block([2.0], WALL + 1))
        damaged[-3] ^= 0xFF
        write_segment(tmp_path / "00000001.pwrec", [first, bytes(damaged)])
        write_segment(tmp_path / "00000002.pwrec", [block([3.0], WALL + 2)])
        chunks, problems = problems_of(tmp_path)
        assert [[1.0], [3.0]] == [values for _, _, values in chunks]
        offset = len(MAGIC) + len(first)
        assert [
            f"00000001.pwrec:byte {offset}: block checksum mismatch; rest skipped"
        ] == (problems)

    def test_segments_before_since_are_skipped(self, tmp_path: Path) -> None:
        """A segment last written before ``since`` is not read at all."""
        old, new = tmp_path / "00000001.pwrec", tmp_path / "00000002.pwrec"
        write_segment(old, [block([1.0], WALL)])
        write_segment(new, [block([2.0], WALL + 100)])
        os.utime(old, (WALL + 10, WALL + 10))
        os.utime(new, (WALL + 100, WALL + 100))
        chunks = list(read_recording(tmp_path, pytest.fail, since=WALL + 50))
        assert [[2.0]] == [list(values) for _, _, values, _ in chunks]

    def test_not_a_segment(self, tmp_path: Path) -> None:
        """A file without the magic is reported, not replayed."""
        (tmp_path / "00000001.pwrec").write_bytes(b"hello")
        _, problems = problems_of(tmp_path)
        assert ["00000001.pwrec:byte 0: not a perfwarden recording segment (bad"
                " magic); rest skipped"] == problems  # fmt: skip

    def test_time_going_back_is_reported(self, tmp_path: Path) -> None:
        """A chunk earlier than the one before (beyond clock slack) is skipped."""
        write_segment(
            tmp_path / "00000001.pwrec",
            [block([1.0], WALL), block([2.0], WALL - 10), block([3.0], WALL - 0.5)],
        )
        chunks, problems = problems_of(tmp_path)
        assert [(WALL, [1.0]), (WALL, [3.0])] == [(at, v) for at, _, v in chunks]
        assert 1 == len(problems)
        assert "is 10.000s before the previous chunk's; skipped" in problems[0]


def recorder(tmp_path: Path, **settings: object) -> tuple[Recorder, FakeClock]:
    config = RecordingConfig(enabled=True, **settings)  # type: ignore[arg-type]
    clock = FakeClock(100.0)
    rec = Recorder(tmp_path / "recording", lambda: config, FakeClock(WALL), clock)
    rec.apply()
    return rec, clock


class TestRecorder:
    def test_batches_and_ticks_come_back_in_order(self, tmp_path: Path) -> None:
        """Values at their arrival (wall) time, stamps kept, tick marks between."""
        rec, _ = recorder(tmp_path)
        first = Batch(values={"a|g": [1.0, 2.0], "b|ms": [3.0]})
        rec.on_ingest(first, 100.0, 0.0)
        rec.on_tick(100.5)
        second = Batch(stamped={"a|g": [(1_699_999_990, 4.0)]})
        rec.on_ingest(second, 101.0, 0.0)
        rec.close()
        chunks = list(read_recording(tmp_path / "recording", pytest.fail))
        assert [
            (WALL - 100.0 + 100.0, "a|g", [1.0, 2.0], None),
            (WALL - 100.0 + 100.0, "b|ms", [3.0], None),
            (WALL + 0.5, TICK_KEY, [], None),
            (WALL + 1.0, "a|g", [4.0], 1_699_999_990.0),
        ] == chunks
        status = rec.status()
        assert (4, 4, 0) == (
            status["samples_noted"],
            status["samples_written"],
            status["dropped"],
        )

    def test_only_the_configured_metrics(self, tmp_path: Path) -> None:
        """``metrics:`` keeps the recording to those names."""
        rec, _ = recorder(tmp_path, metrics=("a",))
        rec.on_ingest(Batch(values={"a|g|#x:y": [1.0], "b|g": [2.0]}), 100.0, 0.0)
        rec.close()
        keys = [
            key for _, key, _, _ in read_recording(tmp_path / "recording", pytest.fail)
        ]
        assert ["a|g|#x:y"] == keys

    def test_a_writer_too_far_behind_drops_and_counts(self, tmp_path: Path) -> None:
        """Beyond MAX_IN_FLIGHT values waiting, a hand-over is dropped, not queued."""
        rec, _ = recorder(tmp_path)
        rec.on_ingest(Batch(values={"a|g": [1.0] * (MAX_IN_FLIGHT + 1)}), 100.0, 0.0)
        rec.close()
        assert MAX_IN_FLIGHT + 1 == rec.status()["dropped"]
        assert 0 == rec.status()["samples_written"]

    def test_old_segments_go_beyond_max_bytes(self, tmp_path: Path) -> None:
        """Rotation keeps the recording near max_bytes, removing the oldest first."""
        rec, _ = recorder(tmp_path, max_bytes=1 << 20)
        rng = np.random.default_rng(1)
        for i in range(24):  # each ~160 KB of incompressible floats: one segment
            values = rng.random(20_000).tolist()
            rec.on_ingest(Batch(values={"a|g": values}), 100.0 + i, 0.0)
            rec.flush()
            wait_until(lambda: rec.done == rec.noted, 30.0)
        rec.close()
        segments = segment_paths(tmp_path / "recording")
        total = sum(path.stat().st_size for path in segments)
        assert total <= (1 << 20) + 200_000
        assert "00000001.pwrec" != segments[0].name
        assert 24 == int(segments[-1].stem)

    def test_start_cuts_a_torn_segment(self, tmp_path: Path) -> None:
        """What a kill -9 tore is truncated on start and counted in the status."""
        directory = tmp_path / "recording"
        directory.mkdir()
        torn = block([1.0] * 50)
        write_segment(directory / "00000007.pwrec", [block([1.0]), torn[:-5]])
        rec, _ = recorder(tmp_path)
        rec.on_ingest(Batch(values={"a|g": [9.0]}), 100.0, 0.0)
        rec.close()
        assert len(torn) - 5 == rec.status()["truncated_bytes"]
        chunks, problems = problems_of(directory)
        assert [[1.0], [9.0]] == [values for _, _, values in chunks]
        assert [] == problems
        assert "00000008.pwrec" == segment_paths(directory)[-1].name

    def test_reload_turns_it_off_and_on(self, tmp_path: Path) -> None:
        """Off: nothing noted, the writer finishes; on again: a new segment."""
        settings = [RecordingConfig(enabled=True)]
        rec = Recorder(
            tmp_path / "recording", lambda: settings[0], FakeClock(WALL), FakeClock()
        )
        rec.apply()
        rec.on_ingest(Batch(values={"a|g": [1.0]}), 1000.0, 0.0)
        settings[0] = RecordingConfig(enabled=False)
        rec.apply()
        assert not rec.running
        rec.on_ingest(Batch(values={"a|g": [2.0]}), 1001.0, 0.0)
        settings[0] = RecordingConfig(enabled=True)
        rec.apply()
        rec.on_ingest(Batch(values={"a|g": [3.0]}), 1002.0, 0.0)
        rec.close()
        chunks, problems = problems_of(tmp_path / "recording")
        assert ([[1.0], [3.0]], []) == ([v for _, _, v in chunks], problems)
        assert 2 == len(segment_paths(tmp_path / "recording"))

    def test_long_lists_reach_the_store_and_the_recording(self, tmp_path: Path) -> None:
        """A long list is handed on as an array: same window, same recording."""
        from perfwarden.series.store import MetricStore

        rec, _ = recorder(tmp_path)
        store = MetricStore(lambda _: 1000, 100)
        store.on_ingest = rec.on_ingest
        values = [float(i) for i in range(100)]
        store.ingest(Batch(values={"g|ms": list(values), "n|c": [1.0] * 40}), 100.0)
        rec.close()
        gauge, count = store.get("g|ms"), store.get("n|c")
        assert gauge is not None
        assert count is not None
        assert values == gauge.window.values().tolist()
        assert 40.0 == count.pending
        chunks = list(read_recording(tmp_path / "recording", pytest.fail))
        assert [("g|ms", values), ("n|c", [1.0] * 40)] == [
            (key, list(v)) for _, key, v, _ in chunks
        ]


def silence(silence_id: str, until: float = WALL + 3600) -> dict[str, object]:
    return {
        "id": silence_id,
        "metric": "a",
        "matchers": {"route": "/x"},
        "until": until,
        "created": WALL,
        "comment": "deploy",
    }


class TestSilenceRecords:
    def test_changes_in_order_and_each_block_opens_with_those_in_force(
        self, tmp_path: Path
    ) -> None:
        """A change is a record at its time; every later block starts with one."""
        rec, clock = recorder(tmp_path)
        on = encode_silences([silence("s1")])
        off = encode_silences([])
        rec.on_silences([silence("s1")])
        rec.on_ingest(Batch(values={"a|g": [1.0]}), 100.0, 0.0)
        rec.flush()
        clock.advance(1.0)
        rec.on_ingest(Batch(values={"a|g": [2.0]}), 101.0, 0.0)
        rec.on_silences([])
        rec.flush()
        clock.advance(1.0)
        rec.on_ingest(Batch(values={"a|g": [3.0]}), 102.0, 0.0)
        rec.close()
        chunks, problems = problems_of(tmp_path / "recording")
        assert [] == problems
        assert [
            (WALL, on, []),
            (WALL, "a|g", [1.0]),
            (WALL + 1, on, []),
            (WALL + 1, "a|g", [2.0]),
            (WALL + 1, off, []),
            (WALL + 2, off, []),
            (WALL + 2, "a|g", [3.0]),
        ] == chunks
        assert [[silence("s1")], []] == [decode_silences(on), decode_silences(off)]

    def test_silences_restored_before_the_start_open_the_first_block(
        self, tmp_path: Path
    ) -> None:
        """Silences in force when the recording starts are in its first block."""
        config = RecordingConfig(enabled=True)
        rec = Recorder(
            tmp_path / "recording", lambda: config, FakeClock(WALL), FakeClock(100.0)
        )
        rec.on_silences([silence("s1")])
        rec.apply()
        rec.on_ingest(Batch(values={"a|g": [1.0]}), 100.0, 0.0)
        rec.close()
        chunks, _ = problems_of(tmp_path / "recording")
        assert [encode_silences([silence("s1")]), "a|g"] == [k for _, k, _ in chunks]

    def test_no_silence_no_record(self, tmp_path: Path) -> None:
        """With no silence ever in force the recording holds none (nor an empty one)."""
        rec, _ = recorder(tmp_path)
        rec.on_silences([])
        rec.on_ingest(Batch(values={"a|g": [1.0]}), 100.0, 0.0)
        rec.close()
        chunks, _ = problems_of(tmp_path / "recording")
        assert ["a|g"] == [key for _, key, _ in chunks]

    def test_version_2_segments_are_read(self, tmp_path: Path) -> None:
        """A segment written before silence records existed reads as before."""
        tmp_path.joinpath("00000001.pwrec").write_bytes(
            b"PWREC\x00\x02\n" + block([1.0, 2.0])
        )
        chunks, problems = problems_of(tmp_path)
        assert ([(WALL, "m|g", [1.0, 2.0])], []) == (chunks, problems)

    def test_no_series_key_is_a_silence_record(self) -> None:
        """The parser never makes a series key that reads as a silence record."""
        batch = Batch()
        parse(b"\x1esilences:[]:1|c\n\x1esilences:1|g", batch, 1024)
        assert ["\x1esilences|g"] == list(batch.values)
        assert not any(is_silences(key) for key in batch.values)
