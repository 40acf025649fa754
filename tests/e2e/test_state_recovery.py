"""The state survives restarts of a real daemon: SIGTERM, ``kill -9`` at random
moments while samples stream, a firing alert, learned weights, a corrupt file."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.paths import METRICS_SOCKET
from perfwarden.state.persistence import STATE_FILE
from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

CONFIG = """\
version: 1
statistics: {window: 500, min_samples: 10}
evaluation: {interval: 200ms, basis: mean, window: 20}
metrics:
  latency: {bound: upper, warning: 150, critical: 200}
state:
  checkpoint_interval: INTERVAL
"""


def config(interval: str) -> str:
    return CONFIG.replace("INTERVAL", interval)


def stats_of(daemon: DaemonProcess, *names: str) -> dict[str, dict[str, Any]]:
    records = daemon.request("stats", metrics=list(names))["series"]
    return {r["series"]: r for r in records}


def db_ok(daemon: DaemonProcess) -> bool:
    with sqlite3.connect(daemon.state_dir / STATE_FILE) as db:
        return bool(db.execute("PRAGMA quick_check").fetchone()[0] == "ok")


class Streamer(threading.Thread):
    """Sends gauge datagrams continuously, through restarts; counts what was sent."""

    def __init__(self, daemon: DaemonProcess) -> None:
        super().__init__(name="state-test-streamer", daemon=True)
        self.path = str(daemon.socket_dir / METRICS_SOCKET)
        self.sent = 0
        self.done = threading.Event()

    def run(self) -> None:
        value = 0
        while not self.done.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    sock.settimeout(1.0)
                    sock.connect(self.path)
                    while not self.done.is_set():
                        lines = [f"load:{value + k}|g|#s:{k % 3}" for k in range(30)]
                        sock.send("\n".join(lines).encode())
                        self.sent += len(lines)
                        value += len(lines)
                        time.sleep(0.002)
            except OSError:
                time.sleep(0.01)  # the daemon is down: try again


def test_windows_survive_a_sigterm_restart(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(config("1h")).start()  # only the shutdown checkpoint
    daemon.send_datagrams(
        [f"latency:{v}|ms|#route:/a" for v in range(1, 301)]
        + [f"latency:{v}|ms|#route:/b" for v in range(5, 45)]
    )
    daemon.wait_received(340)
    before = stats_of(daemon, "latency")
    assert daemon.stop() == 0
    daemon.start()
    after = stats_of(daemon, "latency")
    assert set(after) == set(before) == {"latency|ms|#route:/a", "latency|ms|#route:/b"}
    for key, record in before.items():
        for field in ("sample_size", "total_samples", "mean", "p50", "p99", "min"):
            assert after[key][field] == record[field], (key, field)
    assert after["latency|ms|#route:/a"]["sample_size"] == 300
    status = daemon.request("status")["state"]
    assert status["restored"]["series"] >= 2
    assert status["enabled"] is True


def test_kill_9_at_random_moments_keeps_a_consistent_state(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    interval = 0.2
    daemon = make_daemon(config(f"{interval}s")).start()
    streamer = Streamer(daemon)
    streamer.start()
    rng = random.Random(1234)
    try:
        for _ in range(10):
            wait_until(lambda: stats_of(daemon, "load"), timeout=10)
            seen = sum(r["total_samples"] for r in stats_of(daemon, "load").values())
            # Long enough for a checkpoint after `seen`, then a random moment.
            time.sleep(3 * interval + 0.3 + rng.uniform(0.0, 0.6))
            daemon.signal(signal.SIGKILL)
            assert daemon.process is not None
            daemon.process.wait(10)
            daemon.start()
            restored = stats_of(daemon, "load")
            total = sum(r["total_samples"] for r in restored.values())
            assert total >= seen, "lost more than the samples since a checkpoint"
            assert total <= streamer.sent
            for record in restored.values():
                assert record["sample_size"] == min(record["total_samples"], 500)
            assert db_ok(daemon)
    finally:
        streamer.done.set()
        streamer.join(5)
    assert daemon.log_events("state.discarded") == []
    assert daemon.log_events("state.checkpoint_failed") == []
    restores = daemon.log_events("state.restored")
    assert len(restores) == 11
    assert all(r["series"] >= 1 for r in restores[1:])


def test_a_firing_alert_is_still_firing_after_kill_9(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(config("200ms")).start()
    daemon.send_datagrams([f"latency:{300 + i % 7}|ms" for i in range(60)])
    daemon.wait_log("alert.fired", timeout=10)
    firing = daemon.request("alerts")["alerts"]
    assert [(a["series"], a["state"], a["level"]) for a in firing] == [
        ("latency|ms", "firing", "critical")
    ]
    time.sleep(1.0)  # a few checkpoints
    daemon.signal(signal.SIGKILL)
    assert daemon.process is not None
    daemon.process.wait(10)
    daemon.start()
    after = daemon.request("alerts")["alerts"]
    assert [(a["series"], a["state"], a["level"]) for a in after] == [
        ("latency|ms", "firing", "critical")
    ]
    assert abs(after[0]["fired_at"] - firing[0]["fired_at"]) < 1.0
    # Still violated after the restart: evaluated again, and no second alert.fired.
    daemon.send_datagrams([f"latency:{310 + i % 5}|ms" for i in range(30)])
    daemon.wait_received(30)
    time.sleep(0.6)  # a few evaluation ticks
    assert stats_of(daemon, "latency")["latency|ms"]["status"] == "critical"
    assert len(daemon.log_events("alert.fired")) == 1


def test_learned_weights_survive_restarts(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    text = config("200ms")
    daemon = make_daemon(text)
    # A state directory prepared by the same writer the daemon uses.
    prepared = Daemon(
        parse_config(text),
        daemon.base_dir / "x.yaml",
        daemon.base_dir / "x",
        daemon.state_dir,
    )
    prepared.state.restore()
    for verdict in ("kept", "kept", "kept", "reverted"):
        prepared.learning.record(
            strategy="context_compression",
            plugin="compression",
            metric="latency",
            tags={},
            verdict=verdict,
            improvement=0.25,
        )

    async def write() -> None:
        assert await prepared.state.checkpoint(final=True)
        await prepared.state.close()

    asyncio.run(write())
    expected = prepared.learning.as_dict()
    daemon.start()
    for _ in range(2):  # restored from the prepared file, then from its own
        patterns = daemon.request("report")["learning_patterns"]
        entry = patterns["successful_optimizations"]["context_compression"]
        assert (entry["kept"], entry["reverted"]) == (3, 1)
        assert entry["weight"] == round(1.0 * (1 + 3) / (2 + 3 + 1) / 0.5, 3)
        assert daemon.request("status")["state"]["restored"]["strategies"] == 1
        assert daemon.stop() == 0
        daemon.start()
    check = Daemon(
        parse_config(text),
        daemon.base_dir / "x.yaml",
        daemon.base_dir / "x",
        daemon.state_dir,
    )
    daemon.stop()
    check.state.restore()
    assert check.learning.as_dict() == expected


def test_a_corrupt_state_file_is_moved_aside_and_the_daemon_starts(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(config("200ms"))
    daemon.state_dir.mkdir(parents=True)
    (daemon.state_dir / STATE_FILE).write_bytes(b"this is not a database\n" * 200)
    daemon.start()
    discarded = daemon.wait_log("state.discarded")
    assert "not a database" in discarded["reason"]
    assert list(daemon.state_dir.glob(f"{STATE_FILE}.corrupt-*"))
    daemon.send_datagrams(["latency:100|ms"])
    daemon.wait_received(1)
    wait_until(lambda: daemon.request("status")["state"]["checkpoints"] >= 1)
    assert db_ok(daemon)
