"""The daemon as a user sees it: real process, real sockets, the shipped CLI."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
from scipy import stats as scipy_stats

from perfwarden.errors import ControlError
from perfwarden.testing import DaemonProcess, wait_until

from .conftest import BASE_CONFIG

if TYPE_CHECKING:
    from collections.abc import Callable


def scipy_interval(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values)
    low, high = scipy_stats.t.interval(
        0.95, len(array) - 1, loc=np.mean(array), scale=scipy_stats.sem(array)
    )
    return float(low), float(high)


def only_series(daemon: DaemonProcess, metric: str) -> dict[str, object]:
    records = daemon.cli_json("stats", metric)["series"]
    assert 1 == len(records)
    return records[0]  # type: ignore[no-any-return]


class TestStartAndStop:
    def test_started_logged_with_paths_and_versions(
        self, daemon: DaemonProcess
    ) -> None:
        """``daemon.started`` names the config, the socket dir and the versions."""
        started = daemon.wait_log("daemon.started")
        assert str(daemon.socket_dir) == started["socket_dir"]
        assert {"version", "python", "config", "pid", "level", "timestamp"} <= set(
            started
        )

    def test_sigterm_stops_cleanly(self, daemon: DaemonProcess) -> None:
        """SIGTERM: ``daemon.stopping``, STOPPING=1, sockets removed, exit 0."""
        assert 0 == daemon.stop()
        assert daemon.log_events("daemon.stopping")
        daemon.wait_notification("STOPPING=1", timeout=5)
        assert not (daemon.socket_dir / "control.sock").exists()
        assert not (daemon.socket_dir / "metrics.sock").exists()

    def test_started_daemon_as_context_manager_runs_once(self) -> None:
        """``with DaemonProcess(...).start() as d``: the same daemon, not a second
        start that would find the first's lock, and stopped at the end."""
        started = DaemonProcess(BASE_CONFIG).start()
        first = started.process
        with started as daemon:
            assert daemon.process is first
            assert daemon.request("ping")["pong"]
        assert first is not None
        assert first.poll() is not None
        assert "already running" not in started.log_text()

    def test_second_instance_refused(
        self, daemon: DaemonProcess, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A second daemon on the same directory exits 1 and leaves the first alone."""
        second = make_daemon(base_dir=daemon.base_dir)
        second.log_path = daemon.base_dir / "second.log"
        second.start(wait_ready=False)
        assert second.process is not None
        assert 1 == second.process.wait(60)
        assert "already running" in second.log_text()
        assert daemon.request("ping")["pong"]
        daemon.send_datagrams(["still:1|g"])
        daemon.wait_received(1)

    def test_stale_socket_replaced_after_kill_9(
        self, daemon: DaemonProcess, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """After kill -9 the socket files stay; a new daemon replaces them."""
        assert daemon.process is not None
        daemon.process.kill()
        daemon.process.wait()
        assert (daemon.socket_dir / "control.sock").exists()
        again = make_daemon(base_dir=daemon.base_dir)
        again.config_path = daemon.config_path
        again.start()
        assert again.request("ping")["pong"]

    def test_status_exit_3_without_daemon(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Client commands exit 3 with a message when no daemon answers."""
        idle = make_daemon()
        for args in (["status"], ["stats"], ["send", "m", "1"]):
            result = idle.cli(*args)
            assert 3 == result.returncode, result
            assert "perfwarden:" in result.stderr

    def test_module_and_console_script(self, daemon: DaemonProcess) -> None:
        """``python -m perfwarden`` and the installed console script both work."""
        script = os.path.join(os.path.dirname(sys.executable), "perfwarden")
        result = subprocess.run(
            [script, "status", "--socket-dir", str(daemon.socket_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert 0 == result.returncode, result.stderr
        assert "ingest" in result.stdout


class TestIngestAndStats:
    def test_datagram_values_agree_with_scipy(self, daemon: DaemonProcess) -> None:
        """Values sent by datagram give the interval scipy computes on the same data."""
        rng = np.random.default_rng(7)
        values = [float(v) for v in rng.normal(80, 12, 500)]
        daemon.send_datagrams(
            "\n".join(f"context_loading_time:{v!r}|ms" for v in values[i : i + 25])
            for i in range(0, len(values), 25)
        )
        daemon.wait_received(len(values))
        record = only_series(daemon, "context_loading_time")
        low, high = scipy_interval(values)
        assert len(values) == record["sample_size"]
        assert low == pytest.approx(record["ci_low"], rel=1e-9)
        assert high == pytest.approx(record["ci_high"], rel=1e-9)
        assert np.percentile(values, 95) == pytest.approx(record["p95"], rel=1e-9)
        assert 100 == record["target"]
        assert "ok" == record["status"]

    def test_stream_lines_split_across_writes(self, daemon: DaemonProcess) -> None:
        """Newline-delimited lines split at arbitrary points are reassembled."""
        path = str(daemon.socket_dir / "metrics.stream.sock")
        payload = b"".join(f"split.metric:{i}|g\n".encode() for i in range(300))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            for start in range(0, len(payload), 7):
                sock.sendall(payload[start : start + 7])
        counters = daemon.wait_received(300)
        assert 300 == counters["accepted"]
        record = only_series(daemon, "split.metric")
        assert 149.5 == pytest.approx(record["mean"])

    def test_stream_length_prefixed_frames(self, daemon: DaemonProcess) -> None:
        """DogStatsD stream framing (4-byte little-endian length) is detected."""
        frames = b"".join(
            struct.pack("<I", len(body)) + body
            for body in (f"framed:{i}|ms\nframed:{i}|ms".encode() for i in range(50))
        )
        daemon.send_stream(frames)
        counters = daemon.wait_received(100)
        assert 100 == counters["accepted"]
        assert 100 == only_series(daemon, "framed")["sample_size"]

    def test_datadog_client(self, daemon: DaemonProcess) -> None:
        """The ``datadog`` package's DogStatsd on metrics.sock works unchanged."""
        from datadog.dogstatsd.base import DogStatsd

        client = DogStatsd(
            socket_path=str(daemon.socket_dir / "metrics.sock"),
            disable_telemetry=True,
            disable_buffering=True,
        )
        # The client drops on EAGAIN and the kernel queues only 10 datagrams per Unix
        # socket (net.unix.max_dgram_qlen): pace the sends on what the daemon counted.
        for i in range(40):
            client.timing("dd.timing", 10 + i, tags=["env:test"])
            client.gauge(
                "parallel_execution_speedup", 3.1, tags=["combination:Read+Grep+Bash"]
            )
            daemon.wait_received(2 * (i + 1))
        client.close_socket()
        record = only_series(daemon, "dd.timing")
        assert {"env": "test"} == record["tags"]
        assert 40 == record["sample_size"]

    def test_tags_make_series_in_any_order(self, daemon: DaemonProcess) -> None:
        """Tag order does not matter: ``a,b`` and ``b,a`` are one series."""
        daemon.send_datagrams(["t:1|g|#a:1,b:2", "t:2|g|#b:2,a:1", "t:3|g|#a:9"])
        daemon.wait_received(3)
        records = daemon.cli_json("stats", "t")["series"]
        sizes = sorted(r["sample_size"] for r in records)
        assert [1, 2] == sizes

    def test_counts_become_rates(self, daemon: DaemonProcess) -> None:
        """Counts are summed per interval and stored as a per-second rate."""
        daemon.send_datagrams(["hits:5|c", "hits:5|c|@0.5"])
        daemon.wait_received(2)
        record = wait_until(
            lambda: (r := only_series(daemon, "hits"))["sample_size"] >= 1 and r
        )
        assert 15.0 in {record["max"], record["p99"]} or record["max"] == pytest.approx(
            15.0
        )

    def test_malformed_counted_and_accounted(self, daemon: DaemonProcess) -> None:
        """Bad lines are counted per reason, logged, and the good ones still land."""
        daemon.send_datagrams(
            [
                b"ok:1|g\nbad:abc|g\nnan:nan|g\n:1|g\nok:2|g",
                b"_e{1,1}:a|b\n_sc|c|0\nx:1|zz\n\xff\xfe:1|g",
            ]
        )
        counters = daemon.wait_received(9)
        assert 9 == counters["received"]
        assert 2 == counters["accepted"]
        assert 2 == counters["ignored"]
        expected = {"bad_value": 1, "non_finite": 1, "empty_name": 1, "bad_type": 1}
        assert {**expected, "not_utf8": 1} == counters["malformed_by_reason"]
        received = counters["received"]
        assert received == (
            counters["accepted"]
            + counters["malformed"]
            + counters["ignored"]
            + counters["dropped"]
        )
        logged = daemon.wait_log("ingest.malformed")
        assert "reason" in logged

    def test_series_cap_drops_and_counts(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Beyond ``max_series`` new series are dropped and counted, old ones go on."""
        daemon = make_daemon("version: 1\nstatistics: {max_series: 5}\n").start()
        daemon.send_datagrams(f"s{i}:1|g" for i in range(20))
        counters = daemon.wait_received(20)
        # The self-monitor's own series may hold some of the five slots already.
        dropped = counters["dropped_by_reason"]["series_limit"]
        assert 20 == counters["accepted"] + dropped
        assert dropped >= 15
        assert 5 == daemon.request("status")["series"]

    def test_send_command(self, daemon: DaemonProcess) -> None:
        """``perfwarden send`` delivers one tagged line."""
        result = daemon.cli(
            "send", "cli.metric", "12.5", "--type", "ms", "--tag", "k:v"
        )
        assert 0 == result.returncode, result.stderr
        daemon.wait_received(1)
        record = only_series(daemon, "cli.metric")
        assert (12.5, {"k": "v"}) == (record["mean"], record["tags"])

    def test_stats_recent_values(self, daemon: DaemonProcess) -> None:
        """``stats`` with ``recent`` returns the newest raw values, oldest first."""
        daemon.send_datagrams([f"recent.metric:{i}|g" for i in range(10)])
        daemon.wait_received(10)
        records = daemon.request("stats", metrics=["recent.metric"], recent=3)["series"]
        assert [7.0, 8.0, 9.0] == records[0]["recent"]
        with pytest.raises(ControlError):
            daemon.request("stats", recent=-1)

    def test_stats_unknown_metric_exit_1(self, daemon: DaemonProcess) -> None:
        """``stats NAME`` of a metric never seen exits 1 and says so."""
        result = daemon.cli("stats", "never.seen")
        assert 1 == result.returncode
        assert "never.seen" in result.stderr

    def test_human_output(self, daemon: DaemonProcess) -> None:
        """The text forms of status and stats are tables a person can read."""
        daemon.send_datagrams([f"context_loading_time:{i}|ms" for i in range(40)])
        daemon.wait_received(40)
        stats = daemon.cli("stats")
        assert 0 == stats.returncode
        header, row = stats.stdout.splitlines()
        # The configured unit sits in its own column, aligned under UNIT.
        assert header.index("UNIT") == row.index("ms ")
        assert ["context_loading_time", "-", "40", "ms"] == row.split()[:4]
        assert "100" == row.split()[-2]
        status = daemon.cli("status")
        assert "received 40" in status.stdout


class TestReload:
    def test_sighup_and_reload_command(self, daemon: DaemonProcess) -> None:
        """SIGHUP and ``perfwarden reload`` apply a valid edit and reject a bad one."""
        assert daemon.config_path is not None
        text = daemon.config_path.read_text()
        daemon.config_path.write_text(text.replace("critical: 200", "critical: 250"))
        daemon.signal(signal.SIGHUP)
        reloaded = daemon.wait_log("config.reloaded")
        assert any("critical" in change for change in reloaded["changes"])
        daemon.config_path.write_text(text.replace("bound: upper", "bound: sideways"))
        result = daemon.cli("reload")
        assert 1 == result.returncode
        assert "bound" in result.stderr
        assert daemon.log_events("config.rejected")
        assert daemon.request("ping")["pong"]
