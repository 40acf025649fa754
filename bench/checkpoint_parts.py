"""Where a state checkpoint's time goes at 10k series x 1000 samples, part by part.

In-process, as ``bench/checkpoint_stall.py`` sets up (a ``Daemon`` not started, its
store filled with ``--series`` windows, start-up frozen out of the collector's
reach), then per steady checkpoint (every series got ``--new`` samples): the
snapshot taken at once (loop-thread CPU), the write run in a worker thread while a
ticker on the loop records how late it wakes (the writer's CPU, its wall time and
the loop's lag meanwhile), then the commit of the marks, freeing the snapshot and
the heap trim (CPU each). At the end: the objects the collector tracks outside the
frozen start-up, by type, the CPU of one full collection, the process' resident
memory and the samples left in the windows' pending lists (not yet in their
buffers) after the last checkpoint.

    python bench/checkpoint_parts.py
    PYTHONPATH=OTHER/daemon python bench/checkpoint_parts.py   # another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# Run from bench/ (as `python bench/checkpoint_parts.py`): the stall bench's feeders.
from checkpoint_stall import feed, feed_new, store_arguments

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.heap import freeze_startup, trim

if TYPE_CHECKING:
    from perfwarden.state.saved import Snapshot

TICK = 0.001


def writer_cpu(daemon: Daemon, snap: Snapshot, cpu: list[float]) -> None:
    """The write, in the worker thread, with that thread's CPU time."""
    started = time.thread_time()
    daemon.state._write(snap, False)
    cpu.append(time.thread_time() - started)


async def write_with_lag(daemon: Daemon, snap: Snapshot) -> tuple[float, float, float]:
    """Writer CPU, write wall time, and the loop's lag p99 while it ran (ms)."""
    cpu: list[float] = []
    lags: list[float] = []
    started = time.perf_counter()
    writing = asyncio.ensure_future(asyncio.to_thread(writer_cpu, daemon, snap, cpu))
    while not writing.done():
        asked = time.perf_counter()
        await asyncio.sleep(TICK)
        lags.append(time.perf_counter() - asked - TICK)
    await writing
    wall = time.perf_counter() - started
    lags.sort()
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    return cpu[0] * 1000, wall * 1000, p99 * 1000


async def run(args: argparse.Namespace) -> None:
    rows: dict[str, list[float]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        base = Path(tmp)
        config = parse_config(
            f"version: 1\nstatistics: {{window: {args.window}, max_series: "
            f"{args.series + 100}}}\n"
        )
        daemon = Daemon(config, base / "c.yaml", base / "run", base)
        daemon.state.restore()
        freeze_startup()
        rng = np.random.default_rng(1)
        keys = [f"bench|ms|#series:{i}" for i in range(args.series)]
        for start in range(0, args.series, 500):
            feed(daemon, keys[start : start + 500], rng.uniform(1, 1000, args.window))
        assert await daemon.state.checkpoint()
        state = daemon.state
        state.slice_seconds = None
        for _ in range(args.rounds):
            for start in range(0, args.series, 500):
                feed_new(daemon, keys[start : start + 500], args.new, rng)
            started = time.thread_time()
            snap, _ = await state._snapshot()
            rows["snapshot, loop CPU"].append((time.thread_time() - started) * 1000)
            cpu, wall, lag = await write_with_lag(daemon, snap)
            rows["write, writer CPU"].append(cpu)
            rows["write, wall"].append(wall)
            rows["loop lag p99 during the write"].append(lag)
            started = time.thread_time()
            state._committed(snap)
            rows["commit of the marks, loop CPU"].append(
                (time.thread_time() - started) * 1000
            )
            started = time.thread_time()
            del snap
            rows["freeing the snapshot, loop CPU"].append(
                (time.thread_time() - started) * 1000
            )
            started = time.thread_time()
            trim()
            rows["heap trim, loop CPU"].append((time.thread_time() - started) * 1000)
        pending = sum(s.window.total_count - s.window.flushed for s in daemon.store)
        resident = _resident_mib()
        await state.close()
        gc.collect()
        tracked = collections.Counter(type(o).__name__ for o in gc.get_objects())
        started = time.thread_time()
        gc.collect()
        full = (time.thread_time() - started) * 1000
    print(
        f"\n{args.series} series x {args.window} samples, "
        f"+{args.new[0]}-{args.new[1]} per series, "
        f"{args.rounds} checkpoints: median (min..max) ms\n"
    )
    print("| part | ms |\n| --- | --- |")
    for name, values in rows.items():
        print(
            f"| {name} | {statistics.median(values):.2f} "
            f"({min(values):.2f}..{max(values):.2f}) |"
        )
    top = ", ".join(f"{name} {count}" for name, count in tracked.most_common(4))
    print(f"\ntracked objects outside the frozen start-up: {sum(tracked.values())}")
    print(f"most common: {top}")
    print(f"one full collection: {full:.2f} ms CPU")
    print(f"resident: {resident:.1f} MiB, samples pending in lists: {pending}")


def _resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    store_arguments(parser)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
