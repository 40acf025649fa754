"""Series expiry in a real daemon: an idle series leaves ``stats``, the log says so,
its slot under the series cap takes a new series, its alert is resolved, and it
does not come back from ``state.db`` after a ``kill -9``."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from typing import TYPE_CHECKING, Any

from perfwarden.state.persistence import STATE_FILE
from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

#: The self-monitor's series (memory, cpu, ingest rate, evaluation time): they are
#: sampled every second, so they never expire, and they hold slots under the cap.
SELF_SERIES = 4

CONFIG = """\
version: 1
statistics: {max_series: MAX, expire_after: 2s, min_samples: 5, window: 50}
evaluation: {interval: 100ms, basis: mean, window: 5, missing_after: 1s}
metrics:
  latency: {bound: upper, warning: 150, critical: 200}
state: {checkpoint_interval: 200ms}
"""


def keys(daemon: DaemonProcess, *metrics: str) -> set[str]:
    records = daemon.request("stats", metrics=list(metrics))["series"]
    return {str(record["series"]) for record in records}


def saved_keys(daemon: DaemonProcess) -> set[str]:
    with contextlib.closing(sqlite3.connect(daemon.state_dir / STATE_FILE)) as db:
        return {str(key) for (key,) in db.execute("SELECT key FROM series")}


def series_limit_drops(daemon: DaemonProcess) -> int:
    dropped: dict[str, int] = daemon.ingest()["dropped_by_reason"]
    return dropped.get("series_limit", 0)


def self_series_ready(daemon: DaemonProcess) -> bool:
    records = daemon.request("stats")["series"]
    own = [r for r in records if str(r["metric"]).startswith("perfwarden.self.")]
    return len(own) == SELF_SERIES


def expired_examples(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [s for line in daemon.log_events("series.expired") for s in line["series"]]


def test_an_idle_series_frees_its_slot_and_stays_gone_after_kill_9(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    old, new = "proc.rss|g|#pid:101", "proc.rss|g|#pid:202"
    daemon = make_daemon(CONFIG.replace("MAX", str(SELF_SERIES + 1))).start()
    wait_until(lambda: self_series_ready(daemon), timeout=15)
    daemon.send_datagrams(["proc.rss:10|g|#pid:101"])
    wait_until(lambda: old in keys(daemon, "proc.rss"))
    # The cap is full: a second pid's series is dropped and counted.
    daemon.send_datagrams(["proc.rss:11|g|#pid:202"])
    wait_until(lambda: series_limit_drops(daemon) == 1)
    wait_until(lambda: old in saved_keys(daemon))

    # Two seconds without a line: gone from stats, logged, counted.
    wait_until(lambda: old not in keys(daemon, "proc.rss"), timeout=15)
    result = daemon.cli("stats", "proc.rss")
    assert 1 == result.returncode
    assert "proc.rss" in result.stderr
    (example,) = wait_until(lambda: expired_examples(daemon))
    assert (old, "proc.rss") == (example["key"], example["metric"])
    assert example["idle_seconds"] > 2.0
    status = daemon.cli_json("status")
    assert 1 == status["series_expired"]
    assert SELF_SERIES == status["series"]

    # The freed slot takes the new pid's series.
    daemon.send_datagrams(["proc.rss:11|g|#pid:202"])
    wait_until(lambda: new in keys(daemon, "proc.rss"))
    assert 1 == series_limit_drops(daemon)

    # Its row left state.db at a checkpoint: a kill -9 does not bring it back.
    wait_until(lambda: old not in saved_keys(daemon))
    daemon.signal(signal.SIGKILL)
    assert daemon.process is not None
    daemon.process.wait(10)
    daemon.start()
    assert old not in keys(daemon, "proc.rss")
    assert daemon.log_events("state.restored")[-1]["series"] <= SELF_SERIES + 1


def test_the_alert_of_an_expired_series_is_resolved(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    key = "latency|ms|#pod:web-7f9c"
    daemon = make_daemon(CONFIG.replace("MAX", "100")).start()
    daemon.send_datagrams(
        [f"latency:{300 + i % 3}|ms|#pod:web-7f9c" for i in range(10)]
    )
    fired = daemon.wait_log("alert.fired", timeout=15)
    assert key == fired["series"]
    # Silent: no_data after missing_after (1 s), then resolved and forgotten at 2 s.
    resolved = daemon.wait_log("alert.resolved", timeout=15)
    assert (key, "ok", "expired") == (
        resolved["series"],
        resolved["state"],
        resolved["reason"],
    )
    wait_until(lambda: key in {s["key"] for s in expired_examples(daemon)})
    events = [
        e["event"]
        for e in daemon.log_events()
        if e.get("series") == key or e["event"] == "series.expired"
    ]
    assert ["alert.fired", "alert.no_data", "alert.resolved", "series.expired"] == [
        e for e in events if e != "alert.pending"
    ]
    assert [] == daemon.request("alerts")["alerts"]
    assert 0 == daemon.request("status")["evaluation"]["alerts_firing"]
    assert set() == keys(daemon, "latency")
