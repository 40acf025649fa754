"""End-to-end tests of ``perfwarden.client`` (and datadogpy) against a real daemon."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest
from datadog.dogstatsd.base import DogStatsd

from perfwarden.client import Client
from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from perfwarden.testing import DaemonProcess


@pytest.fixture(name="client")
def _client(daemon: DaemonProcess) -> Client:
    """A client of the running daemon."""
    return Client(daemon.socket_dir, state_dir=daemon.state_dir)


def record(daemon: DaemonProcess, metric: str, samples: int = 1) -> dict[str, Any]:
    """Wait until ``metric`` has one series with ``samples`` samples; return it."""

    def ready() -> dict[str, Any] | None:
        found = daemon.request("stats", metrics=[metric])["series"]
        if len(found) == 1 and found[0]["sample_size"] >= samples:
            result: dict[str, Any] = found[0]
            return result
        return None

    found: dict[str, Any] = wait_until(ready)
    return found


class TestTimer:
    """``timer()`` as a decorator (sync and async) and as a context manager."""

    def test_sync_decorator(self, client: Client, daemon: DaemonProcess) -> None:
        """Each call of a decorated function is one ``ms`` sample with its tags."""

        @client.timer("timed.sync", tags={"route": "search"})
        def work(x: int) -> int:
            time.sleep(0.02)
            return x * 2

        assert [0, 2, 4] == [work(i) for i in range(3)]
        client.flush()
        found = record(daemon, "timed.sync", 3)
        assert 3 == found["sample_size"]
        assert {"route": "search"} == found["tags"]
        assert "ms" == found["type"]
        assert found["min"] >= 20.0

    def test_async_decorator(self, client: Client, daemon: DaemonProcess) -> None:
        """A decorated coroutine function is timed over its whole await."""

        @client.timer("timed.async", tags=["kind:async"])
        async def work() -> str:
            await asyncio.sleep(0.03)
            return "done"

        assert "done" == asyncio.run(work())
        client.flush()
        found = record(daemon, "timed.async")
        assert {"kind": "async"} == found["tags"]
        assert found["last"] >= 30.0

    def test_context_manager(self, client: Client, daemon: DaemonProcess) -> None:
        """A ``with`` block is timed, also when it raises."""
        with client.timer("timed.block"):
            time.sleep(0.01)
        with pytest.raises(ValueError, match="boom"), client.timer("timed.block"):
            raise ValueError("boom")
        client.flush()
        found = record(daemon, "timed.block", 2)
        assert 2 == found["sample_size"]
        assert found["max"] >= 10.0
        assert {} == found["tags"]


class TestMetrics:
    """Gauges, counts and distributions arrive with their values and tags."""

    def test_gauge(self, client: Client, daemon: DaemonProcess) -> None:
        """A gauge's values are samples of its series."""
        client.gauge("memory_usage_mb", 31.5, tags={"app": "api"})
        client.gauge("memory_usage_mb", 32.5, tags={"app": "api"})
        client.flush()
        found = record(daemon, "memory_usage_mb", 2)
        assert 32.0 == found["mean"]
        assert 32.5 == found["last"]
        assert {"app": "api"} == found["tags"]

    def test_count(self, client: Client, daemon: DaemonProcess) -> None:
        """Counts are summed per interval and become a per-second rate."""
        for _ in range(5):
            client.count("requests", tags=["route:/a"])
        client.flush()
        found = record(daemon, "requests")
        assert "c" == found["type"]
        assert {"route": "/a"} == found["tags"]
        assert 5.0 == found["max"]

    def test_distribution(self, client: Client, daemon: DaemonProcess) -> None:
        """A distribution's values are samples."""
        for value in (1.0, 2.0, 6.0):
            client.distribution("payload_kb", value, tags={"dir": "in"})
        client.flush()
        found = record(daemon, "payload_kb", 3)
        assert "d" == found["type"]
        assert 3.0 == found["mean"]
        assert {"dir": "in"} == found["tags"]


class TestResilience:
    """No daemon, and forked children."""

    def test_no_daemon_is_fast_and_silent(self, tmp_path: Path) -> None:
        """Without a daemon nothing raises, lines are counted as dropped, fast."""
        client = Client(tmp_path, state_dir=tmp_path)
        started = time.perf_counter()
        for i in range(10_000):
            client.gauge("nobody.listens", i)
            with client.timer("nobody.times"):
                pass
        client.flush()
        elapsed = time.perf_counter() - started
        assert 20_000 == client.dropped
        assert 0 == client.sent
        assert elapsed < 2.0

    def test_fork_child_can_send(self, client: Client, daemon: DaemonProcess) -> None:
        """A forked child gets its own buffer and socket and its lines arrive."""
        client.gauge("parent.gauge", 1.0)
        client.flush()
        record(daemon, "parent.gauge")
        sent_before = client.sent
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                client.gauge("child.gauge", 2.0, tags={"pid": str(os.getpid())})
                client.flush()
                code = 0 if sent_before + 1 == client.sent else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert 0 == os.waitstatus_to_exitcode(status)
        found = record(daemon, "child.gauge")
        assert {"pid": str(pid)} == found["tags"]
        assert 2.0 == found["last"]


class TestNoLoss:
    """Packing and the backlog: a fast loop loses nothing at the default sysctl."""

    def test_100k_call_loop(self, client: Client, daemon: DaemonProcess) -> None:
        """100 000 timer calls in a tight loop all reach the daemon."""
        received = daemon.ingest()["received"]
        timed = client.timer("loop.timed")(lambda: None)
        for _ in range(100_000):
            timed()
        assert client.flush(timeout=60.0)
        assert (100_000, 0) == (client.sent, client.dropped)
        counters = daemon.wait_received(received + 100_000, timeout=60.0)
        assert received + 100_000 == counters["received"]
        assert 0 == counters["dropped"]

    def test_default_client_counters(self, daemon: DaemonProcess) -> None:
        """``client.dropped`` and ``client.sent`` are the default client's."""
        script = textwrap.dedent(
            """
            from perfwarden import client
            for i in range(1000):
                client.gauge("module.level", i)
            client.get_client().flush(timeout=30.0)
            print(client.sent, client.dropped)
            """
        )
        env = {**os.environ, "PERFWARDEN_SOCKET_DIR": str(daemon.socket_dir)}
        env["PERFWARDEN_STATE_DIR"] = str(daemon.state_dir)
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "1000 0" == done.stdout.strip()
        record(daemon, "module.level", 1000)


class TestDiscovery:
    """The client never looks in the application's own systemd directories."""

    def test_runtime_directory_is_the_apps_not_ours(
        self, daemon: DaemonProcess, tmp_path: Path
    ) -> None:
        """An app with its own $RUNTIME_DIRECTORY still reaches the daemon."""
        script = textwrap.dedent(
            """
            from perfwarden import client
            client.gauge("app.under.systemd", 7.0)
            client.get_client().flush(timeout=30.0)
            """
        )
        env = {
            **os.environ,
            "PERFWARDEN_SOCKET_DIR": str(daemon.socket_dir),
            "RUNTIME_DIRECTORY": str(tmp_path / "app-run"),
            "STATE_DIRECTORY": str(tmp_path / "app-state"),
        }
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
        assert 7.0 == record(daemon, "app.under.systemd")["last"]


class TestDatadogClient:
    """The ``datadog`` package's DogStatsd works unchanged on metrics.sock."""

    def test_timings_and_tagged_gauges(self, daemon: DaemonProcess) -> None:
        """Timings and tagged gauges from DogStatsd(socket_path=...) arrive."""
        statsd = DogStatsd(
            socket_path=str(daemon.socket_dir / "metrics.sock"),
            disable_telemetry=True,
        )
        received = daemon.ingest()["received"]
        # DogStatsd drops on EAGAIN and the kernel queues 10 datagrams per Unix
        # socket: pace the sends on what the daemon counted.
        for i in range(20):
            statsd.timing("dd.latency", 100 + i, tags=["route:/search"])
            statsd.gauge("dd.speedup", 2.0 + i % 2, tags=["combination:a", "env:t"])
            daemon.wait_received(received + 2 * (i + 1))
        statsd.close_socket()
        timing = record(daemon, "dd.latency", 20)
        assert 109.5 == timing["mean"]
        assert {"route": "/search"} == timing["tags"]
        assert "ms" == timing["type"]
        gauge = record(daemon, "dd.speedup", 20)
        assert 2.5 == gauge["mean"]
        assert {"combination": "a", "env": "t"} == gauge["tags"]
        assert 0 == daemon.ingest()["malformed"]
