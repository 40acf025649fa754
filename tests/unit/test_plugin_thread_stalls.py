"""A plain plugin whose worker thread holds the GIL: found, named and counted."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from perfwarden.config.load import Config, OptimizerConfig
from perfwarden.optimize.plugin_calls import in_daemon_thread
from perfwarden.optimize.plugin_loader import PluginSource
from perfwarden.optimize.plugin_runtime import (
    PluginCallError,
    PluginHandle,
    PluginRuntime,
    PluginState,
)
from perfwarden.optimize.plugin_threads import ThreadCall, ThreadCalls
from perfwarden.sampling.gil_probe import GilProbe
from perfwarden.sampling.loop_watch import (
    GIL_WAIT_SHARE,
    HELD_SHARE,
    LoopWatch,
    gil_holder,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

#: Enough of one C call that never releases the GIL to hold it for ~0.5 s here.
HOLD = 25_000_000


def holds_gil() -> int:
    """One C call that keeps the GIL throughout (``sum`` over a range)."""
    return sum(range(HOLD))


class Held:
    """:func:`holds_gil` that notes the share of its wall time it was on the CPU.

    The machine's load decides that share, and a stall is only blamed on a thread
    that ran for :data:`HELD_SHARE` of it: on a machine loaded past that, the
    right outcome is that nobody is named. :attr:`blameable` says which outcome
    the share calls for, with a margin either side (None: too close to call).
    """

    def __init__(self) -> None:
        self.share = 0.0

    def __call__(self) -> int:
        wall, cpu = time.monotonic(), time.thread_time()
        total = holds_gil()
        self.share = (time.thread_time() - cpu) / (time.monotonic() - wall)
        return total

    @property
    def blameable(self) -> bool | None:
        if self.share >= 1.5 * HELD_SHARE:
            return True
        if self.share < 0.75 * HELD_SHARE:
            return False
        return None


@contextlib.asynccontextmanager
async def watched(runtime: PluginRuntime) -> AsyncIterator[LoopWatch]:
    """The daemon's loop watch running over ``runtime``'s plugin threads."""
    watch = LoopWatch(runtime.stalled_by, runtime.threads)
    watching = asyncio.create_task(watch.run())
    await asyncio.sleep(0.1)
    try:
        yield watch
        await asyncio.sleep(0.1)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


def make_runtime(timeout: float = 30) -> PluginRuntime:
    config = Config(optimizer=OptimizerConfig(plugin_timeout=timeout, max_failures=3))
    return PluginRuntime(lambda: config, environ={})


def make_handle(name: str = "probe") -> PluginHandle:
    entry_point = importlib.metadata.EntryPoint(
        name, f"{name}:Probe", "perfwarden.optimizers"
    )
    source = PluginSource(name, f"{name}:Probe", "probe-dist", "1.0", entry_point)
    return PluginHandle(source, PluginState.ACTIVE)


clocks = st.dictionaries(st.integers(0, 5), st.floats(0, 10), max_size=5)


class TestGilHolder:
    """The rule that blames a thread for a stall."""

    @given(
        lag=st.floats(0.1, 10),
        loop_cpu=st.floats(0, 10),
        probe_late=st.floats(0, 10),
        before=clocks,
        after=clocks,
    )
    def test_blames_only_the_busiest_thread_with_the_gil_taken(
        self,
        lag: float,
        loop_cpu: float,
        probe_late: float,
        before: dict[int, float],
        after: dict[int, float],
    ) -> None:
        """A blamed thread ran the most, for a share of the stall, longer than
        the loop, while the probe waited too."""
        key = gil_holder(lag, loop_cpu, probe_late, before, after)
        if key is None:
            return
        used = {k: cpu - before.get(k, 0.0) for k, cpu in after.items()}
        assert used[key] == max(used.values())
        assert used[key] >= HELD_SHARE * lag
        assert used[key] > loop_cpu
        assert probe_late >= GIL_WAIT_SHARE * lag

    def test_the_three_cases(self) -> None:
        """Held GIL: blamed; loop blocked with the GIL free, or the machine
        busy elsewhere: nobody."""
        before, after = {1: 0.2, 2: 5.0}, {1: 1.1, 2: 5.01, 3: 0.05}
        assert 1 == gil_holder(1.0, 0.003, 1.0, before, after)
        assert gil_holder(1.0, 0.003, 0.01, before, after) is None
        assert gil_holder(1.0, 0.003, 1.0, before, {1: 0.3, 2: 5.01}) is None

    def test_a_thread_started_in_the_stall_counts_from_zero(self) -> None:
        """A call that began and ended within one stalled tick is found."""
        assert 7 == gil_holder(0.5, 0.0, 0.5, {}, {7: 0.4})


class TestThreadCalls:
    """The registry of plugin calls in worker threads and their CPU clocks."""

    def test_clock_grows_and_an_ended_call_is_shown_once(self) -> None:
        """A spinning call's CPU clock advances; after it ends its last figure
        appears once, then it is forgotten."""
        calls = ThreadCalls(lambda call, seconds: None)
        stop = threading.Event()

        def spin() -> None:
            while not stop.is_set():
                pass

        call = calls.track(make_handle(), "propose", spin)
        worker = threading.Thread(target=call)
        worker.start()
        deadline = time.monotonic() + 30
        while not calls.clocks() or max(calls.clocks().values()) < 0.05:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stop.set()
        worker.join()
        assert call.final is not None
        assert call.final >= 0.05
        assert [call.final] == list(calls.clocks().values())
        assert {} == calls.clocks()

    def test_blame_counts_once_per_call(self) -> None:
        """Two stalls in one call: reported twice, passed on once, longest kept."""
        blamed: list[tuple[ThreadCall, float]] = []
        calls = ThreadCalls(lambda call, seconds: blamed.append((call, seconds)))
        call = calls.track(make_handle(), "apply", lambda: None)
        call()
        (key,) = calls.clocks()
        assert "probe" == calls.blame(key, 0.3)
        assert "probe" == calls.blame(key, 0.5)
        assert [(call, 0.3)] == blamed
        assert 0.5 == call.stalled
        assert calls.blame(key + 1, 0.3) is None


class TestGilProbe:
    """The probe thread is late exactly when something holds the GIL."""

    async def test_late_while_the_gil_is_held_not_while_the_loop_sleeps(
        self,
    ) -> None:
        """A C call in a thread delays it; the loop thread blocked in a
        system call (GIL released) does not."""
        probe = GilProbe()
        probe.want()
        try:
            await asyncio.sleep(0.05)
            since = time.monotonic()
            time.sleep(0.3)  # noqa: ASYNC251 - the loop blocked, the GIL free
            assert probe.late_since(since) < 0.15
            since = time.monotonic()
            await in_daemon_thread(holds_gil)
            assert probe.late_since(since) > 0.1
        finally:
            probe.unwant()

    def test_runs_only_while_wanted(self) -> None:
        """Unwanted, the probe's thread ends and it reports no lateness."""
        probe = GilProbe()
        assert not probe.running
        probe.want()
        probe.want()
        probe.unwant()
        assert probe.running
        probe.unwant()
        deadline = time.monotonic() + 30
        while probe.running:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        since = time.monotonic()
        time.sleep(0.05)
        assert 0.0 == probe.late_since(since)


class TestThroughTheRuntime:
    """A real stall by a real thread, watched by the daemon's loop watch.

    Each test also checks the outcome the machine's load calls for (see
    :class:`Held`): named and counted when the holder ran enough of its stall,
    nobody named when it did not, and in between at least consistent.
    """

    async def test_gil_holder_named_and_counted(self) -> None:
        """The call fails as a stall, counted once; the loop watch names the
        plugin with ``via: thread``."""
        runtime, handle, held = make_runtime(), make_handle(), Held()
        error = ""
        async with watched(runtime) as watch:
            with capture_logs() as logs:
                try:
                    await runtime.call(handle, "propose", held)
                except PluginCallError as exc:
                    error = str(exc)
        blamed = handle.counts["stalls"] == 1
        assert held.blameable in {blamed, None}
        assert blamed == ("stalled the event loop" in error)
        assert blamed == (handle.counts["failures"] == 1)
        assert PluginState.ACTIVE is handle.state
        stall = max(
            (e for e in logs if e["event"] == "loop.stalled"),
            key=lambda e: e["seconds"],
        )
        assert stall["gil_wait_share"] >= GIL_WAIT_SHARE
        if blamed:
            assert {"propose": 1} == handle.streaks
            assert ("probe", "thread") == (stall["plugin"], stall["via"])
            assert {"plugin": "probe", "via": "thread"}.items() <= (
                watch.last_stall or {}
            ).items()
            events = {e["event"]: e for e in logs}
            assert "thread" == events["plugin.stalled_loop"]["via"]
        else:
            assert (None, None) == (stall["plugin"], stall["via"])

    async def test_a_stall_past_the_timeout_is_one_failure(self) -> None:
        """Blamed and timed out, in whichever order: one failure, one stall."""
        runtime, handle, held = make_runtime(timeout=0.2), make_handle(), Held()
        async with watched(runtime):
            with pytest.raises(PluginCallError):
                await runtime.call(handle, "propose", held)
        assert 1 == handle.counts["failures"]
        assert {"propose": 1} == handle.streaks
        assert (
            handle.counts["stalls"]
            in {
                True: {1},
                False: {0},
                None: {0, 1},
            }[held.blameable]
        )

    async def test_computing_beside_a_blocked_loop_is_not_blamed(self) -> None:
        """A plain call computing in Python while the loop thread is blocked in a
        system call (the GIL free) is innocent, though it used the CPU."""
        runtime, handle = make_runtime(), make_handle()

        def computes() -> int:
            end, count = time.monotonic() + 0.8, 0
            while time.monotonic() < end:
                count += 1
            return count

        async with watched(runtime):
            with capture_logs() as logs:
                calling = asyncio.create_task(runtime.call(handle, "propose", computes))
                await asyncio.sleep(0.05)
                time.sleep(0.4)  # noqa: ASYNC251 - the loop blocked, the GIL free
                assert await calling > 0
        assert 0 == handle.counts["stalls"]
        stalls = [e for e in logs if e["event"] == "loop.stalled"]
        assert stalls
        assert all(e["plugin"] is None for e in stalls)

    async def test_a_load_that_holds_the_gil_is_named_not_failed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A constructor inside one long C call: the stall names the plugin
        (``call: load``) and counts as a stall; the plugin still loads."""
        (tmp_path / "gil_at_load.py").write_text(
            textwrap.dedent(f"""
                import time

                class Slow:
                    share = 0.0

                    def __init__(self, options):
                        wall, cpu = time.monotonic(), time.thread_time()
                        sum(range({HOLD}))
                        used = time.thread_time() - cpu
                        Slow.share = used / (time.monotonic() - wall)

                    def handles(self, violation):
                        return True

                    def propose(self, violation, context):
                        return []
            """),
            encoding="utf-8",
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        entry_point = importlib.metadata.EntryPoint(
            "slow", "gil_at_load:Slow", "perfwarden.optimizers"
        )
        # The built-ins' distribution: loaded in the daemon, not in a host.
        source = PluginSource(
            "slow", "gil_at_load:Slow", "perfwarden", "1", entry_point
        )
        handle = PluginHandle(source, PluginState.FAILED)
        runtime = make_runtime()
        async with watched(runtime):
            with capture_logs() as logs:
                assert await runtime._load(handle)
        assert 0 == handle.counts["failures"]
        assert PluginState.ACTIVE is handle.state
        share = entry_point.load().share
        stalled = [e for e in logs if e["event"] == "plugin.stalled_loop"]
        assert len(stalled) == handle.counts["stalls"]
        if share >= 1.5 * HELD_SHARE:
            assert 1 == handle.counts["stalls"]
        elif share < 0.75 * HELD_SHARE:
            assert 0 == handle.counts["stalls"]
        for event in stalled:
            assert ("slow", "load", "thread") == (
                event["plugin"],
                event["call"],
                event["via"],
            )
