"""Does ``/metrics`` slow ingest? Ingest rate with and without a scrape every second.

Runs a real daemon with ``http.listen`` on a free loopback port and measures, in
rotation, the accepted-lines rate of ``bench/ingest.py``'s datagram load (the same
sender processes and counters: :func:`ingest.measure`) while a scraper thread GETs
``/metrics`` every second, and without it. Each series count gets a fresh daemon
(the load creates the series). Also reports the scrape's wall time and body size.

Usage::

    python bench/exposition.py                          # ~4 minutes
    python bench/exposition.py --series 100,1000,5000 --duration 5 --repeats 5
    python bench/exposition.py --in-process-only --baseline DIR   # vs another checkout

The scraper asks for gzip as Prometheus does (``--no-gzip``: plain bodies). With
``--baseline DIR`` (a checkout of an earlier commit), the in-process measurement
runs in subprocesses, this tree's and ``DIR/daemon``'s in turn, order alternating,
``--rounds`` times, and reports the medians side by side.

Until ``app.py`` starts the listener itself, run it with the scratch wiring on
``PYTHONPATH`` (the daemon subprocess inherits it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.testing import DaemonProcess
from perfwarden.views.exposition import Exposition

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # the sibling benchmark, by path

CONFIG = 'version: 1\nhttp:\n  listen: "127.0.0.1:0"\n'


class Scraper(threading.Thread):
    """GET ``url`` every ``interval`` seconds until stopped; keeps the timings."""

    def __init__(self, url: str, interval: float = 1.0, *, gzip: bool = True) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.headers = {"Accept-Encoding": "gzip"} if gzip else {}
        self.interval = interval
        self.stop = threading.Event()
        self.seconds: list[float] = []
        self.sizes: list[int] = []

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            started = time.perf_counter()
            request = urllib.request.Request(self.url, headers=self.headers)  # noqa: S310
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                body = response.read()
            self.seconds.append(time.perf_counter() - started)
            self.sizes.append(len(body))
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="measured s")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=8, help="pairs of runs")
    parser.add_argument("--senders", type=int, default=1)
    parser.add_argument("--lines", type=int, default=32, help="lines per datagram")
    parser.add_argument(
        "--in-process-only", action="store_true", help="only the in-process costs"
    )
    parser.add_argument(
        "--idle-scrapes", type=int, default=20, help="scrapes timed with no load"
    )
    parser.add_argument(
        "--no-gzip", action="store_true", help="scrape without Accept-Encoding"
    )
    parser.add_argument(
        "--baseline", metavar="DIR", help="checkout to compare in-process costs with"
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --baseline")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--series",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 1000, 2000],
        help="comma-separated distinct series counts (one daemon each)",
    )
    args = parser.parse_args(argv)
    args.chunk_bytes = 65536
    return args


def idle_scrapes(
    pid: int, url: str, series: int, count: int, headers: dict[str, str]
) -> dict[str, Any]:
    """Wall and daemon CPU time of ``count`` back-to-back scrapes with no load:
    the cost of one scrape, free of the ingest rate's run-to-run noise."""
    walls: list[float] = []
    size = 0
    time.sleep(1.0)  # let the fill's last batches and checkpoint settle
    cpu_before = ingest.cpu_seconds(pid)
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            size = len(response.read())
        walls.append(time.perf_counter() - started)
    cpu = ingest.cpu_seconds(pid) - cpu_before  # clock ticks: average over count
    row = {
        "series": series,
        "idle": True,
        "scrape_ms_median": round(statistics.median(walls) * 1000, 1),
        "scrape_cpu_ms_mean": round(cpu / count * 1000, 1),
        "body_kb": round(size / 1024),
    }
    print(
        f"  series {series:>5} idle: scrape median {row['scrape_ms_median']} ms, "
        f"daemon cpu {row['scrape_cpu_ms_mean']} ms per scrape (mean), "
        f"{row['body_kb']} KiB",
        flush=True,
    )
    return row


def run(series: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with DaemonProcess(CONFIG) as daemon:
        port = int(daemon.wait_log("http.started")["port"])
        url = f"http://127.0.0.1:{port}/metrics"
        target = ingest.Perfwarden(daemon)
        load = argparse.Namespace(**{**vars(args), "series": series})
        ingest.measure(target, "dgram", args.senders, load, seed=1)  # fill the series
        headers = {} if args.no_gzip else {"Accept-Encoding": "gzip"}
        rows.append(idle_scrapes(target.pid, url, series, args.idle_scrapes, headers))
        seed = 10
        for repeat in range(args.repeats):
            # Adjacent runs share the machine's mood: alternate which goes first.
            for scraping in (False, True) if repeat % 2 == 0 else (True, False):
                seed += 10
                scraper = Scraper(url, gzip=not args.no_gzip) if scraping else None
                if scraper is not None:
                    scraper.start()
                row = ingest.measure(target, "dgram", args.senders, load, seed)
                if scraper is not None:
                    scraper.stop.set()
                    scraper.join()
                    row["scrapes"] = len(scraper.seconds)
                    row["scrape_ms_max"] = round(max(scraper.seconds) * 1000, 1)
                    row["scrape_ms_median"] = round(
                        statistics.median(scraper.seconds) * 1000, 1
                    )
                    row["body_kb"] = round(max(scraper.sizes) / 1024)
                row.update(series=series, scraping=scraping, repeat=repeat)
                rows.append(row)
                print(
                    f"  series {series:>5} repeat {repeat + 1} "
                    f"{'scrape 1/s' if scraping else 'no scrape '}: "
                    f"{row['lines_per_s']:>9,} lines/s, cpu {row['cpu_pct']}%, "
                    f"lost {row['lost']}"
                    + (
                        f", scrape median {row['scrape_ms_median']} ms "
                        f"max {row['scrape_ms_max']} ms, {row['body_kb']} KiB"
                        if scraping
                        else ""
                    ),
                    flush=True,
                )
    return rows


def in_process(
    series: int, samples: int = 1000, scrapes: int = 7, *, quiet: bool = False
) -> dict[str, Any]:
    """CPU time of one scrape in this process (``Exposition.scrape_now`` on a
    ``Daemon`` that is not running), with every series' window changed since the
    previous scrape (all percentiles recomputed) and with nothing changed."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        daemon = Daemon(
            parse_config("version: 1\n"), root / "p.yaml", root / "run", root
        )
        rows = [
            b"".join(b"m:%d|ms|#series:%d\n" % (v, s) for s in range(series))
            for v in range(samples)
        ]
        for payload in rows:
            daemon.ingestor.feed(payload)
            daemon.ingestor.commit()
        exposition = Exposition(daemon)
        changed: list[float] = []
        unchanged: list[float] = []
        compress: list[float] = []
        body = b""
        for i in range(scrapes):
            daemon.ingestor.feed(rows[i])  # one new sample in every series
            daemon.ingestor.commit()
            started = time.process_time()
            exposition.scrape_now()
            changed.append(time.process_time() - started)
            started = time.process_time()
            body, _ = exposition.scrape_now()
            unchanged.append(time.process_time() - started)
            started = time.process_time()
            packed = gzip.compress(body, compresslevel=1, mtime=0)  # as http_server
            compress.append(time.process_time() - started)
    row = {
        "series": series,
        "changed_ms": round(statistics.median(changed) * 1000, 2),
        "unchanged_ms": round(statistics.median(unchanged) * 1000, 2),
        "gzip_ms": round(statistics.median(compress) * 1000, 2),
        "body_kb": round(len(body) / 1024),
        "gzip_kb": round(len(packed) / 1024),
    }
    if not quiet:
        print(
            f"  series {series:>5} x {samples} in-process: scrape "
            f"{row['changed_ms']} ms CPU with every window changed, "
            f"{row['unchanged_ms']} ms with none; body {row['body_kb']} KiB, "
            f"gzip {row['gzip_kb']} KiB in {row['gzip_ms']} ms",
            flush=True,
        )
    return row


def compare(args: argparse.Namespace) -> None:
    """In-process costs of this tree and of ``args.baseline``, in subprocesses
    taking turns (order alternating), ``args.rounds`` times; medians."""
    here = Path(__file__).resolve()
    trees = {
        "this tree": str(here.parents[1] / "daemon"),
        "baseline": str(Path(args.baseline).resolve() / "daemon"),
    }
    series = ",".join(str(s) for s in args.series)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for name in order:
            env = {**os.environ, "PYTHONPATH": trees[name]}
            command = [sys.executable, str(here), "--in-process-only", "--json"]
            output = subprocess.run(
                [*command, "--series", series],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[name].extend(json.loads(output))
            print(f"  round {round_ + 1}: {name} done", flush=True)
    print(
        "\n| series x 1000 | scrape CPU ms, every window changed: this tree "
        "| baseline | ratio | none changed: this tree | baseline | body KiB "
        "| gzip KiB | gzip ms |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for count in args.series:

        def median(name: str, key: str, n: int = count) -> float:
            return statistics.median(
                r[key] for r in results[name] if r["series"] == n and key in r
            )

        new, old = median("this tree", "changed_ms"), median("baseline", "changed_ms")
        print(
            f"| {count} | {new:.1f} | {old:.1f} | {new / old:.2f} "
            f"| {median('this tree', 'unchanged_ms'):.1f} "
            f"| {median('baseline', 'unchanged_ms'):.1f} "
            f"| {median('this tree', 'body_kb'):.0f} "
            f"| {median('this tree', 'gzip_kb'):.0f} "
            f"| {median('this tree', 'gzip_ms'):.1f} |"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json:  # one side of --baseline's comparison
        print(json.dumps([in_process(n, quiet=True) for n in args.series]))
        return 0
    print(f"machine: {ingest.machine()}", flush=True)
    if args.baseline:
        compare(args)
        return 0
    costs = [in_process(series) for series in args.series]
    if args.in_process_only:
        return 0
    rows = [row for series in args.series for row in run(series, args)]
    print("\n| series x 1000 samples | scrape CPU ms, every window changed | none |")
    print("| ---: | ---: | ---: |")
    for cost in costs:
        print(f"| {cost['series']} | {cost['changed_ms']} | {cost['unchanged_ms']} |")
    print(
        "\n| series | idle scrape wall ms (median) | daemon CPU ms per scrape | body |"
    )
    print("| ---: | ---: | ---: | ---: |")
    for row in rows:
        if row.get("idle"):
            print(
                f"| {row['series']} | {row['scrape_ms_median']} "
                f"| {row['scrape_cpu_ms_mean']} | {row['body_kb']} KiB |"
            )
    print(
        "\n| series | scrape every 1 s | lines/s (median) | lost | scrape ms "
        "| scraped / unscraped, per pair: median (min..max) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for series in args.series:
        pairs = {}
        for r in rows:
            if r["series"] == series and "scraping" in r:
                pairs.setdefault(r["repeat"], {})[r["scraping"]] = r["lines_per_s"]
        ratios = [p[True] / p[False] for p in pairs.values() if p.get(False)]
        for scraping in (False, True):
            picked = [
                r
                for r in rows
                if r["series"] == series and r.get("scraping") == scraping
            ]
            rate = statistics.median(r["lines_per_s"] for r in picked)
            lost = sum(r["lost"] for r in picked)
            scrape = (
                f"{statistics.median(r['scrape_ms_median'] for r in picked):.1f} "
                f"(max {max(r['scrape_ms_max'] for r in picked)})"
                if scraping
                else "-"
            )
            ratio = (
                f"{statistics.median(ratios):.3f} "
                f"({min(ratios):.3f}..{max(ratios):.3f})"
                if scraping and ratios
                else ""
            )
            print(
                f"| {series} | {'yes' if scraping else 'no'} | {rate:,.0f} "
                f"| {lost} | {scrape} | {ratio} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
