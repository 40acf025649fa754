"""What ingest plus one scrape per Prometheus interval costs, beside a git revision.

The trade behind the scrape cost of ``bench/exposition.py``: a tree whose scrape
reads every changed window (an exact mean, an autocorrelation-aware interval) may
spend more per scrape than one that kept running sums at ingest, and less per
line. Users pay both, so this measures both together at a steady rate: in a
``Daemon`` that is not running (as ``bench/exposition.py``'s in-process
measurement), ``--series`` series with full windows (``statistics.window``, 1000)
get ``--rate`` x ``--interval`` lines (20,000/s x 15 s over 1000 series by
default: 300 samples each, integer millisecond timings drawn from a lognormal,
in 32-line datagrams through ``Ingestor.feed`` and ``commit``), then one
``Exposition.scrape_now``; the CPU time (``time.process_time``) of each part,
``--periods`` times per run. Runs of this tree and of ``--base`` (a ``git
archive`` of its ``daemon/``) alternate in subprocesses, ``--repeats`` times;
the figures are medians over all periods, the ratio theirs.

    python bench/scrape_trade.py --base d90a0cf          # ~2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_MEASURE = r"""
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.views.exposition import Exposition

series, per_period, periods = (int(a) for a in sys.argv[1:4])
rng = np.random.default_rng(int(sys.argv[4]))

def datagrams(lines: int, *, cycle: bool = False) -> list[bytes]:
    values = np.rint(rng.lognormal(3.0, 0.6, lines)).astype(int).tolist()
    keys = (np.arange(lines) % series if cycle else rng.integers(0, series, lines))
    keys = keys.tolist()
    text = [f"lat:{v}|ms|#series:{k}" for v, k in zip(values, keys)]
    return ["\n".join(text[i : i + 32]).encode() for i in range(0, lines, 32)]

with tempfile.TemporaryDirectory() as scratch:
    root = Path(scratch)
    daemon = Daemon(parse_config("version: 1\n"), root / "p.yaml", root / "run", root)
    feed, commit = daemon.ingestor.feed, daemon.ingestor.commit
    for payload in datagrams(1000 * series, cycle=True):  # full windows
        feed(payload)
        commit()
    exposition = Exposition(daemon)
    exposition.scrape_now()
    results = []
    for _ in range(periods):
        payloads = datagrams(per_period)
        started = time.process_time()
        for payload in payloads:
            feed(payload)
            commit()
        ingest = time.process_time() - started
        started = time.process_time()
        exposition.scrape_now()
        results.append({"ingest": ingest, "scrape": time.process_time() - started})
print(json.dumps(results))
"""


def measure(pythonpath: Path, args: argparse.Namespace, seed: int) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    per_period = round(args.rate * args.interval)
    command = [sys.executable, "-c", _MEASURE, str(args.series), str(per_period)]
    result = subprocess.run(
        [*command, str(args.periods), str(seed)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    periods: list[dict] = json.loads(result.stdout.splitlines()[-1])
    return periods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="d90a0cf", help="git revision to compare")
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20000.0, help="lines/s")
    parser.add_argument("--interval", type=float, default=15.0, help="scrape every s")
    parser.add_argument("--periods", type=int, default=3, help="per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pw-trade-") as tmp:
        archive = Path(tmp) / "base.tar"
        command = ["git", "-C", str(ROOT), "archive", "-o", str(archive)]
        subprocess.run([*command, args.base, "daemon", "plugins"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        paths = {"base": Path(tmp) / "daemon", "now": ROOT / "daemon"}
        runs: dict[str, list[dict]] = {"base": [], "now": []}
        for repeat in range(args.repeats):
            order = ("base", "now") if repeat % 2 == 0 else ("now", "base")
            for name in order:  # the same seed: the same lines for both trees
                runs[name].extend(measure(paths[name], args, seed=repeat))
                print(f"  repeat {repeat + 1}: {name} done", flush=True)
    print(
        f"\n{args.series} series, {args.rate:,.0f} lines/s, one scrape every "
        f"{args.interval:g} s; base {args.base}; medians of "
        f"{args.repeats} x {args.periods} periods per tree (CPU ms per period)"
    )
    print("| tree | ingest ms | scrape ms | together ms | % of a core | scrape share |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    totals = {}
    for name in ("now", "base"):
        ingest = statistics.median(p["ingest"] * 1e3 for p in runs[name])
        scrape = statistics.median(p["scrape"] * 1e3 for p in runs[name])
        totals[name] = (ingest, scrape, ingest + scrape)
        print(
            f"| {'this tree' if name == 'now' else args.base} | {ingest:.0f} "
            f"| {scrape:.1f} | {ingest + scrape:.0f} "
            f"| {(ingest + scrape) / (10 * args.interval):.2f} "
            f"| {scrape / (ingest + scrape):.3f} |"
        )
    ratios = [n / b for n, b in zip(totals["now"], totals["base"], strict=True)]
    print(
        f"| this tree / {args.base} | {ratios[0]:.2f} | {ratios[1]:.2f} "
        f"| {ratios[2]:.2f} | | |"
    )


if __name__ == "__main__":
    main()
