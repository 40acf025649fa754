"""How long a state checkpoint holds the event loop at 10k series x 1000 samples.

In-process: a ``Daemon`` (not started; its store, evaluator and state store are
real) is filled with ``--series`` windows of ``--window`` samples; then, on one
event loop, a ticker task wakes every millisecond and records how late it woke,
while checkpoints run back to back, each after every series got ``--new`` new
samples (fed in slices that yield, so that feeding is not what is measured). The
same run alternates the sliced snapshot (the daemon's) with the old one taken all
at once (``slice_seconds = None``), checkpoint by checkpoint, so both see the same
machine load. The first checkpoint (every window written whole) is reported apart.
The garbage collections during each checkpoint (any thread) are counted and timed
with ``gc.callbacks``; ``--gc-threshold`` sets ``gc.set_threshold`` for the run.
``--new 1-5`` gives each series 1 to 5 new samples (drawn per series) instead of
10; the CPU of ingesting them is reported beside the checkpoint's (work a
checkpoint leaves to ingest shows there); ``--no-at-once`` leaves out the
all-at-once snapshot.

    python bench/checkpoint_stall.py                 # ~15-30 s
    python bench/checkpoint_stall.py --new 1-5 --no-at-once
    python bench/checkpoint_stall.py --series 2000   # quicker
    PYTHONPATH=OTHER/daemon python bench/checkpoint_stall.py   # another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.heap import freeze_startup, trim
from perfwarden.ingest.statsd import Batch
from perfwarden.state.persistence import SNAPSHOT_SLICE

TICK = 0.001


class Collections:
    """Garbage collections seen through ``gc.callbacks``: count per generation and
    the CPU time of the collecting thread."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._seen)

    def _seen(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
            return
        self.counts[info["generation"]] += 1
        self.seconds += time.thread_time() - self._started

    def take(self) -> tuple[list[int], float]:
        """What was seen since the last take."""
        seen = (self.counts, self.seconds)
        self.counts, self.seconds = [0, 0, 0], 0.0
        return seen


COLLECTIONS = Collections()


def feed(daemon: Daemon, keys: list[str], values: np.ndarray) -> None:
    batch = Batch(received=len(keys), accepted=len(keys))
    for key in keys:
        batch.values[key] = values.tolist()
    daemon.store.ingest(batch, time.monotonic())


def feed_new(
    daemon: Daemon, keys: list[str], new: tuple[int, int], rng: np.random.Generator
) -> None:
    """Each series ``new[0]`` to ``new[1]`` new samples (as many as the range
    says, drawn per series), in one batch."""
    counts = rng.integers(new[0], new[1] + 1, len(keys))
    values = rng.uniform(1, 1000, int(counts.sum())).tolist()
    batch = Batch(received=len(values), accepted=len(values))
    at = 0
    for key, count in zip(keys, counts.tolist(), strict=True):
        batch.values[key] = values[at : at + count]
        at += count
    daemon.store.ingest(batch, time.monotonic())


def new_samples(text: str) -> tuple[int, int]:
    """``--new``: ``10`` or a range ``1-5``."""
    low, _, high = text.partition("-")
    return int(low), int(high or low)


async def ticker(lags: list[float], busy: list[float], stop: asyncio.Event) -> None:
    """Wake every TICK; record how much later than asked each wake-up came (wall
    time: includes being preempted on a shared machine) and how much CPU the loop
    thread spent between wake-ups (the work that held the loop, preemption aside)."""
    while not stop.is_set():
        asked, cpu = time.perf_counter(), time.thread_time()
        await asyncio.sleep(TICK)
        lags.append(time.perf_counter() - asked - TICK)
        busy.append(time.thread_time() - cpu)


Measured = tuple[list[float], list[float], float, float, tuple[list[int], float]]


async def measured(daemon: Daemon, sliced: bool | None) -> Measured:
    """Loop lags and loop-thread CPU per wake-up during one checkpoint (None: no
    checkpoint, 100 ms of the ticker alone), the checkpoint's wall time, the
    process CPU it took (loop thread and writer; the ticker's own is ~1%) and the
    garbage collections meanwhile."""
    daemon.state.slice_seconds = SNAPSHOT_SLICE if sliced else None
    lags: list[float] = []
    busy: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(ticker(lags, busy, stop))
    await asyncio.sleep(0.01)
    lags.clear()
    busy.clear()
    COLLECTIONS.take()
    started, cpu = time.perf_counter(), time.process_time()
    if sliced is None:
        await asyncio.sleep(0.1)
    else:
        assert await daemon.state.checkpoint()
        await asyncio.sleep(0)  # as the daemon's checkpoint loop does after one
        trim()
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    stop.set()
    await task
    return lags, busy, took, cpu, COLLECTIONS.take()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        base = Path(tmp)
        config = parse_config(
            f"version: 1\nstatistics: {{window: {args.window}, max_series: "
            f"{args.series + 100}}}\n"
        )
        daemon = Daemon(config, base / "c.yaml", base / "run", base)
        daemon.state.restore()
        if not args.no_freeze:
            freeze_startup()  # as the daemon does at the end of its start-up
        if args.gc_threshold:
            gc.set_threshold(*(int(n) for n in args.gc_threshold.split(",")))
        rng = np.random.default_rng(1)
        keys = [f"bench|ms|#series:{i}" for i in range(args.series)]
        for start in range(0, args.series, 500):
            feed(daemon, keys[start : start + 500], rng.uniform(1, 1000, args.window))
        first = await measured(daemon, sliced=True)
        kinds: tuple[bool | None, ...] = (
            (None, True) if args.no_at_once else (None, True, False)
        )
        runs: dict[bool | None, list[Measured]] = {
            kind: [] for kind in (None, True, False)
        }
        fed: list[float] = []  # ingest CPU of the new samples, per round
        for round_ in range(args.rounds):
            turn = round_ % len(kinds)
            for kind in kinds[turn:] + kinds[:turn]:
                cpu = time.process_time()
                for start in range(0, args.series, 500):
                    feed_new(daemon, keys[start : start + 500], args.new, rng)
                    await asyncio.sleep(0)
                fed.append(time.process_time() - cpu)
                runs[kind].append(await measured(daemon, kind))
        await daemon.state.close()

    def row(name: str, parts: list[Measured]) -> str:
        lags = sorted(lag * 1000 for part in parts for lag in part[0])
        busy = sorted(cpu * 1000 for part in parts for cpu in part[1])

        def p99(values: list[float]) -> float:
            return values[min(len(values) - 1, int(len(values) * 0.99))]

        took = statistics.median(part[2] for part in parts) * 1000
        cpu = statistics.median(part[3] for part in parts) * 1000
        gcs = [sum(part[4][0][g] for part in parts) / len(parts) for g in range(3)]
        gc_ms = sum(part[4][1] for part in parts) / len(parts) * 1000
        return (
            f"| {name} | {p99(lags):.1f} | {lags[-1]:.1f} | {p99(busy):.1f} | "
            f"{busy[-1]:.1f} | {took:.0f} | {cpu:.0f} | "
            f"{gcs[0]:.1f} / {gcs[1]:.1f} / {gcs[2]:.2f} | {gc_ms:.1f} |"
        )

    print(
        f"\n{args.series} series x {args.window} samples, +{args.new[0]}-{args.new[1]} "
        "samples per "
        f"series between checkpoints, {args.rounds} rounds (shared machine), "
        f"gc thresholds {gc.get_threshold()}, per checkpoint\n"
    )
    print(
        "| loop during | lag p99 ms | lag max ms | loop CPU per turn p99 ms | "
        "max ms | checkpoint ms | CPU ms | collections young / middle / full | "
        "GC CPU ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(row("first checkpoint (every window whole), sliced", [first]))
    print(row("steady checkpoints, sliced snapshot (now)", runs[True]))
    if runs[False]:
        print(row("steady checkpoints, snapshot at once (before)", runs[False]))
    print(row("no checkpoint (the machine's noise floor)", runs[None]))
    sliced = statistics.median(part[3] for part in runs[True]) * 1000
    print(
        f"\ningest of the new samples between two checkpoints: median "
        f"{statistics.median(fed) * 1000:.0f} ms CPU; with a sliced checkpoint "
        f"{statistics.median(fed) * 1000 + sliced:.0f} ms"
    )


def store_arguments(parser: argparse.ArgumentParser) -> None:
    """The store's size and what changes between checkpoints (shared with
    bench/checkpoint_parts.py)."""
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument(
        "--new",
        type=new_samples,
        default=(10, 10),
        help="new samples per series between checkpoints: 10, or a range 1-5",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    store_arguments(parser)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--no-freeze", action="store_true", help="skip the start-up's gc.freeze()"
    )
    parser.add_argument(
        "--no-at-once",
        action="store_true",
        help="leave out the snapshot taken at once (the sliced one's baseline)",
    )
    parser.add_argument(
        "--gc-threshold", help="gc.set_threshold for the run, e.g. 700,10,10"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
