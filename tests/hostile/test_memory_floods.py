"""Floods that grow memory, not series counts: long tag sets, big set members, and the
memory ceiling past which new series are shed."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

RSS_LIMIT_MB = 200


def rss_mb(daemon: DaemonProcess) -> float:
    return float(daemon.request("status")["memory"]["rss_mb"])


class TestTagFloods:
    def test_huge_tag_sets_are_refused(self, daemon: DaemonProcess) -> None:
        """10k lines with 1,450 tags each (7.6 KB): malformed, memory flat."""
        tags = ",".join(f"t{i}" for i in range(1450))
        lines = (f"m{i}:1|g|#{tags}" for i in range(10_000))
        sent = daemon.send_lines(lines, per_datagram=8)
        counters = daemon.wait_received(sent, timeout=120)
        assert sent == counters["malformed_by_reason"]["too_many_tags"]
        assert 0 == daemon.request("status")["series"]
        assert rss_mb(daemon) < RSS_LIMIT_MB

    def test_tag_sets_at_the_limit_stay_bounded(self, daemon: DaemonProcess) -> None:
        """5k series each with 32 tags in 1 KB (both limits): RSS under 200 MB."""
        lines = [
            f"m:1|g|#id:{i}" + "".join(f",tag{j}:{i:06}{j:020}" for j in range(31))
            for i in range(5_000)
        ]
        assert max(len(line) for line in lines) - len("m:1|g|#") <= 1024
        sent = daemon.send_lines(lines, per_datagram=32)
        counters = daemon.wait_received(sent, timeout=120)
        assert sent == counters["accepted"]
        assert daemon.request("status")["series"] >= 5_000
        assert rss_mb(daemon) < RSS_LIMIT_MB
        one_more = "m:1|g|#" + ",".join(f"t{j}" for j in range(33))
        daemon.send_datagrams([one_more])
        daemon.wait_received(sent + 1)
        assert 1 == daemon.ingest()["malformed_by_reason"]["too_many_tags"]


class TestSetFloods:
    def test_distinct_big_members_are_bounded(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Two senders of distinct 8 KB set members: counted up to the byte budget."""
        daemon = make_daemon("version: 1\nevaluation: {interval: 30s}\n").start()
        pad = "x" * 8000
        for sender in range(2):
            lines = (f"users:{sender}-{i}-{pad}|s" for i in range(4000))
            daemon.send_lines(lines, per_datagram=7)
        status = wait_until(
            lambda: (s := daemon.request("status"))["ingest"]["received"] >= 8000 and s,
            timeout=120,
        )
        assert 8000 == status["ingest"]["accepted"]
        # 16 MiB at ~8 KB a member: about 2,000 counted, the rest overflow.
        assert 5500 < status["set_members_overflow"] < 6100
        assert rss_mb(daemon) < RSS_LIMIT_MB


class TestMemoryCeiling:
    def test_new_series_are_shed_past_the_ceiling(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Past max_memory_mb, lines of new series drop (counted, logged once);
        known series go on; a reload that lifts the ceiling ends it."""
        config = "version: 1\nstatistics: {max_memory_mb: 1000}\n"
        daemon = make_daemon(config).start()
        daemon.send_datagrams(["known:1|g"])
        daemon.wait_received(1)
        assert daemon.config_path is not None
        daemon.config_path.write_text("version: 1\nstatistics: {max_memory_mb: 1}\n")
        daemon.request("reload")
        daemon.wait_log("series.shedding")
        daemon.send_datagrams([f"new{i}:1|g" for i in range(50)] + ["known:2|g"])
        counters = daemon.wait_received(52)
        assert {"memory_limit": 50} == counters["dropped_by_reason"]
        assert 2 == counters["accepted"]
        assert 1 == len(daemon.log_events("series.shedding"))
        daemon.config_path.write_text("version: 1\nstatistics: {max_memory_mb: 0}\n")
        daemon.request("reload")
        daemon.wait_log("series.shedding_ended")
        daemon.send_datagrams(["new0:1|g"])
        wait_until(lambda: daemon.ingest()["accepted"] == 3)
        assert os.path.exists(daemon.control_path)
