"""Cost of one log call in the daemon's configuration, and what a stalled reader does.

Two configurations, interleaved in every repeat so that drift on a shared machine hits
both alike:

* ``sync``    structlog writing each line to the stream itself
              (``WriteLoggerFactory``: lock, write, flush on the calling thread), as
              ``perfwarden.logs.setup`` did before the queued writer;
* ``queued``  ``perfwarden.logs.setup.configure_logging`` as ``perfwarden run`` calls it
              (the line is queued; ``perfwarden.logs.writer``'s thread writes it).

Both render the same processors (contextvars, level, ISO timestamp, exc_info, JSON).
The loop calls ``log.info("bench.event", ...)`` with four key/values, ``--calls``
times per repeat, and reports the median over ``--repeats`` of the cost **on the
calling thread** (what the event loop pays), plus, for ``queued``, the lines per
second the writer thread got out (until a flush returned) and lines dropped. Sinks:

* ``devnull``  ``/dev/null`` opened for writing: no back-pressure;
* ``pipe``     a pipe read by ``cat > /dev/null`` (``perfwarden run | jq``);
* ``stalled``  a pipe nobody reads, for ``--stall-seconds``: how many calls returned,
               whether one blocked (an alarm ends a call stuck a second past the
               end), and the slowest call.

``sink-only`` rows time the logger's ``msg(line)`` with a pre-rendered line:
``structlog.WriteLogger`` versus ``QueuedLineWriter``.

Usage::

    python bench/log_calls.py                          # ~30 s
    python bench/log_calls.py --calls 100000 --repeats 7 --sinks devnull,pipe
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from typing import Any, TextIO

import structlog

from perfwarden.logs import setup as logs
from perfwarden.logs.writer import QueuedLineWriter

STALL_BLOCKED = 0.1
LINE = (
    '{"metric": "context_loading_time", "value": 1, "ok": true, "n": 3, '
    '"event": "bench.event", "level": "info", "timestamp": "2026-01-01T00:00:00Z"}'
)


class _Stalled(Exception):
    """Raised by the alarm when a call blocks past the stall deadline."""


def _open_sink(kind: str) -> tuple[TextIO, Any]:
    if kind == "devnull":
        return open(os.devnull, "w"), None
    if kind == "pipe":
        reader = subprocess.Popen(
            ["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        assert reader.stdin is not None
        return reader.stdin, reader
    read_fd, write_fd = os.pipe()
    return os.fdopen(write_fd, "w"), read_fd


def _close_sink(stream: TextIO, handle: Any) -> None:
    if isinstance(handle, int):
        os.close(handle)  # a writer blocked on the full pipe gets EPIPE
    logs.shutdown_logging(timeout=1.0)
    with contextlib.suppress(OSError):
        stream.close()
    if isinstance(handle, subprocess.Popen):
        handle.wait()


def _configure(variant: str, stream: TextIO) -> Any:
    if variant == "queued":
        logs.configure_logging("info", stream=stream, json=True)
    else:
        logs.shutdown_logging(timeout=1.0)
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.WriteLoggerFactory(stream),
            cache_logger_on_first_use=True,
        )
    return structlog.get_logger("bench")


def time_calls(log: Any, calls: int) -> float:
    """Seconds per call for ``calls`` info calls."""
    info = log.info
    started = time.perf_counter()
    for i in range(calls):
        info("bench.event", metric="context_loading_time", value=i, ok=True, n=3)
    return (time.perf_counter() - started) / calls


def one_repeat(variant: str, kind: str, calls: int) -> tuple[float, float, int]:
    """(seconds per call, lines/s out of the process, lines dropped)."""
    stream, handle = _open_sink(kind)
    log = _configure(variant, stream)
    time_calls(log, 1000)  # warm-up (the first call binds the cached logger)
    logs.flush_logging(timeout=60)
    before = logs.log_stats() if variant == "queued" else {}
    started = time.perf_counter()
    per_call = time_calls(log, calls)
    if variant == "queued":
        logs.flush_logging(timeout=60)
    elapsed = time.perf_counter() - started
    after = logs.log_stats() if variant == "queued" else {}
    written = after.get("written", calls) - before.get("written", 0)
    dropped = after.get("dropped", 0) - before.get("dropped", 0)
    _close_sink(stream, handle)
    return per_call, written / elapsed, dropped


def sink_only(calls: int, repeats: int) -> dict[str, float]:
    """Median seconds per ``msg(line)``: structlog's WriteLogger and ours."""
    results: dict[str, list[float]] = {"WriteLogger": [], "QueuedLineWriter": []}
    for _ in range(repeats):
        for name, values in results.items():
            stream = open(os.devnull, "w")  # noqa: SIM115 - closed below
            sink: Any = (
                structlog.WriteLogger(stream)
                if name == "WriteLogger"
                else QueuedLineWriter(stream, lambda n, r: "", max_queued=calls + 1)
            )
            msg = sink.msg
            started = time.perf_counter()
            for _ in range(calls):
                msg(LINE)
            values.append((time.perf_counter() - started) / calls)
            if isinstance(sink, QueuedLineWriter):
                sink.close(60)
            stream.close()
    return {name: statistics.median(values) for name, values in results.items()}


def run_stalled(variant: str, seconds: float) -> dict[str, Any]:
    """Log into a pipe nobody reads for ``seconds``; does the caller ever block?"""
    stream, handle = _open_sink("stalled")
    log = _configure(variant, stream)

    def _alarm(signum: int, frame: Any) -> None:
        raise _Stalled

    previous = signal.signal(signal.SIGALRM, _alarm)
    calls = 0
    took: list[float] = []
    stuck = False
    deadline = time.monotonic() + seconds
    try:
        # The alarm ends a call still stuck a second after the deadline.
        signal.setitimer(signal.ITIMER_REAL, seconds + 1.0)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            log.info("bench.event", metric="context_loading_time", value=calls)
            took.append(time.perf_counter() - started)
            calls += 1
    except _Stalled:
        stuck = True
        took.append(time.perf_counter() - started)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    dropped = logs.log_stats().get("dropped", 0) if variant == "queued" else 0
    _close_sink(stream, handle)
    took.sort()
    return {
        "calls": calls,
        "blocked": stuck or took[-1] > STALL_BLOCKED,
        "p99_call_us": took[int(len(took) * 0.99)] * 1e6,
        "slowest_call_ms": took[-1] * 1e3,
        "dropped": dropped,
    }


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sinks", default="devnull,pipe,stalled")
    parser.add_argument("--stall-seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, structlog {structlog.__version__}, "
        f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; "
        f"{args.calls} calls x {args.repeats} repeats (medians)"
    )
    print(
        f"{'sink':9} {'variant':7} {'calls/s':>10} {'us/call':>8} "
        f"{'out lines/s':>12} {'dropped':>8}"
    )
    variants = ("sync", "queued")
    for kind in args.sinks.split(","):
        if kind == "stalled":
            for variant in variants:
                r = run_stalled(variant, args.stall_seconds)
                print(
                    f"{'stalled':9} {variant:7} {r['calls']} calls returned in "
                    f"{args.stall_seconds:g} s; blocked: {r['blocked']}; p99 "
                    f"{r['p99_call_us']:.0f} us, slowest "
                    f"{r['slowest_call_ms']:.1f} ms; dropped {r['dropped']}"
                )
            continue
        runs: dict[str, list[tuple[float, float, int]]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            for variant in variants:
                runs[variant].append(one_repeat(variant, kind, args.calls))
        for variant in variants:
            per_call = statistics.median(r[0] for r in runs[variant])
            out = statistics.median(r[1] for r in runs[variant])
            dropped = sum(r[2] for r in runs[variant])
            print(
                f"{kind:9} {variant:7} {1 / per_call:>10,.0f} {per_call * 1e6:>8.2f} "
                f"{out:>12,.0f} {dropped:>8}"
            )
    for name, seconds in sink_only(args.calls, args.repeats).items():
        print(f"sink-only {name:16} {seconds * 1e6:.2f} us per msg(line) to /dev/null")
    return 0


if __name__ == "__main__":
    sys.exit(main())
