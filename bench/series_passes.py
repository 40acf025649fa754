"""What a line costs by how often its series was seen: first, second, later.

In process, with the store as the daemon runs it (nothing judged, so the parser
appends to the windows directly): ``--series`` untagged names round-robin over
types ms/g/c, 10 lines a datagram, a commit every 16 datagrams (the shape of the
shared harness's load generator). Pass 1 creates every series, pass 2 teaches the
parser each one's route, later passes are the steady state; printed per pass in
microseconds of wall time per line, the median of ``--repeats`` fresh stores, for
each ``--series`` count.

    python bench/series_passes.py                        # 100 and 10,000 series
    python bench/series_passes.py --series 2000 --passes 12
    python bench/series_passes.py --passes 300 --neighbour 32

``--neighbour MB`` runs a process beside it that streams through MB MiB of
memory in a loop, as the daemon's neighbours do in the shared harness (the load
generator, the kernel copying datagrams): alone, a line at 10,000 series costs
about what one at 100 does, because the series' lists, windows and routes stay
in the shared cache; with a neighbour they do not, and the difference shows.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import numpy as np

from perfwarden.config.load import parse_config
from perfwarden.heap import freeze_startup
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.store import MetricStore

TYPES = ("ms", "g", "c")


def passes(tag: str, series: int, count: int) -> list[float]:
    """Microseconds per line of each of ``count`` passes over ``series`` names."""
    config = parse_config(f"version: 1\nstatistics: {{max_series: {series + 1}}}\n")
    store = MetricStore(config.metric_window, series + 1, lambda name: None)
    store.set_direct(True)
    lines = [f"bench.{tag}.m{i}:{i % 97}|{TYPES[i % 3]}" for i in range(series)]
    packets = ["\n".join(lines[i : i + 10]).encode() for i in range(0, series, 10)]
    costs = []
    for _ in range(count):
        started = time.perf_counter()
        batch = Batch()
        for number, packet in enumerate(packets, 1):
            parse(packet, batch, 8192, sinks=store.sinks, routes=store.routes)
            if number % 16 == 0:
                store.ingest(batch, 1.0, owned=True)
                batch = Batch()
        store.ingest(batch, 1.0, owned=True)
        costs.append((time.perf_counter() - started) / series * 1e6)
    return costs


def stream_memory(mebibytes: int) -> None:
    """Read ``mebibytes`` MiB over and over (a neighbour's memory traffic)."""
    data = np.ones(mebibytes << 17)  # 8-byte floats
    while True:
        data.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--passes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--neighbour", type=int, default=0, metavar="MB")
    args = parser.parse_args()
    neighbour = None
    if args.neighbour:
        neighbour = multiprocessing.Process(
            target=stream_memory, args=(args.neighbour,), daemon=True
        )
        neighbour.start()
    try:
        table(args)
    finally:
        if neighbour is not None:
            neighbour.terminate()
            neighbour.join()


def table(args: argparse.Namespace) -> None:
    """Time the passes and print the table."""
    freeze_startup()  # as the daemon does after its start-up
    print("| series | first line | second | later (median) |")
    print("| ---: | ---: | ---: | ---: |")
    for series in args.series:
        # Few series make a pass too short to time: repeat it enough to
        # pass over about 10,000 lines.
        count = max(args.passes, 10_000 // series)
        runs = [passes(f"r{r}s{series}", series, count) for r in range(args.repeats)]
        first, second = (statistics.median(run[i] for run in runs) for i in (0, 1))
        later = statistics.median(x for run in runs for x in run[3:])
        print(f"| {series} | {first:.2f} us | {second:.2f} us | {later:.2f} us |")


if __name__ == "__main__":
    main()
