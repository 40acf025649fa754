"""Cost of one log call in the daemon's configuration, and what a stalled reader does.

The loop calls ``log.info("bench.event", ...)`` with five key/values (a typical
perfwarden event) on a logger configured by ``perfwarden.logs.configure_logging``
exactly as ``perfwarden run --log-format json`` configures it, ``--calls`` times per
repeat, and reports the median over ``--repeats`` of calls per second and
microseconds per call **on the calling thread** (the event loop's cost). Sinks:

* ``devnull``  ``/dev/null`` opened for writing (no back-pressure: the pure cost);
* ``pipe``     a pipe read by ``cat > /dev/null`` (``perfwarden run | jq``);
* ``stalled``  a pipe nobody reads: the calls run for ``--stall-seconds`` and the
               script reports how many returned and whether the calling thread was
               ever blocked (a call that took longer than 100 ms).

When the logging module offers ``shutdown_logging`` (the queued writer), the script
also waits for the writer and reports lines written and dropped (end-to-end rate).

Usage::

    python bench/log_calls.py                          # ~20 s
    python bench/log_calls.py --calls 100000 --repeats 7 --sinks devnull,pipe
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from typing import Any, TextIO

import structlog

from perfwarden import logs

STALL_BLOCKED = 0.1


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
    if hasattr(logs, "shutdown_logging"):
        logs.shutdown_logging(timeout=0.2)
    with contextlib.suppress(OSError):
        stream.close()
    if isinstance(handle, subprocess.Popen):
        handle.wait()
    elif isinstance(handle, int):
        os.close(handle)


def _configure(stream: TextIO) -> Any:
    logs.configure_logging("info", stream=stream, json=True)
    return structlog.get_logger("bench")


def _stats() -> dict[str, int]:
    stats = getattr(logs, "log_stats", None)
    return dict(stats()) if stats is not None else {}


def time_calls(log: Any, calls: int) -> float:
    """Seconds per call for ``calls`` info calls."""
    info = log.info
    started = time.perf_counter()
    for i in range(calls):
        info("bench.event", metric="context_loading_time", value=i, ok=True, n=3)
    return (time.perf_counter() - started) / calls


def run_throughput(kind: str, calls: int, repeats: int) -> dict[str, Any]:
    """Median calls/s on the calling thread and end-to-end lines/s."""
    per_call: list[float] = []
    end_to_end: list[float] = []
    dropped = 0
    for _ in range(repeats):
        stream, handle = _open_sink(kind)
        log = _configure(stream)
        time_calls(log, 1000)  # warm-up (first call binds the cached logger)
        started = time.perf_counter()
        per_call.append(time_calls(log, calls))
        if hasattr(logs, "flush_logging"):
            logs.flush_logging(timeout=60)
        end_to_end.append((calls + 1000) / (time.perf_counter() - started))
        dropped += _stats().get("dropped", 0)
        _close_sink(stream, handle)
    seconds = statistics.median(per_call)
    return {
        "sink": kind,
        "calls_per_s": 1 / seconds,
        "us_per_call": seconds * 1e6,
        "lines_per_s_end_to_end": statistics.median(end_to_end),
        "dropped": dropped,
    }


def run_stalled(seconds: float) -> dict[str, Any]:
    """Log into a pipe nobody reads for ``seconds``; does the caller ever block?"""
    stream, handle = _open_sink("stalled")
    log = _configure(stream)

    def _alarm(signum: int, frame: Any) -> None:
        raise _Stalled

    previous = signal.signal(signal.SIGALRM, _alarm)
    calls = 0
    slowest = 0.0
    blocked = False
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.01))
            started = time.perf_counter()
            log.info("bench.event", metric="context_loading_time", value=calls)
            slowest = max(slowest, time.perf_counter() - started)
            calls += 1
    except _Stalled:
        blocked = True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    stats = _stats()
    # Unblock a writer stuck on the full pipe before closing it.
    os.close(handle)
    if hasattr(logs, "shutdown_logging"):
        logs.shutdown_logging(timeout=0.5)
    with contextlib.suppress(OSError):
        stream.close()
    return {
        "calls": calls,
        "blocked": blocked or slowest > STALL_BLOCKED,
        "slowest_call_ms": slowest * 1e3,
        **stats,
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
        f"{os.cpu_count()} cpus; {args.calls} calls x {args.repeats} repeats"
    )
    for kind in args.sinks.split(","):
        if kind == "stalled":
            result = run_stalled(args.stall_seconds)
            print(
                f"stalled  {result['calls']} calls returned in "
                f"{args.stall_seconds:g} s, "
                f"blocked={result['blocked']}, slowest call "
                f"{result['slowest_call_ms']:.2f} ms"
                + (f", dropped {result['dropped']}" if "dropped" in result else "")
            )
            continue
        result = run_throughput(kind, args.calls, args.repeats)
        print(
            f"{kind:8} {result['calls_per_s']:>10,.0f} calls/s "
            f"{result['us_per_call']:6.2f} us/call   end-to-end "
            f"{result['lines_per_s_end_to_end']:>10,.0f} lines/s   "
            f"dropped {result['dropped']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
