"""What one ``perfwarden top`` refresh costs the daemon at 10,000 series: every
page of ``stats`` (before) against one screen of it (now).

One daemon with 10,000 series (a configured metric with levels and 9,999 tagged
gauges, 10 samples each); refreshes made by ``top``'s own poller
(:class:`perfwarden.commands.top.Poller`), alternating: ``fetch()`` asks
``stats`` for every series, page by page, as ``top`` did; ``fetch(0, rows=40)``
asks for the first 40 rows of the table's order, as ``top`` now does on a
40-line terminal, and ``fetch(5000, rows=40)`` a page in the middle. Per refresh
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


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=7)
    args = parser.parse_args()
    with DaemonProcess(CONFIG) as daemon:
        lines = [f"g:{i % 100}|g|#id:{i}" for i in range(SERIES - 1) for _ in range(10)]
        lines += [f"lat:{100 + i % 7}|ms" for i in range(10)]
        daemon.send_lines(lines, 100)
        wait_until(lambda: daemon.request("status")["series"] >= SERIES, timeout=300)
        assert daemon.process is not None
        process = psutil.Process(daemon.process.pid)
        poller = Poller(daemon.control_path)
        ways: dict[str, Callable[[], object]] = {
            "every page (before)": poller.fetch,
            "first screen, 40 rows (now)": lambda: poller.fetch(0, rows=40),
            "a middle screen, 40 rows (now)": lambda: poller.fetch(5000, rows=40),
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for _ in range(args.refreshes):
            for name, fetch in ways.items():
                time.sleep(0.5)  # the daemon's own work in between settles
                before, started = cpu(process), time.perf_counter()
                fetch()
                wall = time.perf_counter() - started
                runs[name].append((cpu(process) - before, wall))
        poller.close()
    load = os.getloadavg()
    print(
        f"{SERIES} series, {args.refreshes} refreshes each, interleaved, medians "
        f"(shared machine, load average {load[0]:.1f} / {load[1]:.1f})"
    )
    print("| a `top` refresh fetching | daemon CPU | refresh wall time |")
    print("| --- | --- | --- |")
    for name, values in runs.items():
        spent = statistics.median(v[0] for v in values) * 1000
        wall = statistics.median(v[1] for v in values) * 1000
        print(f"| {name} | {spent:.0f} ms | {wall:.0f} ms |")


if __name__ == "__main__":
    main()
