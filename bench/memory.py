"""Resident memory of a real perfwarden daemon: idle, and holding 100 x 1000 samples.

Method
------
Each repeat starts a fresh ``python -m perfwarden run`` on temporary directories
(:class:`perfwarden.testing.DaemonProcess`, config ``version: 1``: the defaults,
window 1000, a checkpoint every 2 s, every built-in plugin loaded) and reads the
kernel's figures from ``/proc/PID/status`` (``VmRSS`` = ``RssAnon`` + ``RssFile``,
in MiB, the same number ``perfwarden status`` reports as ``memory.rss_mb``):

* **idle**: ``--settle`` seconds (default 3) after ``READY=1``, so the first
  sampler pass, self-monitor sample and state checkpoint have run;
* **filled**: after 100 series (``--series``) x 1000 samples (``--samples``), sent as
  datagrams of 32 timing lines, every window full, then ``--settle`` seconds more
  (an evaluation pass and a checkpoint of the full state have run).

The figures printed are medians over ``--repeats`` fresh daemons (default 5), with
the spread. ``--env NAME=VALUE`` (repeatable) runs the daemons with extra environment
variables, to compare a setting against the default in the same run.
``--imports`` prints instead what each of the daemon's imports adds to a fresh
interpreter's RSS, in the order ``perfwarden run`` imports them::

    python bench/memory.py
    python bench/memory.py --repeats 3 --json
    python bench/memory.py --env OPENBLAS_NUM_THREADS=4   # compare a setting
    python bench/memory.py --imports
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import textwrap
import time
from typing import Any

from perfwarden.testing import DaemonProcess

CONFIG = "version: 1\n"
LINES_PER_DATAGRAM = 32
_FIELDS = ("VmRSS", "RssAnon", "RssFile", "Threads")


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS / RssAnon / RssFile in MiB and the thread count of ``pid``."""
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in _FIELDS:
                number = int(value.split()[0])
                found[key] = number if key == "Threads" else round(number / 1024, 1)
    return found


def fill_datagrams(series: int, samples: int, seed: int = 7) -> list[bytes]:
    """``series`` x ``samples`` timing lines, 32 to a datagram."""
    rng = random.Random(seed)
    lines = [
        b"bench.metric:%.3f|ms|#series:%d\n" % (rng.uniform(1.0, 1000.0), i % series)
        for i in range(series * samples)
    ]
    return [
        b"".join(lines[i : i + LINES_PER_DATAGRAM])
        for i in range(0, len(lines), LINES_PER_DATAGRAM)
    ]


def measure_once(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """One fresh daemon: its idle and filled figures."""
    payloads = fill_datagrams(args.series, args.samples)
    with DaemonProcess(CONFIG, extra_env=env) as daemon:
        assert daemon.process is not None
        pid = daemon.process.pid
        time.sleep(args.settle)
        idle = proc_status(pid)
        before = daemon.ingest()["received"]
        daemon.send_datagrams(payloads)
        after = daemon.wait_received(before + args.series * args.samples)
        time.sleep(args.settle)
        filled = proc_status(pid)
        series = daemon.request("stats")["series"]
        full = sum(1 for s in series if s["sample_size"] >= args.samples)
        return {
            "idle": idle,
            "filled": filled,
            "accepted": after["accepted"],
            "full_windows": full,
        }


#: Run in a fresh interpreter by ``--imports``: the daemon's imports in the order
#: ``perfwarden run`` makes them (``commands/run.py`` first imports structlog and
#: numpy its own way), then the plugins, printing VmRSS after each.
_IMPORTS = textwrap.dedent(
    """
    import importlib, sys

    def rss():
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    steps = [
        ("interpreter", "sys"),
        ("importlib.metadata (email ...)", "importlib.metadata"),
        ("perfwarden.cli (argparse)", "perfwarden.cli"),
        ("asyncio (ssl, concurrent ...)", "asyncio"),
        ("perfwarden.commands.run", "perfwarden.commands.run"),
        ("structlog (lean)", "_import_structlog_lean"),
        ("numpy (single-threaded BLAS)", "_import_numpy_single_threaded"),
        ("yaml", "yaml"),
        ("psutil", "psutil"),
        ("watchdog.observers", "watchdog.observers"),
        ("sqlite3", "sqlite3"),
        ("perfwarden.app (the rest)", "perfwarden.app"),
    ]
    before = 0.0
    for label, name in steps:
        if name.startswith("_"):
            getattr(sys.modules["perfwarden.commands.run"], name)()
        else:
            importlib.import_module(name)
        now = rss()
        print(f"{label:32} {now - before:+6.1f}  {now:6.1f}")
        before = now
    metadata = sys.modules["importlib.metadata"]
    for entry in metadata.entry_points(group="perfwarden.optimizers"):
        entry.load()
    now = rss()
    print(f"{'the plugins (entry points)':32} {now - before:+6.1f}  {now:6.1f}")
    """
)


def print_imports() -> None:
    """What each import adds to a fresh interpreter's VmRSS (MiB)."""
    print(f"{'import':32} {'+MiB':>6}  {'VmRSS':>6}")
    subprocess.run([sys.executable, "-c", _IMPORTS], check=True)


def _median_row(runs: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in _FIELDS:
        values = [run[phase][key] for run in runs]
        row[key] = {
            "median": round(statistics.median(values), 2),
            "min": min(values),
            "max": max(values),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh daemons (5)")
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--samples", type=int, default=1000, help="per series")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds before each reading (3)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the daemons (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--imports", action="store_true", help="the RSS each import adds, then exit"
    )
    args = parser.parse_args()
    if args.imports:
        print_imports()
        return
    env = dict(item.split("=", 1) for item in args.env)
    runs = [measure_once(args, env) for _ in range(args.repeats)]
    result = {
        "repeats": args.repeats,
        "env": env,
        "idle": _median_row(runs, "idle"),
        "filled": _median_row(runs, "filled"),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.repeats} fresh daemons, {args.series} series x {args.samples} samples"
        + (f", env {env}" if env else "")
    )
    print(f"{'':8}{'VmRSS MiB':>20}{'RssAnon':>10}{'RssFile':>10}{'threads':>9}")
    for phase in ("idle", "filled"):
        row = result[phase]
        rss = row["VmRSS"]
        print(
            f"{phase:8}{rss['median']:>8} ({rss['min']}-{rss['max']})".ljust(28)
            + f"{row['RssAnon']['median']:>10}{row['RssFile']['median']:>10}"
            + f"{row['Threads']['median']:>9}"
        )
    incomplete = [r for r in runs if r["full_windows"] != args.series]
    if incomplete:
        print(f"warning: {len(incomplete)} runs did not fill every window")


if __name__ == "__main__":
    main()
