"""The limits' own logic, without a daemon: tag sets, set budgets, the memory ceiling,
request nesting."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.control.handlers import metric_record
from perfwarden.control.protocol import ProtocolError, decode_request
from perfwarden.ingest.statsd import Batch, parse, set_tag_limits
from perfwarden.series.ceiling import MemoryCeiling
from perfwarden.series.store import SET_MEMBER_OVERHEAD, MetricStore
from perfwarden.views.exposition import Exposition

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def _default_tag_limits() -> Iterator[None]:
    set_tag_limits(1024, 32)
    yield
    set_tag_limits(1024, 32)


def parsed(text: str) -> Batch:
    batch = Batch()
    parse(text.encode(), batch, 8192)
    return batch


class TestTagLimits:
    def test_tag_count_and_bytes(self) -> None:
        """32 tags pass, 33 do not; nor does a tag set past 1024 bytes."""
        ok = ",".join(f"t{i}" for i in range(32))
        assert 1 == parsed(f"a:1|g|#{ok}").accepted
        assert {"too_many_tags": 1} == parsed(f"a:1|g|#{ok},t32").malformed
        assert {"too_many_tags": 1} == parsed("a:1|g|#k:" + "é" * 512).malformed

    def test_lowering_the_limit_applies_to_known_lines(self) -> None:
        """A line learned under a loose limit is refused once the limit drops."""
        line = "b:1|g|#x:1,y:2,z:3"
        assert 1 == parsed(line).accepted
        assert 1 == parsed(line).accepted  # now on the fast path
        set_tag_limits(1024, 2)
        assert {"too_many_tags": 1} == parsed(line).malformed


class TestSetBudget:
    def test_members_stop_at_the_byte_budget_until_the_next_interval(self) -> None:
        """The budget spans all set series; a roll restores it."""
        store = MetricStore(lambda _: 10, 100)
        cost = 100 + SET_MEMBER_OVERHEAD
        store.set_limits(max_members=1000, max_bytes=10 * cost)
        batch = Batch(received=2, accepted=2)
        batch.members["a|s"] = [f"{i:0100}" for i in range(8)]
        batch.members["b|s"] = [f"{i:0100}" for i in range(8)]
        store.ingest(batch, 1.0)
        assert 6 == store.set_overflow
        store.roll_interval(1.0)
        counts = sorted(s.window.values()[-1] for s in store)
        assert [2.0, 8.0] == counts
        store.ingest(batch, 2.0)
        assert 12 == store.set_overflow

    def test_repeated_members_cost_nothing(self) -> None:
        """A member already counted this interval does not spend the budget again."""
        store = MetricStore(lambda _: 10, 100)
        store.set_limits(max_members=1000, max_bytes=SET_MEMBER_OVERHEAD + 1)
        batch = Batch(received=1, accepted=1, members={"u|s": ["a"] * 50})
        store.ingest(batch, 1.0)
        assert 0 == store.set_overflow


class TestMemoryCeiling:
    def test_sheds_once_and_resumes_below_ninety_percent(self) -> None:
        """On above the ceiling, logged once; off only below 90% of it."""
        store = MetricStore(lambda _: 10, 100)
        rss = [50.0]
        ceiling = MemoryCeiling(store, lambda: 100, lambda: rss[0])
        with capture_logs() as logs:
            ceiling.check()
            assert not store.shedding
            rss[0] = 120.0
            ceiling.check()
            ceiling.check()
            assert store.shedding
            store.ingest(Batch(received=1, accepted=1, values={"new|g": [1.0]}), 1.0)
            assert (1, 0) == (store.shed_lines, len(store))
            rss[0] = 95.0
            ceiling.check()
            assert store.shedding
            rss[0] = 85.0
            ceiling.check()
            assert not store.shedding
        assert ["series.shedding", "series.shedding_ended"] == [
            log["event"] for log in logs
        ]


class TestRequestDepth:
    def test_depth_is_bounded_without_recursion(self) -> None:
        """Nesting past the limit is a ProtocolError, however deep."""
        for depth in (33, 100_000):
            line = '{"command": "ping", "args": {"a": ' + "[" * depth + "]" * depth
            with pytest.raises(ProtocolError, match="nested deeper"):
                decode_request((line + "}}").encode(), max_depth=32)
        line = '{"command": "ping", "args": {"a": [[1]]}}'
        assert "ping" == decode_request(line.encode(), max_depth=4).command


class TestLimitsExposition:
    def test_families_parse_and_count(self, tmp_path: Path) -> None:
        """The limits' counters reach /metrics under their documented names."""
        config = parse_config('version: 1\nhttp: {listen: "127.0.0.1:0"}\n')
        daemon = Daemon(config, tmp_path / "c.yaml", tmp_path / "run", tmp_path)
        daemon.control_counters.refused["per_uid"] = 3
        daemon.store.shedding = True
        body, _ = Exposition(daemon).scrape_now()
        found = {
            sample.name: (sample.labels, sample.value)
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if "control_refused" in sample.name or "shedding" in sample.name
        }
        assert ({}, 1.0) == found["perfwarden_shedding_new_series"]
        refused = [
            sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == "perfwarden_control_refused_connections_total"
            and sample.labels == {"reason": "per_uid"}
        ]
        assert [3.0] == refused


class TestReportAggregate:
    def test_a_metric_over_many_series_is_sampled(self, tmp_path: Path) -> None:
        """300 full windows of 1000: the aggregate reads at most 100k samples, the
        newest of each series; a small metric is read whole."""
        config = parse_config("version: 1\nstatistics: {window: 1000}\n")
        daemon = Daemon(config, tmp_path / "c.yaml", tmp_path / "run", tmp_path)
        batch = Batch(received=301, accepted=301)
        for i in range(300):
            batch.values[f"wide|g|#i:{i}"] = [float(i)] * 1000
        batch.values["small|g"] = [1.0, 2.0, 3.0]
        daemon.store.ingest(batch, 1.0)
        wide = metric_record(daemon, "wide")
        assert 300 * (100_000 // 300) == wide["sample_size"]
        assert 149.5 == pytest.approx(wide["mean"])
        assert 3 == metric_record(daemon, "small")["sample_size"]
