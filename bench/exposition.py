"""Does ``/metrics`` slow ingest? Ingest rate with and without a scrape every second.

Runs a real daemon with ``http.listen`` on a free loopback port and measures, in
rotation, the accepted-lines rate of ``bench/ingest.py``'s datagram load (the same
sender processes and counters: :func:`ingest.measure`) while a scraper thread GETs
``/metrics`` every second, and without it. Each series count gets a fresh daemon
(the load creates the series). Also reports the scrape's wall time and body size.

Usage::

    python bench/exposition.py                          # ~1 minute
    python bench/exposition.py --series 100,1000,5000 --duration 5 --repeats 5

Until ``app.py`` starts the listener itself, run it with the scratch wiring on
``PYTHONPATH`` (the daemon subprocess inherits it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from perfwarden.testing import DaemonProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # the sibling benchmark, by path

CONFIG = 'version: 1\nhttp:\n  listen: "127.0.0.1:0"\n'


class Scraper(threading.Thread):
    """GET ``url`` every ``interval`` seconds until stopped; keeps the timings."""

    def __init__(self, url: str, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval = interval
        self.stop = threading.Event()
        self.seconds: list[float] = []
        self.sizes: list[int] = []

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=30) as response:  # noqa: S310
                body = response.read()
            self.seconds.append(time.perf_counter() - started)
            self.sizes.append(len(body))
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="measured s")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--senders", type=int, default=1)
    parser.add_argument("--lines", type=int, default=32, help="lines per datagram")
    parser.add_argument(
        "--series",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 2000],
        help="comma-separated distinct series counts (one daemon each)",
    )
    args = parser.parse_args(argv)
    args.chunk_bytes = 65536
    return args


def run(series: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with DaemonProcess(CONFIG) as daemon:
        port = int(daemon.wait_log("http.started")["port"])
        url = f"http://127.0.0.1:{port}/metrics"
        target = ingest.Perfwarden(daemon)
        load = argparse.Namespace(**{**vars(args), "series": series})
        ingest.measure(target, "dgram", args.senders, load, seed=1)  # fill the series
        seed = 10
        for repeat in range(args.repeats):
            for scraping in (False, True):
                seed += 10
                scraper = Scraper(url) if scraping else None
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {ingest.machine()}", flush=True)
    rows = [row for series in args.series for row in run(series, args)]
    print("\n| series | scrape every 1 s | lines/s (median) | lost | scrape ms |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for series in args.series:
        for scraping in (False, True):
            picked = [
                r for r in rows if r["series"] == series and r["scraping"] == scraping
            ]
            rate = statistics.median(r["lines_per_s"] for r in picked)
            lost = sum(r["lost"] for r in picked)
            scrape = (
                f"{statistics.median(r['scrape_ms_median'] for r in picked)} "
                f"(max {max(r['scrape_ms_max'] for r in picked)})"
                if scraping
                else "-"
            )
            print(
                f"| {series} | {'yes' if scraping else 'no'} | {rate:,.0f} "
                f"| {lost} | {scrape} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
