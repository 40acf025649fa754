"""The DogStatsD parser: the line format, malformed accounting, hostile bytes."""

from __future__ import annotations

import math
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.ingest.statsd import MALFORMED_REASONS, Batch, parse, split_raw_key

MAX_LINE = 8192


def parsed(data: bytes, max_line: int = MAX_LINE) -> Batch:
    batch = Batch()
    parse(data, batch, max_line)
    return batch


def accounted(batch: Batch) -> bool:
    return batch.received == batch.accepted + batch.ignored + batch.malformed_total


class TestValidLines:
    def test_gauge(self) -> None:
        """A plain gauge line becomes one sample of its raw key."""
        batch = parsed(b"context_loading_time:42.5|g")
        assert {"context_loading_time|g": [42.5]} == batch.values
        assert (1, 1) == (batch.received, batch.accepted)

    @pytest.mark.parametrize("type_", ["g", "ms", "h", "d", "c"])
    def test_sample_types(self, type_: str) -> None:
        """Every numeric type is accepted with its type in the key."""
        batch = parsed(f"m:1|{type_}".encode())
        assert {f"m|{type_}": [1.0]} == batch.values

    def test_multi_value(self) -> None:
        """``name:1:2:3|ms`` is one line carrying three samples."""
        batch = parsed(b"m:1:2:3|ms")
        assert [1.0, 2.0, 3.0] == batch.values["m|ms"]
        assert 1 == batch.accepted
        assert 1 == batch.lines_for("m|ms")

    def test_tags_are_part_of_the_key(self) -> None:
        """Tags make a separate raw key, kept as sent."""
        batch = parsed(b"speedup:3.1|g|#combination:Read+Grep+Bash,env:prod")
        assert ["speedup|g|#combination:Read+Grep+Bash,env:prod"] == list(batch.values)
        assert ("speedup", "g", "combination:Read+Grep+Bash,env:prod") == split_raw_key(
            next(iter(batch.values))
        )

    def test_count_scaled_by_sample_rate(self) -> None:
        """A count sent at @0.25 stands for four times its value."""
        batch = parsed(b"hits:1|c|@0.25")
        assert [4.0] == batch.values["hits|c"]

    def test_timing_not_scaled_by_sample_rate(self) -> None:
        """Timings keep their value whatever the sample rate."""
        assert [12.0] == parsed(b"t:12|ms|@0.5").values["t|ms"]

    def test_timestamp_and_extensions(self) -> None:
        """``|T``, ``|c:`` container ids and unknown ``|x:`` fields are tolerated."""
        batch = parsed(b"m:1|g|#a:b|T1700000000|c:abc123|card:low|e:it-false")
        assert {"m|g|#a:b": [(1700000000, 1.0)]} == batch.stamped

    def test_set_members(self) -> None:
        """Set values are members, not numbers."""
        batch = parsed(b"users:alice|s\nusers:bob|s\nusers:alice|s")
        assert ["alice", "bob", "alice"] == batch.members["users|s"]
        assert 3 == batch.accepted

    def test_many_lines_crlf_and_blank(self) -> None:
        """CRLF endings are tolerated and blank lines are not counted."""
        batch = parsed(b"a:1|g\r\n\n\nb:2|g\n")
        assert (2, 2) == (batch.received, batch.accepted)

    def test_events_and_service_checks_ignored(self) -> None:
        """Events and service checks are counted as ignored, not malformed."""
        batch = parsed(b"_e{5,4}:title|text|#a:b\n_sc|db.up|0|#x\nm:1|g")
        assert (3, 1, 2, 0) == (
            batch.received,
            batch.accepted,
            batch.ignored,
            batch.malformed_total,
        )


class TestMalformed:
    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            (b"m:abc|g", "bad_value"),
            (b"m:1|zz", "bad_type"),
            (b":1|g", "empty_name"),
            (b"m|g", "no_value"),
            (b"m:|g", "no_value"),
            (b"m:1", "no_type"),
            (b"m:nan|g", "non_finite"),
            (b"m:inf|ms", "non_finite"),
            (b"m:1:-inf|ms", "non_finite"),
            (b"m:1|c|@0", "bad_sample_rate"),
            (b"m:1|c|@2", "bad_sample_rate"),
            (b"m:1|c|@x", "bad_sample_rate"),
            (b"m:1|g|Tsoon", "bad_timestamp"),
            (b"m:1|g|what", "bad_field"),
            (b"m m:1|g", "bad_name"),
            (b"m\xff:1|g", "not_utf8"),
            (b"m:1:x|ms", "bad_value"),
            (b"s:a::b|s", "no_value"),
            (b"m:1e200|g", "out_of_range"),
            (b"m:1:-1e101|d", "out_of_range"),
            (b"m:1_0|g", "bad_value"),
            (b"m:1:2_5|ms", "bad_value"),
            (b"m:1|g|#a:b\x00c", "bad_tags"),
            (b"m:1|c|#\x00", "bad_tags"),
        ],
    )
    def test_reason(self, line: bytes, reason: str) -> None:
        """Each kind of broken line is counted under its own reason."""
        batch = parsed(line)
        assert {reason: 1} == batch.malformed
        assert reason in MALFORMED_REASONS
        assert accounted(batch)

    def test_underscore_refused_on_the_fast_path_too(self) -> None:
        """Once a key is learned, "1_0" is still not read as 10."""
        batch = parsed(b"fast_u:1|g\nfast_u:2|g\nfast_u:1_0|g")
        assert {"bad_value": 1} == batch.malformed
        assert [1.0, 2.0] == batch.values["fast_u|g"]
        assert accounted(batch)

    def test_too_long(self) -> None:
        """A line longer than the limit is malformed, its neighbours are not."""
        batch = parsed(b"ok:1|g\n" + b"x" * 100 + b":1|g\nok:2|g", max_line=50)
        assert {"too_long": 1} == batch.malformed
        assert [1.0, 2.0] == batch.values["ok|g"]

    def test_good_lines_of_a_bad_datagram_still_count(self) -> None:
        """A bad line (even invalid UTF-8) does not spoil the rest of its datagram."""
        batch = parsed(b"a:1|g\n\xfe\xff:1|g\nb:nan|g\nc:3|ms")
        assert (4, 2) == (batch.received, batch.accepted)
        assert {"not_utf8": 1, "non_finite": 1} == batch.malformed
        assert [3.0] == batch.values["c|ms"]

    def test_example_kept_for_logging(self) -> None:
        """The first malformed line is kept (truncated) for the rate-limited log."""
        batch = parsed(b"m:abc|g\nm:zzz|g")
        assert ("bad_value", "m:abc|g") == batch.example


lines = st.builds(
    lambda name, values, type_, rate, tags: (
        f"{name}:{':'.join(values)}|{type_}"
        + (f"|@{rate}" if rate else "")
        + (f"|#{','.join(tags)}" if tags else "")
    ),
    st.text(
        st.characters(
            blacklist_characters=":|@#, \t\r\n\x00", blacklist_categories=("Cs",)
        ),
        min_size=1,
        max_size=20,
    ),
    st.lists(
        st.floats(min_value=-1e100, max_value=1e100).map(repr), min_size=1, max_size=4
    ),
    st.sampled_from(["g", "ms", "h", "d", "c"]),
    st.sampled_from([None, "0.5", "1"]),
    st.lists(st.from_regex(r"[a-z]{1,5}(:[a-z0-9]{1,5})?", fullmatch=True), max_size=3),
)


class TestProperties:
    @given(st.binary(max_size=4096))
    def test_any_bytes_never_raise_and_are_accounted(self, data: bytes) -> None:
        """Any byte string parses without an exception and every line is accounted."""
        batch = parsed(data)
        assert accounted(batch)
        assert batch.received <= data.count(b"\n") + 1

    @given(st.lists(lines, min_size=1, max_size=20))
    def test_valid_lines_all_accepted(self, generated: list[str]) -> None:
        """Generated valid lines are all accepted with every value finite."""
        batch = parsed("\n".join(generated).encode())
        assert len(generated) == batch.accepted == batch.received
        for values in batch.values.values():
            assert all(math.isfinite(v) for v in values)

    @given(st.lists(lines, min_size=1, max_size=10), st.binary(max_size=64))
    def test_garbage_between_valid_lines(
        self, generated: list[str], junk: bytes
    ) -> None:
        """Junk inserted between valid lines never costs a valid line."""
        junk = junk.replace(b"\n", b"")
        data = (b"\n" + junk + b"\n").join(line.encode() for line in generated)
        batch = parsed(data)
        assert batch.accepted >= len(generated)
        assert accounted(batch)

    @settings(max_examples=20)
    @given(st.integers(min_value=1, max_value=8))
    def test_memory_bounded_on_random_flood(self, seed: int) -> None:
        """Parsing megabytes of junk into reused batches keeps memory bounded."""
        import random

        rng = random.Random(seed)
        batch = Batch()
        tracemalloc.start()
        try:
            for _ in range(200):
                parse(rng.randbytes(8192), batch, MAX_LINE)
                batch.clear()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * 2**20


class TestSignedGauges:
    def test_absolute_by_default(self) -> None:
        """DogStatsD's reading: a signed gauge is its value."""
        batch = parsed(b"sg_a:0|g\nsg_a:-5|g\nsg_a:+3|g")
        assert [0.0, -5.0, 3.0] == batch.values["sg_a|g"]
        assert {} == batch.gauge_deltas

    def test_pystatsd_negative_gauge_is_one_sample(self) -> None:
        """pystatsd's 0 then -5 (one datagram) is the single value -5 with deltas."""
        batch = Batch()
        parse(b"sg_b:0|g\nsg_b:-5|g", batch, MAX_LINE, gauge_deltas=True)
        assert [-5.0] == batch.values["sg_b|g"]
        assert (2, 2) == (batch.accepted, batch.lines_for("sg_b|g"))
        assert accounted(batch)

    def test_deltas_adjust_the_last_value(self) -> None:
        """+3 and -1 after 10 leave 12; a delta first waits for the store."""
        batch = Batch()
        data = b"sg_c:+2|g\nsg_c:10|g\nsg_c:+3|g\nsg_c:-1|g\nsg_c:-1|ms"
        parse(data, batch, MAX_LINE, gauge_deltas=True)
        assert [12.0] == batch.values["sg_c|g"]
        assert {"sg_c|g": 2.0} == batch.gauge_deltas
        assert [-1.0] == batch.values["sg_c|ms"]
        assert 4 == batch.lines_for("sg_c|g")

    def test_switching_mode_forgets_learned_gauges(self) -> None:
        """A gauge key learned as absolute is not read so once deltas are on."""
        for _ in range(2):
            parsed(b"sg_d:1|g")
        batch = Batch()
        parse(b"sg_d:+2|g", batch, MAX_LINE, gauge_deltas=True)
        assert {"sg_d|g": 2.0} == batch.gauge_deltas
        assert [5.0] == parsed(b"sg_d:5|g").values["sg_d|g"]
