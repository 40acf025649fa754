"""Disk writes of the state checkpoints under a light, steady load.

Starts a real daemon (default config: 1000-sample windows, a checkpoint every 2 s),
fills ``--series`` windows, then sends each series ``--rate`` samples per second for
``--seconds`` and reads the daemon's ``write_bytes`` from ``/proc/PID/io`` (bytes
that reached the block layer or the page cache on their way there: SQLite's WAL and
database pages). Prints the rate, the projection to a day, and the amplification:
bytes written per byte of sample data received (8 bytes a sample).

Usage::

    python bench/state_writes.py                        # 20 series x 10/s, 60 s
    python bench/state_writes.py --series 100 --rate 1 --seconds 120
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from perfwarden.testing import DaemonProcess


def write_bytes(pid: int) -> int:
    """Bytes the process has caused to be written to storage so far."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    msg = "no write_bytes in /proc/PID/io"
    raise RuntimeError(msg)


def lines(rng: random.Random, series: int) -> str:
    """One sample for each series."""
    return "\n".join(
        f"svc.latency:{rng.uniform(1.0, 100.0):.2f}|ms|#series:{s}"
        for s in range(series)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0, help="samples/s/series")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    with DaemonProcess("version: 1\n") as daemon:
        assert daemon.process is not None
        pid = daemon.process.pid
        for _ in range(1000):  # fill every window
            daemon.send_datagrams([lines(rng, args.series)])
        time.sleep(5.0)  # the fill's checkpoint
        before = write_bytes(pid)
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < args.seconds:
            daemon.send_datagrams([lines(rng, args.series)])
            sent += args.series
            time.sleep(max(0.0, (sent / args.series) / args.rate - elapsed))
        time.sleep(3.0)  # the last checkpoint
        written = write_bytes(pid) - before
    per_second = written / args.seconds
    data = sent * 8 / args.seconds
    print(
        f"{args.series} series x {args.rate:g} samples/s for {args.seconds:.0f} s: "
        f"{written / 1024:,.0f} KiB written, {per_second / 1024:,.1f} KiB/s "
        f"({per_second * 86400 / 2**30:,.2f} GiB/day), "
        f"{per_second / data:,.1f} bytes per byte of samples"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
