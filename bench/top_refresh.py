"""What one ``perfwarden top`` refresh costs the daemon at 10,000 series and in
an incident of 5,000 firing alerts: every page (before) against one screen (now).

One daemon with 10,000 series (a configured metric with levels and 9,999 tagged
gauges, 10 samples each); refreshes made by ``top``'s own poller
(:class:`perfwarden.commands.top.Poller`), alternating: ``fetch()`` asks
``stats`` for every series, page by page, as ``top`` did; ``fetch(0, rows=40)``
asks for the first 40 rows of the table's order, as ``top`` now does on a
40-line terminal (and the alerts panel's 6 alerts), and ``fetch(5000, rows=40)``
a page in the middle. Then the same on a daemon with 5,000 alerts firing
(``bench/alert_storm.py``'s incident), where ``alerts`` was the cost. Per refresh
the daemon's CPU time (user + system, from ``/proc`` through psutil: the daemon
alone, not the client) and the wall time of the refresh; medians.

    python bench/top_refresh.py --refreshes 7    # ~1 minute
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import TYPE_CHECKING

import psutil

# Run from bench/ (as `python bench/top_refresh.py`), as judgement_daemon.py does.
from alert_storm import CONFIG as STORM_CONFIG

from perfwarden.commands.top import Poller
from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

SERIES = 10_000
CONFIG = """\
version: 1
metrics:
  lat: {unit: ms, bound: upper, warning: 150, critical: 200}
"""
ALERTS = 5_000
#: bench/alert_storm.py's incident: every series of ``lat`` critical.
INCIDENT = STORM_CONFIG


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def refreshes(
    daemon: DaemonProcess, count: int, rows: dict[str, int]
) -> dict[str, tuple[float, float]]:
    """Daemon CPU and wall time per refresh (medians), every page vs ``rows``."""
    assert daemon.process is not None
    process = psutil.Process(daemon.process.pid)
    poller = Poller(daemon.control_path)
    ways: dict[str, Callable[[], object]] = {"every page (before)": poller.fetch}
    for name, first in rows.items():
        ways[name] = lambda first=first: poller.fetch(first, rows=40)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(count):
        for name, fetch in ways.items():
            time.sleep(0.5)  # the daemon's own work in between settles
            before, started = cpu(process), time.perf_counter()
            fetch()
            wall = time.perf_counter() - started
            runs[name].append((cpu(process) - before, wall))
    poller.close()
    return {
        name: (
            statistics.median(v[0] for v in values),
            statistics.median(v[1] for v in values),
        )
        for name, values in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=7)
    args = parser.parse_args()
    results: list[tuple[str, dict[str, tuple[float, float]]]] = []
    with DaemonProcess(CONFIG) as daemon:
        lines = [f"g:{i % 100}|g|#id:{i}" for i in range(SERIES - 1) for _ in range(10)]
        lines += [f"lat:{100 + i % 7}|ms" for i in range(10)]
        daemon.send_lines(lines, 100)
        wait_until(lambda: daemon.request("status")["series"] >= SERIES, timeout=300)
        rows = {
            "first screen, 40 rows (now)": 0,
            "a middle screen, 40 rows (now)": SERIES // 2,
        }
        results.append((f"{SERIES} series", refreshes(daemon, args.refreshes, rows)))
    env = {"PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with DaemonProcess(INCIDENT, extra_env=env) as daemon:
        daemon.send_stream("".join(f"lat:250|ms|#id:{i}\n" for i in range(ALERTS)) * 2)
        wait_until(
            lambda: daemon.request("status")["evaluation"]["alerts_firing"] >= ALERTS,
            timeout=300,
        )
        time.sleep(3)  # the dispatcher's work on the violations settles
        rows = {"first screen, 40 rows, 6 alerts (now)": 0}
        results.append(
            (f"{ALERTS} alerts firing", refreshes(daemon, args.refreshes, rows))
        )
    load = os.getloadavg()
    print(
        f"{args.refreshes} refreshes each, interleaved, medians "
        f"(shared machine, load average {load[0]:.1f} / {load[1]:.1f})"
    )
    print("| daemon | a `top` refresh fetching | daemon CPU | refresh wall time |")
    print("| --- | --- | --- | --- |")
    for scene, figures in results:
        for name, (spent, wall) in figures.items():
            print(
                f"| {scene} | {name} | {spent * 1000:.0f} ms | {wall * 1000:.0f} ms |"
            )


if __name__ == "__main__":
    main()
