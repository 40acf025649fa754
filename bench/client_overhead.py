"""Per-call overhead of ``perfwarden.client``'s ``timer()``, and loss in a fast loop.

Per call: three variants, interleaved in every repeat so that drift hits them alike:

* ``bare``       ``f()``
* ``decorator``  ``g()`` where ``g = client.timer("bench.decorator")(f)``
* ``context``    ``with client.timer("bench.context"): f()`` (a Timer made per call,
                 as application code writes it)

With ``--baseline REV`` the client of git revision ``REV`` (loaded from
``git show``) runs the same two timed variants in the same interleaved repeats, so
the comparison holds on a shared machine. Each with the daemon up (a real
``perfwarden run`` from :class:`perfwarden.testing.DaemonProcess`, taking all it
can) and down (an empty socket directory: every line is dropped). Each timed loop
ends with the client's flush (for this client: until the daemon took every line),
so delivering is counted. Two clocks: wall time, and the CPU time of this process
(every thread, the client's flusher included; the daemon is another process). On a
shared machine the CPU time is the steadier: time spent waiting for a core is not
in it. The figure is the median over repeats of the time per call; the overhead is
that minus the bare call's median.

Loss: a 100 000-call ``timing()`` loop, then ``flush``, against a fresh daemon: lines
the client sent and dropped and lines the daemon received, for this client, the
baseline's, and the ``datadog`` package's DogStatsd with its 8 KiB buffering.

Usage::

    python bench/client_overhead.py                    # ~30 s
    python bench/client_overhead.py --baseline d90a0cf --repeats 11 --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwarden.client import Client
from perfwarden.testing import DaemonProcess

if TYPE_CHECKING:
    from collections.abc import Callable

TARGET_US = 1.5
LOSS_CALLS = 100_000
_CLIENT_FILES = ("__init__.py", "_knob_watcher.py")


def empty() -> None:
    """The function being timed."""


def baseline_client_class(rev: str, into: Path) -> Any:
    """The ``Client`` class of git revision *rev*, importable beside this one."""
    package = into / "perfwarden_baseline_client"
    package.mkdir()
    for name in _CLIENT_FILES:
        source = subprocess.run(
            ["git", "show", f"{rev}:daemon/perfwarden/client/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        source = source.replace("perfwarden.client.", "perfwarden_baseline_client.")
        (package / name).write_text(source)
    sys.path.insert(0, str(into))
    return importlib.import_module("perfwarden_baseline_client").Client


def per_call(
    run: Callable[[int], None], calls: int, finish: Callable[[], object]
) -> tuple[float, float]:
    """Seconds per call of ``run(calls)`` then ``finish()`` (the client's flush, so
    that the cost of delivering the lines is counted where it belongs): wall time,
    and CPU time of this process (all its threads, so the client's flusher too)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(calls)
    finish()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


Loop = tuple["Callable[[int], None]", "Callable[[], object]"]


def variants(clients: dict[str, Any]) -> dict[str, Loop]:
    """The loops to time, each calling its variant ``n`` times, with the flush
    that completes it."""

    def bare(n: int) -> None:
        for _ in range(n):
            empty()

    loops: dict[str, Loop] = {"bare": (bare, lambda: None)}
    for label, client in clients.items():
        decorated = client.timer("bench.decorator")(empty)
        timer = client.timer

        def decorator(n: int, decorated: Callable[[], None] = decorated) -> None:
            for _ in range(n):
                decorated()

        def context(n: int, timer: Callable[[str], Any] = timer) -> None:
            for _ in range(n):
                with timer("bench.context"):
                    empty()

        finish = _finisher(client)
        loops[f"decorator{label}"] = (decorator, finish)
        loops[f"context{label}"] = (context, finish)
    return loops


def _finisher(client: Any) -> Callable[[], object]:
    """Flush, waiting for the daemon to take the backlog when the client can."""
    if "timeout" in (client.flush.__doc__ or ""):
        return lambda: client.flush(30.0)
    return client.flush


def measure(clients: dict[str, Any], calls: int, repeats: int) -> dict[str, Any]:
    """Median seconds per call of each variant (wall and CPU), and the counters."""
    loops = variants(clients)
    for loop, finish in loops.values():  # warm-up
        loop(calls // 10)
        finish()
    wall: dict[str, list[float]] = {name: [] for name in loops}
    cpu: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for name, (loop, finish) in loops.items():
            w, c = per_call(loop, calls, finish)
            wall[name].append(w)
            cpu[name].append(c)
    result: dict[str, Any] = {}
    for clock, times in (("wall", wall), ("cpu", cpu)):
        medians = {name: statistics.median(values) for name, values in times.items()}
        result[f"{clock}_median_ns"] = {
            name: round(m * 1e9, 1) for name, m in medians.items()
        }
        result[f"{clock}_overhead_ns"] = {
            name: round((medians[name] - medians["bare"]) * 1e9, 1)
            for name in loops
            if name != "bare"
        }
    result["counters"] = {
        label or "current": {"sent": c.sent, "dropped": c.dropped}
        for label, c in clients.items()
    }
    return result


def loss_of(make: Callable[[DaemonProcess], Any]) -> dict[str, int]:
    """Lines of a 100 000-call loop: sent, dropped, received by a fresh daemon."""
    with DaemonProcess() as daemon:
        client = make(daemon)
        for i in range(LOSS_CALLS):
            client.timing("bench.loss", i % 100)
        if hasattr(client, "sent"):  # a perfwarden client
            client.flush(*([60.0] if "timeout" in client.flush.__doc__ else []))
        else:
            client.flush()
        previous, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 2.0:  # until the daemon stops counting
            received = daemon.ingest()["received"]
            if received != previous:
                previous, stable_since = received, time.monotonic()
            time.sleep(0.1)
        counts = {"received": previous}
        if hasattr(client, "sent"):
            counts |= {"sent": client.sent, "dropped": client.dropped}
        return counts


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--baseline", metavar="REV", help="git revision to compare")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "calls": args.calls,
        "repeats": args.repeats,
        "baseline": args.baseline,
        "target_overhead_ns": TARGET_US * 1000,
    }
    with tempfile.TemporaryDirectory(prefix="pw-bench-", dir="/tmp") as scratch:
        classes: dict[str, Any] = {"": Client}
        if args.baseline:
            classes["@base"] = baseline_client_class(args.baseline, Path(scratch))
        with DaemonProcess() as daemon:
            clients = {
                label: cls(daemon.socket_dir, state_dir=daemon.state_dir)
                for label, cls in classes.items()
            }
            results["daemon_up"] = measure(clients, args.calls, args.repeats)
        empty_dir = Path(scratch) / "empty"
        empty_dir.mkdir()
        clients = {
            label: cls(empty_dir, state_dir=empty_dir) for label, cls in classes.items()
        }
        results["daemon_down"] = measure(clients, args.calls, args.repeats)

        results["loss"] = {}
        for label, cls in classes.items():
            results["loss"][label or "current"] = loss_of(
                lambda d, cls=cls: cls(d.socket_dir, state_dir=d.state_dir)
            )
    from datadog.dogstatsd.base import DogStatsd

    results["loss"]["datadog"] = loss_of(
        lambda d: DogStatsd(
            socket_path=str(d.socket_dir / "metrics.sock"),
            disable_telemetry=True,
            disable_buffering=False,
        )
    )

    print(f"{'scenario':<12} {'variant':<16} {'wall/call':>10} {'overhead':>10} "
          f"{'cpu/call':>10} {'overhead':>10}")  # fmt: skip
    for scenario in ("daemon_up", "daemon_down"):
        data = results[scenario]
        for name, ns in data["wall_median_ns"].items():
            row = f"{scenario:<12} {name:<16} {ns / 1000:>7.3f} us "
            for clock in ("wall", "cpu"):
                overhead = data[f"{clock}_overhead_ns"].get(name)
                shown = "-" if overhead is None else f"{overhead / 1000:.3f} us"
                if clock == "cpu":
                    row += f"{data['cpu_median_ns'][name] / 1000:>7.3f} us "
                row += f"{shown:>10} "
            print(row.rstrip())
        for label, counts in data["counters"].items():
            sent, dropped = counts["sent"], counts["dropped"]
            print(f"{'':<12} {label}: sent {sent}, dropped {dropped}")
    for name, counts in results["loss"].items():
        shown = ", ".join(f"{key} {value}" for key, value in counts.items())
        print(f"{LOSS_CALLS} calls, {name}: {shown}")
    for clock in ("wall", "cpu"):
        if args.baseline:
            for scenario in ("daemon_up", "daemon_down"):
                o = results[scenario][f"{clock}_overhead_ns"]
                for variant in ("decorator", "context"):
                    ratio = o[variant] / o[f"{variant}@base"]
                    print(f"{clock}: {scenario} {variant}: {ratio:.2f}x the baseline's")
        worst = max(
            ns
            for s in ("daemon_up", "daemon_down")
            for name, ns in results[s][f"{clock}_overhead_ns"].items()
            if "@" not in name
        )
        verdict = "meets" if worst < TARGET_US * 1000 else "MISSES"
        print(
            f"{clock}: worst overhead {worst / 1000:.3f} us: "
            f"{verdict} the {TARGET_US} us target"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
