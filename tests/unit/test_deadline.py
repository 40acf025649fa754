"""Plugin-call deadlines: the arithmetic, the scope, and what a plugin sees."""

from __future__ import annotations

import asyncio
import importlib.metadata
import math
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from perfwarden.config.load import Config, OptimizerConfig
from perfwarden.deadline import (
    MAX_GRACE,
    budget,
    deadline_scope,
    grace,
    remaining,
    timeout_for,
)
from perfwarden.optimize.plugin_loader import PluginSource
from perfwarden.optimize.plugin_runtime import (
    PluginCallError,
    PluginHandle,
    PluginRuntime,
    PluginState,
)
from perfwarden.plugin_api import current_deadline, time_left
from perfwarden.testing import plugin_deadline

seconds = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)


class TestArithmetic:
    """Budget = plugin_timeout less a grace of a tenth, at most half a second."""

    @pytest.mark.parametrize(
        ("timeout", "expected_grace", "expected_budget"),
        [(5.0, 0.5, 4.5), (0.5, 0.05, 0.45), (2.0, 0.2, 1.8), (30.0, 0.5, 29.5)],
    )
    def test_defaults_and_edges(
        self, timeout: float, expected_grace: float, expected_budget: float
    ) -> None:
        """The documented examples: 5 s gives 4.5 s, 30 s gives 29.5 s."""
        assert expected_grace == pytest.approx(grace(timeout))
        assert expected_budget == pytest.approx(budget(timeout))

    @given(seconds)
    def test_budget_positive_and_grace_bounded(self, timeout: float) -> None:
        """The plugin always gets most of the time; the grace never exceeds 0.5 s."""
        assert 0 < grace(timeout) <= MAX_GRACE
        assert 0.9 * timeout - 1e-9 <= budget(timeout) < timeout

    @given(seconds)
    def test_timeout_for_inverts_budget(self, wanted: float) -> None:
        """``timeout_for`` is the least plugin_timeout that gives ``wanted``."""
        timeout = timeout_for(wanted)
        assert budget(timeout) == pytest.approx(wanted, rel=1e-9)
        assert budget(timeout * (1 - 1e-6)) < wanted

    def test_remaining_never_negative(self) -> None:
        """Past the deadline nothing is left; without one, everything is."""
        assert 2.5 == remaining(10.0, 7.5)
        assert 0.0 == remaining(10.0, 12.0)
        assert math.inf == remaining(math.inf, 1e9)


class TestScope:
    """The deadline in force, as a plugin reads it."""

    def test_no_deadline_outside_a_call(self) -> None:
        """Code called outside the daemon (a plugin's own tests) has no limit."""
        assert math.inf == current_deadline()
        assert math.inf == time_left()

    def test_scope_sets_and_restores(self) -> None:
        """Inside the scope the deadline holds; after it, none."""
        with deadline_scope(time.monotonic() + 2.0) as deadline:
            assert deadline == current_deadline()
            assert 1.5 < time_left() <= 2.0
        assert math.inf == current_deadline()

    def test_inner_scope_never_extends(self) -> None:
        """A later deadline inside an earlier one keeps the earlier."""
        with deadline_scope(100.0), deadline_scope(200.0) as inner:
            assert 100.0 == inner == current_deadline()
        with deadline_scope(200.0), deadline_scope(100.0):
            assert 100.0 == current_deadline()

    def test_past_deadline_leaves_zero(self) -> None:
        """Once the deadline passed, ``time_left`` is 0, not negative."""
        with deadline_scope(time.monotonic() - 1.0):
            assert 0.0 == time_left()

    def test_testing_helper(self) -> None:
        """``perfwarden.testing.plugin_deadline`` gives a plugin's tests a deadline."""
        with plugin_deadline(0.25):
            assert 0.2 < time_left() <= 0.25
        assert math.inf == time_left()


def make_runtime(timeout: float, max_failures: int = 3) -> PluginRuntime:
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


class TestRuntimeCall:
    """``PluginRuntime.call`` gives each call its deadline and tells timeouts apart."""

    async def test_thread_sees_the_deadline(self) -> None:
        """A plain function, in its worker thread, reads the call's time left."""
        runtime, handle = make_runtime(2.0), make_handle()

        def probe() -> tuple[float, bool]:
            return time_left(), threading.current_thread() is threading.main_thread()

        left, on_main = await runtime.call(handle, "apply", probe)
        assert not on_main
        assert 1.5 < left <= 1.8  # 2 s less the 0.2 s grace
        assert math.inf == time_left()  # nothing leaks out of the call

    async def test_coroutine_sees_the_deadline(self) -> None:
        """A coroutine function, on the loop, reads the same."""
        runtime, handle = make_runtime(2.0), make_handle()

        async def probe() -> float:
            await asyncio.sleep(0)
            return time_left()

        assert 1.5 < await runtime.call(handle, "apply", probe) <= 1.8

    async def test_concurrent_calls_have_their_own_deadlines(self) -> None:
        """Calls running side by side do not see each other's deadline."""
        runtime, handle = make_runtime(2.0), make_handle()

        async def late_probe() -> float:
            await asyncio.sleep(0.3)
            return current_deadline()

        first = asyncio.create_task(runtime.call(handle, "apply", late_probe))
        await asyncio.sleep(0.1)
        second = await runtime.call(handle, "revert", late_probe)
        assert second > await first

    async def test_plugin_timeout_is_reported_not_abandoned(self) -> None:
        """A plugin that meets its deadline and raises TimeoutError: a clean
        timeout, counted once as a timeout and once as a failure."""
        runtime, handle = make_runtime(0.5), make_handle()

        def bounded() -> None:
            time.sleep(time_left())
            msg = "gave up at the deadline; child killed"
            raise TimeoutError(msg)

        with capture_logs() as logs, pytest.raises(PluginCallError, match="gave up"):
            await runtime.call(handle, "apply", bounded)
        (event,) = [e for e in logs if e["event"] == "plugin.timed_out"]
        assert event["abandoned"] is False
        assert "TimeoutError: gave up at the deadline" in event["error"]
        assert 0.4 <= event["seconds"] < 0.5
        assert (1, 1, 1) == (
            handle.counts["timeouts"],
            handle.counts["failures"],
            handle.consecutive_failures,
        )
        assert PluginState.ACTIVE is handle.state

    async def test_overrun_is_abandoned(self) -> None:
        """A plugin that ignores its deadline is abandoned at plugin_timeout."""
        runtime, handle = make_runtime(0.2), make_handle()
        release = threading.Event()
        try:
            with capture_logs() as logs, pytest.raises(PluginCallError):
                await runtime.call(handle, "apply", release.wait, 10)
        finally:
            release.set()
        (event,) = [e for e in logs if e["event"] == "plugin.timed_out"]
        assert event["abandoned"] is True
        assert "abandoned" in event["error"]
        assert 1 == handle.counts["timeouts"]

    async def test_other_errors_are_not_timeouts(self) -> None:
        """A plain exception is a failure, logged as ``plugin.call_failed``."""
        runtime, handle = make_runtime(1.0), make_handle()

        def broken() -> None:
            raise ValueError("nope")

        with capture_logs() as logs, pytest.raises(PluginCallError):
            await runtime.call(handle, "apply", broken)
        assert ["plugin.call_failed"] == [e["event"] for e in logs]
        assert (0, 1) == (handle.counts["timeouts"], handle.counts["failures"])

    async def test_breaker_counts_clean_timeouts(self) -> None:
        """max_failures clean timeouts in a row disable the plugin, as documented."""
        runtime, handle = make_runtime(0.3, max_failures=2), make_handle()

        def bounded() -> None:
            raise TimeoutError

        for _ in range(2):
            with pytest.raises(PluginCallError):
                await runtime.call(handle, "apply", bounded)
        assert PluginState.DISABLED is handle.state
