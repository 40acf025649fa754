"""What a change costs the ingest hot path, per line, beside a git revision.

In-process and CPU-bound, so it does not depend on how fast senders can write on a
loaded machine (``bench/ingest.py`` does): it feeds the same datagrams (32 lines,
100 series, the shape ``bench/ingest.py`` sends) through ``Ingestor.feed`` and
``Ingestor.commit`` (parse, store, accounting), and the same through a stream
connection's ``data_received`` (a buffered protocol's ``get_buffer`` and
``buffer_updated``, with the copy ``recv_into`` would make) in 64 KiB chunks, for
the working tree and for
``--base`` (a ``git archive`` of that revision's ``daemon/``), alternating
subprocesses, and prints the nanoseconds of CPU time (the process', so that
waiting for a core on a loaded machine does not count) per line of each (the least
of the runs, the best estimate of the cost itself on a loaded machine, and the
median) and the ratio of the least.

``--shape peers --names N`` feeds what the shared harness's load generator sends
(``../shared/peers/bench/pw_loadgen.py``: N names round-robin, types ms/g/c, 10
lines a datagram, a commit per 10 datagrams) to a fresh store each run, so the
cost of creating the N series is in the figure, as in the harness's runs. Nothing
is judged there, so the parser appends to the windows directly, as in the daemon
(``perfwarden.series.direct``); the default shape judges every series (the store's
default band), so it measures the batch path.

    python bench/ingest_overhead.py --base d90a0cf     # ~1 minute
    python bench/ingest_overhead.py --base main --shape peers --names 10000 --repeats 5
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
import asyncio, json, os, random, sys, time
from perfwarden.ingest import receivers
from perfwarden.series.store import MetricStore

names = int(os.environ["PW_NAMES"])
if os.environ["PW_SHAPE"] == "peers":
    # ../shared/peers/bench/pw_loadgen.py's lines: name k % names, types ms, g, c
    # round-robin by name, 10 lines a datagram, a commit per 10 datagrams (what
    # one wake-up drains at net.unix.max_dgram_qlen = 10).
    rng = random.Random(1)
    def line(k: int) -> str:
        i = k % names
        kind = ("ms", "g", "c")[i % 3]
        value = {"ms": lambda: str(rng.randint(1, 2500)),
                 "g": lambda: f"{rng.uniform(0, 100):.1f}", "c": lambda: "1"}[kind]()
        return f"bench_metric_{i:05d}:{value}|{kind}|#svc:api"
    lines = [line(k) for k in range(int(os.environ["PW_LINES"]))]
    per_datagram, per_commit = 10, 10
    def new_store() -> MetricStore:  # no levels, as the harness's pw-bench.yaml
        store = MetricStore(lambda _: 1000, 20000, lambda _: None)
        if hasattr(store, "set_direct"):  # as the daemon runs it (not recording)
            store.set_direct(True)
        return store
else:
    lines = [f"bench.metric:{i % 997}.5|ms|#series:{i % names}"
             for i in range(32 * 2000)]
    per_datagram, per_commit = 32, 1
    def new_store() -> MetricStore:  # every series judged: the batch path
        return MetricStore(lambda _: 1000, 20000)
datagrams = ["\n".join(lines[i:i + per_datagram]).encode()
             for i in range(0, len(lines), per_datagram)]
stream = ("\n".join(lines) + "\n").encode()
chunks = [stream[i:i + 65536] for i in range(0, len(stream), 65536)]
try:  # what the daemon does at the end of its start-up (when it exists)
    from perfwarden.heap import freeze_startup
except ImportError:
    pass
else:
    freeze_startup()

def dgram() -> float:
    ingestor = receivers.Ingestor(new_store(), 8192)
    started = time.process_time()
    for first in range(0, len(datagrams), per_commit):
        for payload in datagrams[first:first + per_commit]:
            ingestor.feed(payload)
        ingestor.commit()
    return (time.process_time() - started) / len(lines)

async def streamed() -> float:
    ingestor = receivers.Ingestor(new_store(), 8192)
    class Config:
        max_connections = max_connections_per_uid = 512
        idle_timeout = 60.0
        max_datagram_bytes = 65536
    try:  # its own module since reads were taken in slices
        from perfwarden.ingest import stream as streams
    except ImportError:
        streams = receivers
    try:
        server = streams.StreamIngestServer(ingestor, lambda: Config())
    except TypeError:  # before the limits: (ingestor, max_connections, max_frame)
        server = streams.StreamIngestServer(ingestor, 512, 65536)
    protocol = server.protocol_factory()
    async def settled() -> None:  # a read's rest is taken on later loop turns
        while getattr(protocol, "pending", False):
            await asyncio.sleep(0)

    async def receive(chunk: bytes) -> None:
        if not hasattr(protocol, "get_buffer"):  # a plain protocol
            protocol.data_received(chunk)
            await settled()
            return
        data = memoryview(chunk)
        while data:  # what the transport's recv_into calls do
            buffer = protocol.get_buffer(-1)
            n = min(len(buffer), len(data))
            buffer[:n] = data[:n]
            protocol.buffer_updated(n)
            data = data[n:]
            await settled()

    started = time.process_time()
    for chunk in chunks:
        await receive(chunk)
    assert ingestor.counters.received == len(lines)
    return (time.process_time() - started) / len(lines)

for _ in range(2):  # warm the caches
    dgram()
print(json.dumps({"dgram": min(dgram() for _ in range(5)),
                  "stream": min(asyncio.run(streamed()) for _ in range(5))}))
"""


def measure(pythonpath: Path, args: argparse.Namespace) -> dict[str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(pythonpath),
        "PW_NAMES": str(args.names),
        "PW_LINES": str(args.lines),
        "PW_SHAPE": args.shape,
    }
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
    parser.add_argument("--names", type=int, default=100, help="distinct series")
    parser.add_argument(
        "--shape",
        choices=("own", "peers"),
        default="own",
        help="own: 32-line datagrams of one timing metric; peers: the shared "
        "harness's load generator (10-line datagrams, types ms/g/c by name)",
    )
    parser.add_argument(
        "--lines", type=int, default=250_000, help="lines per run (peers shape)"
    )
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
                runs[name].append(measure(paths[name], args))
    print(
        f"\nbase {args.base}, {args.repeats} interleaved runs, {args.names} series, "
        f"{args.shape} shape, medians (shared machine)"
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
