"""CPU of one evaluation pass: series judged in bulk vs one by one, in one process.

Method
------
The daemon's own ``Evaluator`` and ``MetricStore`` on a fake clock, as the
fixed-rate benchmark loads them: ``--series`` metrics with levels, each pass
ingests ``--per-pass`` new samples per series (20 k lines/s over 100 series with
``evaluation.coalesce`` 50 ms: 10), then evaluates every updated series. Two
evaluators on two stores get the same batches; for each pass, in alternating
order, one judges the pass in bulk (``evaluate(all)``, the daemon's path) and the
other series by series (``evaluate([one])`` for each, the path before bulk
judging), each timed with ``perf_counter``. Both must end in the same alert
states and observations (checked). Per basis and scenario, the median over
``--repeat`` runs of the mean pass time per series, and the median of the per-run
ratios.

Scenarios: ``quiet`` (levels far above the values: every alert ok, the
``multiwindow`` short windows are skipped) and ``alerting`` (levels below the
values: every alert firing, so every series also needs its short windows).

    python bench/evaluation_pass.py              # ~1 minute
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from perfwarden.alerts.evaluator import Evaluator
from perfwarden.config.load import parse_config
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.logs.setup import configure_logging, shutdown_logging
from perfwarden.series.store import MetricStore
from perfwarden.testing import FakeClock

LEVELS = {
    "quiet": "warning: 1000000000, critical: 2000000000",
    "alerting": "warning: 10, critical: 20",
}


def batches(series: int, per_pass: int, count: int, seed: int) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        values = rng.integers(30, 100, (series, per_pass))
        lines = "\n".join(
            f"m{i:03d}:{v}|ms" for i in range(series) for v in values[i].tolist()
        )
        batch = Batch()
        parse(lines.encode(), batch, 1 << 22)
        out.append(batch)
    return out


def run(basis: str, scenario: str, args: argparse.Namespace) -> tuple[float, float]:
    """Mean µs per series per pass: (bulk, one by one)."""
    metrics = "".join(
        f"  m{i:03d}: {{unit: ms, bound: upper, {LEVELS[scenario]}}}\n"
        for i in range(args.series)
    )
    config = parse_config(
        f"version: 1\nevaluation: {{basis: {basis}}}\nmetrics:\n{metrics}"
    )
    clock = FakeClock()
    stores = [MetricStore(config.metric_window, 20_000) for _ in range(2)]
    evaluators = [Evaluator(s, lambda: config, clock=clock) for s in stores]
    feed = batches(args.series, args.per_pass, 40, args.seed)
    spent = [0.0, 0.0]
    for step in range(args.warmup + args.passes):
        for store in stores:
            store.ingest(feed[step % len(feed)], clock())
        order = (0, 1) if step % 2 else (1, 0)
        for which in order:
            updated = sorted(stores[which].take_updated(), key=lambda s: s.key)
            started = time.perf_counter()
            if which == 0:
                evaluators[0].evaluate(updated)
            else:
                for one in updated:
                    evaluators[1].evaluate([one])
            if step >= args.warmup:
                spent[which] += time.perf_counter() - started
        clock.advance(0.05)
    bulk, alone = evaluators
    if bulk.alerts != alone.alerts or bulk.observations != alone.observations:
        msg = "bulk and one-by-one judgements differ"
        raise AssertionError(msg)
    per_series = 1e6 / (args.passes * args.series)
    return spent[0] * per_series, spent[1] * per_series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--per-pass", type=int, default=10)
    parser.add_argument("--passes", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--bases", nargs="+", default=["multiwindow", "ci", "mean"])
    args = parser.parse_args()
    # As the daemon logs: through the queued writer, here into /dev/null.
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    configure_logging("info", stream=devnull, json=True)
    print("| basis | scenario | bulk µs/series | one by one µs/series | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    for basis in args.bases:
        for scenario in LEVELS:
            runs = [run(basis, scenario, args) for _ in range(args.repeat)]
            bulk = statistics.median(b for b, _ in runs)
            alone = statistics.median(a for _, a in runs)
            ratio = statistics.median(b / a for b, a in runs)
            row = f"| {basis} | {scenario} | {bulk:.2f} | {alone:.2f} | {ratio:.2f} |"
            print(row, flush=True)
    shutdown_logging()
    devnull.close()


if __name__ == "__main__":
    main()
