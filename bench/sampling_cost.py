"""What sampling one process costs the daemon, by how it is matched.

Starts a real daemon whose one ``processes:`` entry samples a sleeping child
process every 0.2 s, matched by ``pid``, by ``cmdline`` regular expression or by
``name`` (a daemon each, interleaved), waits for ``--scans`` scans, and prints
the sampler's own accounting from ``status``: the wall time of a scan (match
and read, in its worker thread, off the event loop) per sampled process.

    python bench/sampling_cost.py            # ~15 s
    python bench/sampling_cost.py --scans 100 --repeats 3

A ``cmdline`` or ``name`` match lists every process on the machine at each scan,
so its cost grows with the number of processes (printed beside the figures).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import psutil

from perfwarden.testing import DaemonProcess, wait_until

_MARK = "perfwarden-sampling-cost-probe"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=50, help="scans per entry")
    parser.add_argument("--repeats", type=int, default=3, help="fresh daemons")
    args = parser.parse_args()
    per_kind: dict[str, list[float]] = {"pid": [], "cmdline": [], "name": []}
    for _ in range(args.repeats):
        for kind, costs in per_kind.items():  # interleaved, one entry per daemon
            costs.append(one_run(kind, args.scans))
    print(f"processes on this machine: {len(psutil.pids())}")
    for kind, costs in per_kind.items():
        shown = ", ".join(f"{c:.3f}" for c in costs)
        print(
            f"match by {kind:8} median {statistics.median(costs):.3f} ms "
            f"per process per scan (runs: {shown})"
        )


def one_run(kind: str, scans: int) -> float:
    """Cost per process per scan (ms) of one entry matching a sleeping child by
    ``kind``, from the daemon's status."""
    probe = subprocess.Popen(
        [sys.executable, "-c", f"import time; time.sleep(600)  # {_MARK}"]
    )
    try:
        match = {
            "pid": str(probe.pid),
            "cmdline": f'"{_MARK}"',
            # Every process of that name (python3 ones: a few) is sampled.
            "name": f'"{psutil.Process(probe.pid).name()}"',
        }[kind]
        config = f"""\
version: 1
processes:
  - name: probe
    match: {{{kind}: {match}}}
    interval: 0.2s
"""
        with DaemonProcess(config) as daemon:

            def entry() -> dict[str, float]:
                found: dict[str, float] = daemon.request("status")["sampler"]["probe"]
                return found

            wait_until(lambda: entry()["scans"] >= scans, timeout=60 + scans)
            return entry()["cost_per_process_ms"]
    finally:
        probe.kill()
        probe.wait()


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s)")
