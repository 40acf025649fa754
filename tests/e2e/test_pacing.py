"""Coalesced evaluation through a real daemon: what control commands see."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

#: A long coalescing gap and tick, so that only the pacer can judge the series soon.
CONFIG = """\
version: 1
statistics: {min_samples: 30}
evaluation: {interval: 30s, window: 50, coalesce: 1s}
metrics:
  latency: {unit: ms, bound: upper, warning: 150, critical: 200}
"""


def send_values(daemon: DaemonProcess, values: list[float]) -> None:
    lines = [f"latency:{v!r}|ms" for v in values]
    daemon.send_datagrams(
        "\n".join(lines[i : i + 10]) for i in range(0, len(lines), 10)
    )


def status_of(daemon: DaemonProcess) -> str:
    (record,) = daemon.request("stats", metrics=["latency"])["series"]
    return str(record["status"])


class TestControlSeesEverySampleJudged:
    def test_a_waiting_pass_runs_before_a_command_answers(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Samples whose pass waits for the coalescing gap are judged before a
        control command reads the alerts: 10 samples are too few to judge; 30 more
        sent right after, inside the 1 s gap, make the series ok at once."""
        daemon = make_daemon(CONFIG).start()
        send_values(daemon, [100.0 + i % 3 for i in range(10)])
        daemon.wait_received(10)
        assert status_of(daemon) == "insufficient_data"
        send_values(daemon, [100.0 + i % 3 for i in range(30)])
        daemon.wait_received(40)
        assert status_of(daemon) == "ok"
        # Values within the levels are judged once per gap, and nothing fired.
        assert not daemon.log_events("alert.fired")
