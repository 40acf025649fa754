"""Plugins that exit, block the loop or hang in actions: counted, attributed, off."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import subprocess
import sys
import time

import pytest
from structlog.testing import capture_logs

from perfwarden.config.load import Config, ConfigError, OptimizerConfig, parse_config
from perfwarden.config.model import Isolation
from perfwarden.optimize.plugin_loader import PluginSource
from perfwarden.optimize.plugin_runtime import (
    STALL_LIMIT,
    PluginCallError,
    PluginHandle,
    PluginRuntime,
    PluginState,
)
from perfwarden.sampling.loop_watch import TICK, LoopWatch


def make_runtime(timeout: float = 1.0, max_failures: int = 3) -> PluginRuntime:
    config = Config(
        optimizer=OptimizerConfig(plugin_timeout=timeout, max_failures=max_failures)
    )
    return PluginRuntime(lambda: config, environ={})


def make_handle() -> PluginHandle:
    entry_point = importlib.metadata.EntryPoint(
        "probe", "probe:Probe", "perfwarden.optimizers"
    )
    source = PluginSource("probe", "probe:Probe", "probe-dist", "1.0", entry_point)
    return PluginHandle(source, PluginState.ACTIVE)


class TestBaseException:
    """``sys.exit()`` and ``KeyboardInterrupt`` in a plugin are its failures."""

    async def test_sys_exit_in_a_thread(self) -> None:
        """A plain function calling ``sys.exit(3)`` fails the call, nothing more."""
        runtime, handle = make_runtime(), make_handle()
        with pytest.raises(PluginCallError, match="SystemExit"):
            await runtime.call(handle, "propose", sys.exit, 3)
        assert (1, 1) == (handle.counts["failures"], handle.consecutive_failures)
        assert PluginState.ACTIVE is handle.state

    async def test_sys_exit_in_a_coroutine(self) -> None:
        """A coroutine calling ``sys.exit()`` on the loop fails the call too."""
        runtime, handle = make_runtime(), make_handle()

        async def exits() -> None:
            await asyncio.sleep(0)
            sys.exit(0)

        with pytest.raises(PluginCallError, match="SystemExit"):
            await runtime.call(handle, "propose", exits)
        assert 1 == handle.counts["failures"]

    async def test_keyboard_interrupt_and_own_cancelled_error(self) -> None:
        """A plugin raising KeyboardInterrupt or CancelledError is counted as failing;
        the calling task is not cancelled."""
        runtime, handle = make_runtime(), make_handle()

        def interrupts() -> None:
            raise KeyboardInterrupt

        async def cancels() -> None:
            raise asyncio.CancelledError

        for function in (interrupts, cancels):
            with pytest.raises(PluginCallError):
                await runtime.call(handle, "propose", function)
        assert 2 == handle.counts["failures"]

    async def test_cancelling_the_caller_still_cancels(self) -> None:
        """Cancelling the daemon's own task is not swallowed as a plugin failure."""
        runtime, handle = make_runtime(timeout=30.0), make_handle()

        async def waits() -> None:
            await asyncio.sleep(30)

        task = asyncio.create_task(runtime.call(handle, "propose", waits))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 0 == handle.counts["failures"]


class TestStreaks:
    """Action hangs count toward the breaker whatever ``propose`` does."""

    async def test_good_propose_does_not_excuse_failing_apply(self) -> None:
        """propose succeeds between every failing apply: disabled at max_failures."""
        runtime, handle = make_runtime(max_failures=3), make_handle()

        def apply() -> None:
            raise RuntimeError("apply always fails")

        for _ in range(3):
            await runtime.call(handle, "propose", list)
            runtime.succeeded(handle, "propose")
            with pytest.raises(PluginCallError):
                await runtime.call(handle, "apply", apply)
        assert PluginState.DISABLED is handle.state
        assert {"propose": 0, "action": 3} == handle.streaks

    async def test_hanging_revert_counts_as_action(self) -> None:
        """An abandoned ``revert`` joins the action streak and disables."""
        runtime, handle = make_runtime(timeout=0.1, max_failures=2), make_handle()

        async def hangs() -> None:
            await asyncio.sleep(10)

        with capture_logs() as logs:
            for _ in range(2):
                runtime.succeeded(handle, "propose")
                with pytest.raises(PluginCallError, match="timed out"):
                    await runtime.call(handle, "revert", hangs)
        assert PluginState.DISABLED is handle.state
        assert ["plugin.disabled"] == [
            e["event"] for e in logs if e["event"] == "plugin.disabled"
        ]

    async def test_success_of_the_same_kind_resets(self) -> None:
        """A good apply ends the action streak."""
        runtime, handle = make_runtime(), make_handle()
        with pytest.raises(PluginCallError):
            await runtime.call(handle, "apply", sys.exit)
        runtime.succeeded(handle, "apply")
        assert 0 == handle.consecutive_failures


class TestLoopStalls:
    """A coroutine that blocks the loop is measured, named and switched off."""

    async def test_blocking_coroutine_switched_off(self) -> None:
        """``time.sleep`` inside ``async def propose``: plugin.stalled_loop, then
        disabled at once, its result discarded."""
        runtime, handle = make_runtime(), make_handle()

        async def blocks() -> list[object]:
            await asyncio.sleep(0)
            time.sleep(3 * STALL_LIMIT)  # noqa: ASYNC251 - the misbehaviour under test
            return []

        with capture_logs() as logs, pytest.raises(PluginCallError, match="stalled"):
            await runtime.call(handle, "propose", blocks)
        (stall,) = [e for e in logs if e["event"] == "plugin.stalled_loop"]
        assert ("probe", "propose") == (stall["plugin"], stall["call"])
        assert stall["seconds"] > STALL_LIMIT
        assert PluginState.DISABLED is handle.state
        assert 1 == handle.counts["stalls"]

    async def test_stall_beyond_the_timeout_is_attributed(self) -> None:
        """A step longer than plugin_timeout: the timeout could not fire during it;
        the stall is still named after it."""
        runtime, handle = make_runtime(timeout=0.1), make_handle()

        async def blocks() -> None:
            time.sleep(0.3)  # noqa: ASYNC251 - the misbehaviour under test
            await asyncio.sleep(10)

        with capture_logs() as logs, pytest.raises(PluginCallError):
            await runtime.call(handle, "propose", blocks)
        assert [e for e in logs if e["event"] == "plugin.stalled_loop"]
        assert PluginState.DISABLED is handle.state

    async def test_awaiting_coroutine_is_fine(self) -> None:
        """A coroutine that awaits (many short steps) is not a stall."""
        runtime, handle = make_runtime(), make_handle()

        async def polite() -> str:
            for _ in range(20):
                await asyncio.sleep(0.01)
            return "done"

        assert "done" == await runtime.call(handle, "propose", polite)
        assert (PluginState.ACTIVE, 0) == (handle.state, handle.counts["stalls"])

    async def test_values_and_exceptions_pass_through_the_steps(self) -> None:
        """What the loop sends into a step and what the plugin catches are intact."""
        runtime, handle = make_runtime(timeout=0.2), make_handle()
        caught: list[str] = []

        async def catches_timeout() -> str:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                caught.append("cancelled")
                raise
            return "never"

        with pytest.raises(PluginCallError, match="timed out"):
            await runtime.call(handle, "propose", catches_timeout)
        assert ["cancelled"] == caught


class TestLoopWatch:
    """The loop watch counts stalls and names the plugin that caused one."""

    def test_stall_attributed_to_the_plugin(self) -> None:
        """A late wake-up past the threshold names whoever the runtime says."""
        since: list[float] = []

        def culprit(at: float) -> str | None:
            since.append(at)
            return "blocker"

        watch = LoopWatch(culprit)
        watch.observe(0.01, now=100.0)
        with capture_logs() as logs:
            watch.observe(2.0, now=110.0)
        assert (1, 2.0) == (watch.stalls, watch.max_lag)
        assert {"seconds": 2.0, "plugin": "blocker", "via": "coroutine"} == (
            watch.last_stall
        )
        assert [108.0 - TICK] == since
        (event,) = logs
        assert ("loop.stalled", "blocker") == (event["event"], event["plugin"])
        assert 2000.0 == watch.status()["max_lag_ms"]

    async def test_runtime_names_a_recent_stall_only(self) -> None:
        """``stalled_by`` names the plugin whose step ended after ``since``."""
        runtime, handle = make_runtime(), make_handle()

        async def blocks() -> None:
            time.sleep(2 * STALL_LIMIT)  # noqa: ASYNC251 - the misbehaviour under test

        before = time.monotonic()
        with pytest.raises(PluginCallError):
            await runtime.call(handle, "propose", blocks)
        assert "probe" == runtime.stalled_by(before)
        assert runtime.stalled_by(time.monotonic() + 1) is None


class TestHostLimits:
    """A host that cannot set a limit says which, and still runs."""

    def test_limit_above_the_hard_limit_is_reported(self) -> None:
        """Raising past an inherited hard limit fails; the reason is returned."""
        code = (
            "import resource, json\n"
            "from perfwarden.optimize.plugin_host_child import lower_limits\n"
            "resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))\n"
            "print(json.dumps(lower_limits(2**32, 5.0)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        (problem,) = json.loads(result.stdout)
        assert problem.startswith("memory_limit_mb: ")


class TestIsolationSettings:
    """``isolation``, ``memory_limit_mb`` and ``cpu_limit`` are the daemon's keys."""

    def test_parsed_and_kept_out_of_the_options(self) -> None:
        """The three keys reach PluginConfig; the plugin's options do not see them."""
        config = parse_config(
            "version: 1\n"
            "plugins:\n"
            "  acme: {isolation: in-process, memory_limit_mb: 256, cpu_limit: 2s,"
            " knob: batch.size}\n"
        )
        acme = config.plugins["acme"]
        assert (Isolation.IN_PROCESS, 256, 2.0) == (
            acme.isolation,
            acme.memory_limit_mb,
            acme.cpu_limit,
        )
        assert {"knob": "batch.size"} == dict(acme.options)

    def test_defaults(self) -> None:
        """Unset: isolation by distribution, 1024 MiB, 10 s."""
        acme = parse_config("version: 1\nplugins:\n  acme: {}\n").plugins["acme"]
        assert (None, 1024, 10.0) == (
            acme.isolation,
            acme.memory_limit_mb,
            acme.cpu_limit,
        )

    def test_bad_values_rejected_with_their_keys(self) -> None:
        """A misspelt mode and a negative limit are named in the error."""
        with pytest.raises(ConfigError) as caught:
            parse_config(
                "version: 1\nplugins:\n"
                "  acme: {isolation: proces, memory_limit_mb: -1}\n"
            )
        text = str(caught.value)
        assert "plugins.acme.isolation" in text
        assert "did you mean 'process'" in text
        assert "plugins.acme.memory_limit_mb" in text

    def test_builtins_in_process_third_parties_in_hosts(self) -> None:
        """The default follows the distribution."""
        runtime = make_runtime()
        entry_point = importlib.metadata.EntryPoint("x", "x:X", "perfwarden.optimizers")
        builtin = PluginSource("x", "x:X", "perfwarden", "1", entry_point)
        third = PluginSource("x", "x:X", "acme-tuner", "1", entry_point)
        assert Isolation.IN_PROCESS is runtime._isolation(builtin)
        assert Isolation.PROCESS is runtime._isolation(third)
