"""Plugin hosts: real subprocesses, the same API, limits, and what a kill costs."""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import psutil
import pytest
from structlog.testing import capture_logs

from perfwarden.config.load import Config, OptimizerConfig
from perfwarden.config.model import Isolation, PluginConfig
from perfwarden.optimize.plugin_host import IsolatedOptimizer
from perfwarden.optimize.plugin_runtime import (
    PluginCallError,
    PluginHandle,
    PluginRuntime,
    PluginState,
)
from perfwarden.optimize.plugin_wire import (
    WireError,
    decode_context,
    decode_violation,
    encode_context,
    encode_options,
    encode_violation,
)
from perfwarden.plugin_api import (
    KnobSpec,
    OptimizerContext,
)
from perfwarden.testing import example_violation

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

PROBE_DIR = Path(__file__).parent.parent / "data" / "host_probe"

VIOLATION = example_violation()
CONTEXT = OptimizerContext(
    knobs=MappingProxyType({"batch.size": 64}),
    specs=MappingProxyType({"batch.size": KnobSpec("batch.size", 64, 1, 256, 1)}),
    options=MappingProxyType({"mode": "knob", "levels": (1, 2, {"a": None})}),
)


class TestWire:
    """What crosses to a host comes back equal."""

    def test_violation_and_context_round_trip(self) -> None:
        """Through JSON text and back: equal values, read-only mappings."""
        violation = decode_violation(
            json.loads(json.dumps(encode_violation(VIOLATION)))
        )
        context = decode_context(json.loads(json.dumps(encode_context(CONTEXT))))
        assert VIOLATION == violation
        assert VIOLATION.gap == violation.gap
        assert dict(CONTEXT.knobs) == dict(context.knobs)
        assert dict(CONTEXT.specs) == dict(context.specs)
        assert (1, 2, {"a": None}) == context.options["levels"]
        assert isinstance(context.options["levels"][2], MappingProxyType)  # type: ignore[index]

    def test_alias_bomb_refused(self) -> None:
        """Shared objects cheap in YAML are refused once they would be written out."""
        layer: object = ("x",) * 10
        for _ in range(8):
            layer = (layer,) * 10
        with pytest.raises(WireError, match="more than"):
            encode_options({"bomb": layer})

    def test_only_plain_values(self) -> None:
        """An object that is not plain data does not cross."""
        with pytest.raises(WireError, match="set"):
            encode_options({"odd": {1, 2}})


@pytest.fixture(name="make_runtime")
async def _make_runtime(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Callable[..., PluginRuntime]]:
    """Runtimes whose only plugin is ``host_probe`` in a host process."""
    monkeypatch.setenv("PYTHONPATH", str(PROBE_DIR))
    runtimes: list[PluginRuntime] = []

    def make(
        mode: str = "knob",
        timeout: float = 5.0,
        memory_limit_mb: int = 1024,
        isolation: Isolation | None = None,
    ) -> PluginRuntime:
        options = MappingProxyType({"mode": mode, "marks": str(tmp_path)})
        config = Config(
            optimizer=OptimizerConfig(plugin_timeout=timeout, max_failures=3),
            plugins=MappingProxyType(
                {
                    "probe": PluginConfig(
                        "probe",
                        options=options,
                        memory_limit_mb=memory_limit_mb,
                        isolation=isolation,
                    )
                }
            ),
        )
        entry_point = importlib.metadata.EntryPoint(
            "probe", "host_probe:Probe", "perfwarden.optimizers"
        )
        runtime = PluginRuntime(
            lambda: config, environ={}, entry_points=lambda: [entry_point]
        )
        runtimes.append(runtime)
        return runtime

    yield make
    for runtime in runtimes:
        await runtime.close()


async def loaded(runtime: PluginRuntime) -> tuple[PluginHandle, IsolatedOptimizer]:
    assert ["probe"] == await runtime.rescan()
    handle = runtime.plugins["probe"]
    assert isinstance(handle.optimizer, IsolatedOptimizer)
    return handle, handle.optimizer


class TestHost:
    """A third-party plugin in its host answers as it would in the daemon."""

    async def test_proposals_and_deadline_cross(
        self, make_runtime: Callable[..., PluginRuntime]
    ) -> None:
        """The plugin runs in another pid, sees the call's deadline, and its
        proposals come back as real Proposals."""
        runtime = make_runtime(timeout=2.0)
        handle, optimizer = await loaded(runtime)
        assert Isolation.PROCESS is handle.isolation
        assert await runtime.call(handle, "handles", optimizer.handles, VIOLATION)
        (proposal,) = await runtime.call(
            handle, "propose", optimizer.propose, VIOLATION, CONTEXT
        )
        pid, left = (part.split("=")[1] for part in proposal.rationale.split())
        assert int(pid) == optimizer.host.pid != os.getpid()
        assert 0 < float(left) <= 1.8  # 2 s less the 0.2 s grace
        assert ("batch.size", 32) == (
            proposal.changes[0].knob,
            proposal.changes[0].value,
        )

    async def test_action_applied_and_reverted_in_the_host(
        self, make_runtime: Callable[..., PluginRuntime], tmp_path: Path
    ) -> None:
        """An action's apply and revert run where the plugin made them."""
        runtime = make_runtime("action")
        handle, optimizer = await loaded(runtime)
        (proposal,) = await optimizer.propose(VIOLATION, CONTEXT)
        assert proposal.action is not None
        await runtime.call(handle, "apply", proposal.action.apply)
        assert float((tmp_path / "applied").read_text()) > 0
        await runtime.call(handle, "revert", proposal.action.revert)
        assert VIOLATION.correlation_id == (tmp_path / "reverted").read_text()

    async def test_overrun_kills_the_host_and_the_next_call_gets_a_new_one(
        self, make_runtime: Callable[..., PluginRuntime]
    ) -> None:
        """A call still running at plugin_timeout: its host is killed (not left
        running like a thread); an action of the old host is gone with it."""
        runtime = make_runtime("sleep", timeout=0.5)
        handle, optimizer = await loaded(runtime)
        first = optimizer.host.pid
        assert first is not None
        with capture_logs() as logs, pytest.raises(PluginCallError, match="killed"):
            await runtime.call(handle, "propose", optimizer.propose, VIOLATION, CONTEXT)
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == (
            psutil.STATUS_ZOMBIE
        )
        (event,) = [e for e in logs if e["event"] == "plugin.timed_out"]
        assert event["abandoned"] is True
        assert await runtime.call(handle, "handles", optimizer.handles, VIOLATION)
        assert optimizer.host.pid not in {None, first}
        assert 2 == optimizer.host.generation

    async def test_memory_limit_is_the_plugins_problem(
        self, make_runtime: Callable[..., PluginRuntime]
    ) -> None:
        """256 MiB under a 128 MiB limit: MemoryError in the host; the host and the
        daemon carry on."""
        runtime = make_runtime("hoard", memory_limit_mb=128)
        handle, optimizer = await loaded(runtime)
        pid = optimizer.host.pid
        with pytest.raises(PluginCallError, match="MemoryError"):
            await runtime.call(handle, "propose", optimizer.propose, VIOLATION, CONTEXT)
        assert pid == optimizer.host.pid
        assert PluginState.ACTIVE is handle.state

    async def test_oversized_reply_kills_the_host(
        self, make_runtime: Callable[..., PluginRuntime]
    ) -> None:
        """A 5 MiB reply is over the limit: the call fails, the daemon reads no
        more of it."""
        runtime = make_runtime("huge")
        handle, optimizer = await loaded(runtime)
        with pytest.raises(PluginCallError, match="unreadable reply"):
            await runtime.call(handle, "propose", optimizer.propose, VIOLATION, CONTEXT)
        assert not optimizer.host.running

    async def test_in_process_when_configured(
        self,
        make_runtime: Callable[..., PluginRuntime],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """``isolation: in-process`` loads the plugin object into the daemon."""
        monkeypatch.syspath_prepend(str(PROBE_DIR))
        runtime = make_runtime(isolation=Isolation.IN_PROCESS)
        assert ["probe"] == await runtime.rescan()
        handle = runtime.plugins["probe"]
        assert handle.host is None
        assert Isolation.IN_PROCESS is handle.isolation

    async def test_close_leaves_no_host(
        self, make_runtime: Callable[..., PluginRuntime]
    ) -> None:
        """Closing the runtime kills and reaps every host."""
        runtime = make_runtime()
        _, optimizer = await loaded(runtime)
        pid = optimizer.host.pid
        assert pid is not None
        await runtime.close()
        assert not psutil.pid_exists(pid)
