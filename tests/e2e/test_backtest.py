"""Backtest equivalence: a live daemon's alert timeline, replayed from its recording."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from perfwarden.recording.segments import segment_paths

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

CONFIG = """\
version: 1
statistics: {min_samples: 5}
evaluation: {interval: 0.2s, basis: mean, window: 5, hysteresis: 0.05,
             missing_after: 1h}
recording: {enabled: true}
metrics:
  latency: {bound: upper, warning: 150, critical: 200, for: 1s}
"""
_TRANSITIONS = (
    "alert.pending",
    "alert.fired",
    "alert.escalated",
    "alert.deescalated",
    "alert.resolved",
    "alert.cancelled",
)


def live_transitions(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [e for e in daemon.log_events() if e.get("event") in _TRANSITIONS]


def phase(daemon: DaemonProcess, lines: list[str], transitions: int) -> None:
    """One datagram, then wait until the daemon has logged ``transitions``."""
    daemon.send_datagrams(["\n".join(lines)])
    deadline = time.monotonic() + 30.0
    while len(live_transitions(daemon)) < transitions:
        assert time.monotonic() < deadline, live_transitions(daemon)
        time.sleep(0.05)


def backtest(daemon: DaemonProcess, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "perfwarden",
            "backtest",
            "--config",
            str(daemon.config_path),
            "--state-dir",
            str(daemon.state_dir),
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


class TestEquivalence:
    def test_replay_gives_the_live_timeline(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Same transitions, severities, observations, silences and (nearly) times
        as live."""
        daemon = make_daemon(CONFIG).start()
        stamped = "latency:{}|ms|#src:stamped|T{}"
        phase(daemon, ["latency:100|ms"] * 5, 0)
        phase(daemon, ["latency:170|ms"] * 5, 2)  # pending, fired after 1 s
        phase(daemon, ["latency:260|ms"] * 5, 3)  # escalated
        phase(daemon, ["latency:180|ms"] * 5, 4)  # deescalated
        phase(daemon, ["latency:100|ms"] * 5, 5)  # resolved
        # Stamped 3 s ago: pending since then, so it fires on the next tick.
        ago = int(time.time()) - 3
        phase(daemon, [stamped.format(230, ago)] * 5, 7)
        phase(daemon, [stamped.format(100, int(time.time()))] * 5, 8)
        # Silenced while it fires, lifted before it resolves.
        added = daemon.cli("silence", "latency", "--tag", "src:muted", "--for", "1h")
        assert 0 == added.returncode, added.stderr
        (silence,) = daemon.request("alerts")["silences"]
        phase(daemon, ["latency:170|ms|#src:muted"] * 5, 10)  # pending, fired
        lifted = daemon.cli("silence", "--remove", silence["id"])
        assert 0 == lifted.returncode, lifted.stderr
        phase(daemon, ["latency:100|ms|#src:muted"] * 5, 11)  # resolved
        live = live_transitions(daemon)
        recording = daemon.request("status")["recording"]
        assert (True, 0) == (recording["enabled"], recording["dropped"])
        assert 0 == daemon.stop()
        assert segment_paths(daemon.state_dir / "recording")

        report = backtest(daemon)
        replayed = [
            (key, step)
            for key, line in report["series"].items()
            for step in line["transitions"]
        ]
        assert 0 == report["problems"]
        by_series = {
            key: [
                (
                    s["transition"],
                    s["severity"],
                    s["observed"],
                    s["threshold"],
                    s["silenced"],
                )
                for k, s in replayed
                if k == key
            ]
            for key in report["series"]
        }
        expected = {
            key: [
                (
                    e["event"].removeprefix("alert."),
                    e["severity"],
                    e["observed"],
                    e["threshold"],
                    e["silenced"],
                )
                for e in live
                if e["series"] == key
            ]
            for key in {e["series"] for e in live}
        }
        assert expected == by_series
        assert [
            "pending",
            "fired",
            "escalated",
            "deescalated",
            "resolved",
        ] == [t for t, *_ in by_series["latency|ms"]]
        assert [
            ("pending", True),
            ("fired", True),
            ("resolved", False),
        ] == [(t, muted) for t, *_, muted in by_series["latency|ms|#src:muted"]]
        assert [silence["id"]] == [s["id"] for s in report["silences"]]
        # Times agree with the live log's to well within the 1 s hold time.
        for key, step in replayed:
            match = next(
                e
                for e in live
                if e["series"] == key
                and e["event"] == f"alert.{step['transition']}"
                and e["observed"] == step["observed"]
            )
            logged = dt.datetime.fromisoformat(match["timestamp"]).timestamp()
            assert abs(logged - step["at"]) < 0.5, (key, step, match)


class TestCrash:
    def test_kill_9_leaves_a_readable_recording(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """After kill -9 and a torn tail, the next start cuts the tail and only it."""
        daemon = make_daemon(CONFIG).start()
        daemon.send_datagrams(["latency:100|ms\nlatency:101|ms"] * 20)
        deadline = time.monotonic() + 30.0
        while daemon.request("status")["recording"]["samples_written"] < 40:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert daemon.process is not None
        daemon.process.kill()
        daemon.process.wait(30)
        segments = segment_paths(daemon.state_dir / "recording")
        with segments[-1].open("ab") as file:
            file.write(b"BLK1\xff\x00\x00\x00")  # a block header with no block
        daemon.start()
        truncated = daemon.wait_log("recording.truncated")
        assert 8 == truncated["bytes"]
        assert 8 == daemon.request("status")["recording"]["truncated_bytes"]
        assert 0 == daemon.stop()
        report = backtest(daemon, "--difference-only")
        assert 0 == report["problems"]
        assert report["samples"] >= 40


class TestRestoredSilence:
    def test_a_silence_restored_at_start_mutes_the_replay(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Added before a restart, replayed --from after it: still in force."""
        daemon = make_daemon(CONFIG).start()
        added = daemon.cli("silence", "latency", "--for", "1h")
        assert 0 == added.returncode, added.stderr
        assert 0 == daemon.stop()
        since = time.time()
        daemon.start()
        phase(daemon, ["latency:170|ms"] * 5, 2)  # pending, fired: both silenced
        live = [(e["event"], e["silenced"]) for e in live_transitions(daemon)]
        assert 0 == daemon.stop()
        report = backtest(daemon, "--from", str(since))
        (line,) = report["series"].values()
        replayed = [
            (f"alert.{s['transition']}", s["silenced"]) for s in line["transitions"]
        ]
        assert [("alert.pending", True), ("alert.fired", True)] == live
        assert live == replayed
