"""What a plain plugin call in a worker thread does to the event loop, by kind.

Runs the daemon's :class:`~perfwarden.optimize.plugin_runtime.PluginRuntime`
and :class:`~perfwarden.sampling.loop_watch.LoopWatch` on one event loop and
makes one plain (synchronous) plugin call of each kind in turn, ``--rounds``
times interleaved:

- ``pure-python``: a Python loop computing for 2 s (it gives the GIL up every
  ``sys.getswitchinterval()``, 5 ms);
- ``one C call``: ``sum(range(40_000_000))``, which never gives the GIL up;
- ``sleeping``: ``time.sleep(2)`` (no GIL, no CPU).

For each, the loop's longest lateness, the stalls over 100 ms, how many of them
named the call (``loop.stalled via: thread``) and each stall's evidence (the
busiest plugin thread's and the loop thread's CPU and the GIL probe's wait, as
shares of the stall). Prints the medians of the max lag.

Usage: ``python bench/gil_holders.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import statistics
import time
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from perfwarden.config.load import Config, OptimizerConfig
from perfwarden.optimize.plugin_loader import PluginSource
from perfwarden.optimize.plugin_runtime import (
    PluginCallError,
    PluginHandle,
    PluginRuntime,
    PluginState,
)
from perfwarden.sampling.loop_watch import LoopWatch

if TYPE_CHECKING:
    from collections.abc import Callable


def pure_python() -> int:
    end, count = time.monotonic() + 2, 0
    while time.monotonic() < end:
        count += 1
    return count


def one_c_call() -> int:
    return sum(range(40_000_000))


def sleeping() -> None:
    time.sleep(2)


KINDS: dict[str, Callable[[], Any]] = {
    "pure-python": pure_python,
    "one C call": one_c_call,
    "sleeping": sleeping,
}


def handle(name: str) -> PluginHandle:
    entry_point = importlib.metadata.EntryPoint(name, "x:X", "perfwarden.optimizers")
    return PluginHandle(
        PluginSource(name, "x:X", "bench", "1", entry_point), PluginState.ACTIVE
    )


async def one(kind: str) -> tuple[float, int, list[dict[str, Any]]]:
    config = Config(optimizer=OptimizerConfig(plugin_timeout=30, max_failures=9))
    runtime = PluginRuntime(lambda: config, environ={})
    watch = LoopWatch(runtime.stalled_by, runtime.threads)
    watching = asyncio.create_task(watch.run())
    await asyncio.sleep(0.2)
    watch.max_lag, watch.stalls = 0.0, 0
    target = handle(kind.replace(" ", "_"))
    with capture_logs() as logs, contextlib.suppress(PluginCallError):
        await runtime.call(target, "propose", KINDS[kind])
        await asyncio.sleep(0.1)
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching
    stalls = [e for e in logs if e["event"] == "loop.stalled"]
    return watch.max_lag, watch.stalls, stalls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lags: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(args.rounds):
        for kind in KINDS:
            lag, count, stalls = asyncio.run(one(kind))
            lags[kind].append(lag)
            named = sum(e["via"] == "thread" for e in stalls)
            print(
                f"{kind:>12}: max lag {lag * 1000:7.1f} ms, stalls {count}, "
                f"of them named (via: thread) {named}"
            )
            for e in stalls:
                shares = {k: v for k, v in e.items() if k.endswith("_share")}
                print(f"{'':>14}stall {e['seconds']} s: {shares}")
    for kind, values in lags.items():
        median = statistics.median(values) * 1000
        print(f"{kind:>12}: median max lag {median:.1f} ms")


if __name__ == "__main__":
    main()
