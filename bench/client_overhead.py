"""Per-call overhead of ``perfwarden.client``'s ``timer()`` around an empty function.

Three variants, interleaved in every repeat so that drift hits them alike:

* ``bare``       ``f()``
* ``decorator``  ``g()`` where ``g = client.timer("bench.decorator")(f)``
* ``context``    ``with client.timer("bench.context"): f()`` (a Timer made per call,
                 as application code writes it)

each with the daemon up (a real ``perfwarden run`` from
:class:`perfwarden.testing.DaemonProcess`; lines are buffered and sent in 8 KiB
datagrams, and what the daemon's queue cannot take is dropped and counted) and down
(an empty socket directory: every line is dropped). The figure is the median over
repeats of the time per call; the overhead is that minus the bare call's median.

Usage::

    python bench/client_overhead.py                    # ~15 s
    python bench/client_overhead.py --calls 200000 --repeats 11 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwarden.client import Client
from perfwarden.testing import DaemonProcess

if TYPE_CHECKING:
    from collections.abc import Callable

TARGET_US = 2.0


def empty() -> None:
    """The function being timed."""


def per_call(run: Callable[[int], None], calls: int) -> float:
    """Seconds per call of ``run(calls)``."""
    started = time.perf_counter()
    run(calls)
    return (time.perf_counter() - started) / calls


def variants(client: Client) -> dict[str, Callable[[int], None]]:
    """The loops to time, each calling its variant ``n`` times."""
    decorated = client.timer("bench.decorator")(empty)
    timer = client.timer

    def bare(n: int) -> None:
        for _ in range(n):
            empty()

    def decorator(n: int) -> None:
        for _ in range(n):
            decorated()

    def context(n: int) -> None:
        for _ in range(n):
            with timer("bench.context"):
                empty()

    return {"bare": bare, "decorator": decorator, "context": context}


def measure(client: Client, calls: int, repeats: int) -> dict[str, Any]:
    """Median seconds per call of each variant, and the client's counters."""
    loops = variants(client)
    for loop in loops.values():  # warm-up
        loop(calls // 10)
    times: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, loop in loops.items():
            times[name].append(per_call(loop, calls))
    client.flush()
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "median_ns": {name: round(m * 1e9, 1) for name, m in medians.items()},
        "overhead_ns": {
            name: round((medians[name] - medians["bare"]) * 1e9, 1)
            for name in loops
            if name != "bare"
        },
        "sent": client.sent,
        "dropped": client.dropped,
    }


def main(argv: list[str] | None = None) -> int:
    """Run both scenarios, print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "calls": args.calls,
        "repeats": args.repeats,
        "target_overhead_ns": TARGET_US * 1000,
    }
    with DaemonProcess() as daemon:
        client = Client(daemon.socket_dir, state_dir=daemon.state_dir)
        results["daemon_up"] = measure(client, args.calls, args.repeats)
    with tempfile.TemporaryDirectory(prefix="pw-bench-", dir="/tmp") as empty_dir:
        client = Client(empty_dir, state_dir=empty_dir)
        results["daemon_down"] = measure(client, args.calls, args.repeats)

    print(f"{'scenario':<12} {'variant':<10} {'per call':>10} {'overhead':>10}")
    for scenario in ("daemon_up", "daemon_down"):
        data = results[scenario]
        for name, ns in data["median_ns"].items():
            overhead = data["overhead_ns"].get(name)
            shown = "-" if overhead is None else f"{overhead / 1000:.3f} us"
            print(f"{scenario:<12} {name:<10} {ns / 1000:>7.3f} us {shown:>10}")
        print(f"{'':<12} lines sent {data['sent']}, dropped {data['dropped']}")
    worst = max(
        ns
        for s in ("daemon_up", "daemon_down")
        for ns in results[s]["overhead_ns"].values()
    )
    verdict = "meets" if worst < TARGET_US * 1000 else "MISSES"
    print(f"worst overhead {worst / 1000:.3f} us: {verdict} the {TARGET_US} us target")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
