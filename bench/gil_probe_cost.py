"""What the GIL probe thread costs while it runs: CPU per second.

Runs the daemon's :class:`~perfwarden.sampling.loop_watch.LoopWatch` alone on an
event loop in a fresh process for ``--seconds``, without and with a
:class:`~perfwarden.sampling.gil_probe.GilProbe` wanted all along (in the daemon
it runs only while a plain plugin call does), interleaved ``--rounds`` times;
prints each process's CPU time per second of wall time and the medians.

Usage: ``python bench/gil_probe_cost.py [--seconds 10] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = """\
import asyncio, resource, sys, time
from perfwarden.sampling.gil_probe import GilProbe
from perfwarden.sampling.loop_watch import LoopWatch

async def main(seconds: float, probe: bool) -> None:
    if probe:
        GilProbe().want()
    watching = asyncio.create_task(LoopWatch().run())
    await asyncio.sleep(0.5)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before, started = usage.ru_utime + usage.ru_stime, time.monotonic()
    await asyncio.sleep(seconds)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime - before
    print(used / (time.monotonic() - started))
    watching.cancel()

asyncio.run(main(float(sys.argv[1]), sys.argv[2] == "probe"))
"""


def cpu_share(seconds: float, mode: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(seconds), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shares: dict[str, list[float]] = {"no probe": [], "probe": []}
    for _ in range(args.rounds):
        for mode, values in shares.items():
            values.append(cpu_share(args.seconds, mode.replace(" ", "-")))
    for mode, values in shares.items():
        runs = ", ".join(f"{v * 1000:.2f}" for v in values)
        median = statistics.median(values) * 1000
        print(f"{mode:>9}: {median:.2f} ms CPU per s (runs: {runs})")


if __name__ == "__main__":
    main()
