"""What a change costs the ingest hot path, per line, beside a git revision.

In-process and CPU-bound, so it does not depend on how fast senders can write on a
loaded machine (``bench/ingest.py`` does): it feeds the same datagrams (32 lines,
100 series, the shape ``bench/ingest.py`` sends) through ``Ingestor.feed`` and
``Ingestor.commit`` (parse, store, accounting), and the same through a stream
connection's ``data_received`` in 64 KiB chunks, for the working tree and for
``--base`` (a ``git archive`` of that revision's ``daemon/``), alternating
subprocesses, and prints the nanoseconds per line of each (the least of the runs,
the best estimate of the cost itself on a loaded machine, and the median) and the
ratio of the least.

    python bench/ingest_overhead.py --base d90a0cf     # ~1 minute
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
import asyncio, json, sys, time
from perfwarden.ingest import receivers
from perfwarden.series.store import MetricStore

lines = [f"bench.metric:{i % 997}.5|ms|#series:{i % 100}" for i in range(32 * 2000)]
datagrams = ["\n".join(lines[i:i + 32]).encode() for i in range(0, len(lines), 32)]
stream = ("\n".join(lines) + "\n").encode()
chunks = [stream[i:i + 65536] for i in range(0, len(stream), 65536)]

def dgram() -> float:
    ingestor = receivers.Ingestor(MetricStore(lambda _: 1000, 10000), 8192)
    started = time.perf_counter()
    for payload in datagrams:
        ingestor.feed(payload)
        ingestor.commit()
    return (time.perf_counter() - started) / len(lines)

async def streamed() -> float:
    ingestor = receivers.Ingestor(MetricStore(lambda _: 1000, 10000), 8192)
    class Config:
        max_connections = max_connections_per_uid = 512
        idle_timeout = 60.0
        max_datagram_bytes = 65536
    try:
        server = receivers.StreamIngestServer(ingestor, lambda: Config())
    except TypeError:  # before the limits: (ingestor, max_connections, max_frame)
        server = receivers.StreamIngestServer(ingestor, 512, 65536)
    protocol = server.protocol_factory()
    started = time.perf_counter()
    for chunk in chunks:
        protocol.data_received(chunk)
    return (time.perf_counter() - started) / len(lines)

for _ in range(2):  # warm the caches
    dgram()
print(json.dumps({"dgram": min(dgram() for _ in range(5)),
                  "stream": min(asyncio.run(streamed()) for _ in range(5))}))
"""


def measure(pythonpath: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout.splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD~1", help="git revision to compare")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pw-overhead-") as tmp:
        archive = Path(tmp) / "base.tar"
        subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "archive",
                "-o",
                str(archive),
                args.base,
                "daemon",
            ],
            check=True,
        )
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        paths = {"base": Path(tmp) / "daemon", "now": ROOT / "daemon"}
        runs: dict[str, list[dict[str, float]]] = {"base": [], "now": []}
        for repeat in range(args.repeats):
            order = ("base", "now") if repeat % 2 == 0 else ("now", "base")
            for name in order:
                runs[name].append(measure(paths[name]))
    print(
        f"\nbase {args.base}, {args.repeats} interleaved runs, medians (shared machine)"
    )
    print(
        "| path | base ns/line, min (median) | now, min (median) | now / base (min) |"
    )
    print("| --- | --- | --- | --- |")
    for path in ("dgram", "stream"):
        base = [r[path] * 1e9 for r in runs["base"]]
        now = [r[path] * 1e9 for r in runs["now"]]
        print(
            f"| {path} | {min(base):.0f} ({statistics.median(base):.0f}) | "
            f"{min(now):.0f} ({statistics.median(now):.0f}) | "
            f"{min(now) / min(base):.3f} |"
        )


if __name__ == "__main__":
    main()
