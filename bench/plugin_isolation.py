"""What process isolation costs a plugin call, and what it saves the event loop.

Runs the daemon's own :class:`~perfwarden.optimize.plugin_runtime.PluginRuntime`
with the same plugin (``bench/plugin_probe.py``) loaded twice: ``isolation:
in-process`` (a plain function in a worker thread, as before) and ``isolation:
process`` (a plugin host subprocess). Measured in one run, calls interleaved
(in-process, isolated, in-process, ...), medians quoted:

- the time of one ``handles`` and one ``propose`` call, each way, and their ratio;
- the start of a host (spawn until ready) and its resident memory;
- the event loop's longest lateness while a coroutine plugin blocks for 0.5 s,
  each way (:class:`perfwarden.sampling.loop_watch.LoopWatch`).

Usage: ``python bench/plugin_isolation.py [--calls 2000] [--starts 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import statistics
import sys
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import psutil

from perfwarden.config.load import Config, OptimizerConfig
from perfwarden.config.model import Isolation, PluginConfig
from perfwarden.optimize.plugin_host import HostLimits, PluginHost
from perfwarden.optimize.plugin_loader import PluginSource
from perfwarden.optimize.plugin_runtime import PluginCallError, PluginRuntime
from perfwarden.plugin_api import (
    KnobSpec,
    OptimizerContext,
)
from perfwarden.sampling.loop_watch import LoopWatch
from perfwarden.testing import example_violation

HERE = Path(__file__).resolve().parent
GROUP = "perfwarden.optimizers"

VIOLATION = example_violation()
CONTEXT = OptimizerContext(
    knobs=MappingProxyType({"batch.size": 64}),
    specs=MappingProxyType({"batch.size": KnobSpec("batch.size", 64, 1, 256, 1)}),
)


def runtime_for(value: str) -> PluginRuntime:
    """A runtime with ``value`` loaded as ``inproc`` and as ``isolated``."""
    plugins = {
        "inproc": PluginConfig("inproc", isolation=Isolation.IN_PROCESS),
        "isolated": PluginConfig("isolated", isolation=Isolation.PROCESS),
    }
    config = Config(
        optimizer=OptimizerConfig(plugin_timeout=5.0),
        plugins=MappingProxyType(plugins),
    )
    entry_points = [
        importlib.metadata.EntryPoint(name, value, GROUP) for name in plugins
    ]
    return PluginRuntime(lambda: config, environ={}, entry_points=lambda: entry_points)


async def call_times(runtime: PluginRuntime, calls: int) -> dict[str, list[float]]:
    """Seconds per call, by ``<plugin>.<method>``, interleaved."""
    times: dict[str, list[float]] = {}
    handles = {name: runtime.plugins[name] for name in ("inproc", "isolated")}
    for _ in range(calls):
        for name, handle in handles.items():
            optimizer = handle.optimizer
            assert optimizer is not None
            for method, args in (
                ("handles", (VIOLATION,)),
                ("propose", (VIOLATION, CONTEXT)),
            ):
                started = time.perf_counter()
                await runtime.call(handle, method, getattr(optimizer, method), *args)
                times.setdefault(f"{name}.{method}", []).append(
                    time.perf_counter() - started
                )
    return times


async def host_starts(starts: int) -> tuple[list[float], list[float]]:
    """Seconds from spawn to ready, and the host's RSS in MiB once loaded."""
    seconds, rss = [], []
    entry_point = importlib.metadata.EntryPoint("p", "plugin_probe:Probe", GROUP)
    source = PluginSource("p", entry_point.value, "bench", "0", entry_point)
    for _ in range(starts):
        host = PluginHost(source, {}, HostLimits(memory=1024**3, cpu=10.0))
        started = time.perf_counter()
        await host.spawn()
        seconds.append(time.perf_counter() - started)
        await host.load()
        assert host.pid is not None
        rss.append(psutil.Process(host.pid).memory_info().rss / 2**20)
        await host.kill()
    return seconds, rss


async def loop_lag(isolation: str) -> float:
    """The loop's longest lateness (ms) around one call of a blocking coroutine."""
    runtime = runtime_for("plugin_probe:Blocking")
    await runtime.rescan()
    watch = LoopWatch(runtime.stalled_by)
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.2)
    watch.max_lag = 0.0
    handle = runtime.plugins[isolation]
    assert handle.optimizer is not None
    # In-process, the call fails: switched off for stalling the loop.
    with contextlib.suppress(PluginCallError):
        propose = handle.optimizer.propose
        await runtime.call(handle, "propose", propose, VIOLATION, CONTEXT)
    await asyncio.sleep(0.2)
    task.cancel()
    await runtime.close()
    return watch.max_lag * 1000


def us(values: list[float]) -> float:
    return statistics.median(values) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    runtime = runtime_for("plugin_probe:Probe")
    await runtime.rescan()
    await call_times(runtime, 50)  # warm-up
    times = await call_times(runtime, args.calls)
    await runtime.close()
    starts, rss = await host_starts(args.starts)
    lags = {name: await loop_lag(name) for name in ("inproc", "isolated")}
    own = psutil.Process().memory_info().rss / 2**20
    result: dict[str, Any] = {
        "calls": args.calls,
        "median_us": {key: round(us(values), 1) for key, values in times.items()},
        "ratio": {
            method: round(
                us(times[f"isolated.{method}"]) / us(times[f"inproc.{method}"]), 2
            )
            for method in ("handles", "propose")
        },
        "host_start_ms": round(statistics.median(starts) * 1000, 1),
        "host_rss_mib": round(statistics.median(rss), 1),
        "bench_process_rss_mib": round(own, 1),
        "loop_max_lag_ms_blocking_plugin": {k: round(v, 1) for k, v in lags.items()},
    }
    width = max(len(k) for k in result["median_us"])
    print(f"{args.calls} calls each, interleaved; medians")
    for key, value in result["median_us"].items():
        print(f"  {key:<{width}}  {value:8.1f} us")
    for method, ratio in result["ratio"].items():
        print(f"  isolated / in-process, {method}: {ratio:.2f}x")
    print(f"  host start (spawn to ready): {result['host_start_ms']} ms")
    print(
        f"  host RSS: {result['host_rss_mib']} MiB "
        f"(this bench process: {result['bench_process_rss_mib']} MiB)"
    )
    for name, lag in result["loop_max_lag_ms_blocking_plugin"].items():
        print(f"  loop max lag, 0.5 s blocking coroutine, {name}: {lag} ms")


if __name__ == "__main__":
    asyncio.run(main())
