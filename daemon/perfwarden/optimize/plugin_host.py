"""Process isolation: a plugin in a host subprocess, called through the same API.

:class:`IsolatedOptimizer` stands in for the plugin object inside the daemon: its
``handles`` and ``propose`` are coroutine functions that send the call to the
plugin's host process (:mod:`.plugin_host_child`) and await the answer, so the
runtime's timeout, deadline and circuit breaker apply unchanged and the plugin
cannot tell it runs elsewhere. Proposals come back as data (:mod:`.plugin_wire`);
an action's ``apply`` and ``revert`` are calls back into the host that holds it.

The host runs with an address-space limit (``memory_limit``: past it the plugin
gets ``MemoryError``, the daemon nothing) and a CPU limit per call
(``cpu_limit``); it is the leader of its own process group. What the
daemon does when a host misbehaves:

- a call the daemon stops waiting for (``plugin_timeout``) kills the host's whole
  process group, so nothing of a hung call keeps running; the next call starts a
  new host (not counted in its time) and loads the plugin again (counted);
- a host that dies (``os._exit``, a crash, ``SIGXCPU``) or sends a line over
  :data:`MAX_REPLY` bytes fails the calls waiting on it, with the reason;
- an action proposed by a host that has been replaced since cannot be applied or
  reverted any more (its code died with the host): the call fails and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from perfwarden.deadline import current_deadline
from perfwarden.logs.setup import get_logger
from perfwarden.optimize.plugin_loader import PluginLoadError
from perfwarden.optimize.plugin_wire import (
    encode_context,
    encode_options,
    encode_violation,
    proposal_fields,
)
from perfwarden.plugin_api import Action, Proposal

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from perfwarden.optimize.plugin_loader import PluginSource
    from perfwarden.plugin_api import OptimizerContext, Violation

__all__ = [
    "MAX_REPLY",
    "START_TIMEOUT",
    "HostFailed",
    "HostLimits",
    "IsolatedOptimizer",
    "PluginHost",
    "PluginRaised",
]

#: The longest a new host may take to start (Python, its imports, its limits)
#: before it is ready; not counted in a plugin call's time when loading.
START_TIMEOUT: Final = 30.0
#: The longest reply line read from a host; a longer one kills it.
MAX_REPLY: Final = 4 * 1024 * 1024
_log = get_logger("perfwarden.plugins")


@dataclass(frozen=True, slots=True)
class HostLimits:
    """A host's resource limits (0: none)."""

    #: Address-space bytes (``RLIMIT_AS``).
    memory: int
    #: CPU seconds per call (``RLIMIT_CPU`` renewed at each call).
    cpu: float


class HostFailed(Exception):
    """The host process died, was killed, or broke the protocol."""


class PluginRaised(Exception):
    """The plugin raised in its host; the message is its type and text."""


class PluginResultInvalid(Exception):
    """The plugin returned what the API does not allow."""


def _exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "its connection closed"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (its cpu_limit)" if name == "SIGXCPU" else ""
        return f"it was killed by {name}{hint}"
    return f"it exited with status {returncode}"


class PluginHost:
    """One plugin's host process: started on demand, killed when stuck."""

    def __init__(
        self, source: PluginSource, options: Mapping[str, object], limits: HostLimits
    ) -> None:
        self.source = source
        self._options = options
        self.limits = limits
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        #: Bumped at every start: actions belong to one generation.
        self.generation = 0
        self.starts = 0
        #: Limits the host could not set (a system-call filter refusing setrlimit).
        self.unenforced: list[str] = []
        self._starting: asyncio.Lock | None = None
        self._ready: asyncio.Future[Any] | None = None
        self._loaded = 0

    @property
    def pid(self) -> int | None:
        """The running host's pid (None when there is none)."""
        process = self._process
        return process.pid if process is not None and self.running else None

    @property
    def loaded(self) -> bool:
        """Whether the running host has the plugin loaded."""
        return self.running and self._loaded == self.generation

    @property
    def running(self) -> bool:
        """Whether a host process is up and connected."""
        return (
            self._process is not None
            and self._process.returncode is None
            and self._writer is not None
        )

    async def start(self) -> None:
        """Start a host (:meth:`spawn`) and load the plugin in it (:meth:`load`)."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if not self.running:
                await self.spawn()
            if not self.loaded:
                await self.load()

    async def spawn(self) -> None:
        """Start the host process and wait until it is ready (imports done, limits
        set), at most :data:`START_TIMEOUT`; raises :class:`HostFailed`."""
        await self._spawn()
        ready = self._ready
        assert ready is not None  # noqa: S101 - _spawn made it
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await ready
        except TimeoutError as exc:
            await self.kill()
            msg = f"plugin host of {self.source.name} not ready in {START_TIMEOUT}s"
            raise HostFailed(msg) from exc

    async def load(self) -> None:
        """Import and construct the plugin in the running host; raises
        :class:`~perfwarden.optimize.plugin_loader.PluginLoadError`."""
        source = self.source
        try:
            options = encode_options(self._options)
        except ValueError as exc:
            await self.kill()
            raise PluginLoadError(source, f"options: {exc}") from exc
        reply = await self._send(
            {
                "op": "load",
                "entry_point": {
                    "name": source.entry_point.name,
                    "value": source.entry_point.value,
                    "group": source.entry_point.group,
                },
                "dist": source.dist,
                "version": source.version,
                "options": options,
            },
            respawn=False,
        )
        if not reply["ok"]:
            await self.kill()
            raise PluginLoadError(
                source,
                str(reply.get("error")),
                unconfigured=reply.get("kind") == "unconfigured",
            )
        self._loaded = self.generation
        result = reply.get("result") or {}
        self.unenforced = [str(u) for u in result.get("unenforced") or []]
        if self.unenforced:
            _log.warning(
                "plugin.limits_unenforced",
                plugin=source.name,
                pid=self.pid,
                unenforced=self.unenforced,
            )

    async def _spawn(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        # Fewer malloc arenas and BLAS threads: less address space to reserve.
        env.setdefault("MALLOC_ARENA_MAX", "2")
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "perfwarden.optimize.plugin_host_child",
                "--fd",
                str(child.fileno()),
                "--memory",
                str(self.limits.memory),
                "--cpu",
                repr(self.limits.cpu),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(child.fileno(),),
                start_new_session=True,
                env=env,
            )
        finally:
            child.close()
        reader, self._writer = await asyncio.open_unix_connection(
            sock=parent, limit=MAX_REPLY
        )
        self.generation += 1
        self.starts += 1
        # Whatever still waited on the previous host waits in vain.
        self._fail_pending(f"plugin host of {self.source.name} was replaced")
        # The host's first line, id 0, says it is ready.
        self._ready = self._pending[0] = asyncio.get_running_loop().create_future()
        self._reader_task = asyncio.get_running_loop().create_task(
            self._read(reader, self._process), name=f"plugin-host:{self.source.name}"
        )
        _log.info(
            "plugin.host_started",
            plugin=self.source.name,
            pid=self._process.pid,
            memory_limit=self.limits.memory,
            cpu_limit=self.limits.cpu,
            generation=self.generation,
        )

    async def _read(
        self, reader: asyncio.StreamReader, process: asyncio.subprocess.Process
    ) -> None:
        reason = None
        try:
            while line := await reader.readline():
                reply = json.loads(line)
                if process is not self._process:
                    continue  # a replaced host's late answer: no one waits for it
                future = self._pending.pop(reply.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except (ValueError, asyncio.LimitOverrunError) as exc:
            reason = f"it sent an unreadable reply ({exc})"
        except OSError as exc:
            reason = f"its connection failed ({exc})"
        if process.returncode is None and reason is not None:
            self._kill_group(process)
        returncode = await process.wait()
        if process is self._process and self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
        reason = reason or _exit_reason(returncode)
        if process is self._process:
            message = f"plugin host {process.pid} of {self.source.name}: {reason}"
            self._fail_pending(message)
        _log.warning(
            "plugin.host_exited",
            plugin=self.source.name,
            pid=process.pid,
            returncode=returncode,
            reason=reason,
        )

    def _fail_pending(self, message: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(HostFailed(message))

    async def request(self, op: str, **fields: object) -> Any:
        """Send one call to the host (starting one if needed) and return its
        result; raises what the plugin raised, as the runtime expects."""
        reply = await self._send({"op": op, **fields}, respawn=True)
        if reply["ok"]:
            return reply.get("result")
        kind, error = reply.get("kind"), str(reply.get("error"))
        if kind == "timeout":
            raise TimeoutError(error)
        if kind == "invalid":
            raise PluginResultInvalid(error)
        raise PluginRaised(error)

    async def _send(self, message: dict[str, Any], *, respawn: bool) -> Any:
        if respawn and not self.loaded:
            await self.start()
        writer = self._writer
        if writer is None:
            msg = f"plugin host of {self.source.name} is not running"
            raise HostFailed(msg)
        self._next_id += 1
        request_id = self._next_id
        deadline = current_deadline()
        message = {"id": request_id, **message}
        if deadline != float("inf"):
            message["deadline"] = deadline
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            return await future
        except asyncio.CancelledError:
            # The daemon stopped waiting (plugin_timeout or shutdown): the host is
            # stuck in this call. Kill it, and all it started, now.
            self._pending.pop(request_id, None)
            await self.kill()
            raise
        except (ConnectionError, OSError) as exc:
            self._pending.pop(request_id, None)
            msg = f"plugin host of {self.source.name}: {exc}"
            raise HostFailed(msg) from exc

    def _kill_group(self, process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    async def kill(self) -> None:
        """Kill the host's process group and wait for it (idempotent)."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            self._kill_group(process)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        task = self._reader_task
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    def close_nowait(self) -> None:
        """Kill the host without waiting (the reader task reaps it)."""
        process = self._process
        if process is not None and process.returncode is None:
            self._kill_group(process)


class IsolatedOptimizer:
    """The daemon-side stand-in of a plugin that runs in a :class:`PluginHost`."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    async def handles(self, violation: Violation) -> bool:
        """The plugin's ``handles``, in its host."""
        wanted = await self.host.request(
            "handles", violation=encode_violation(violation)
        )
        if wanted is not True and wanted is not False:
            msg = f"returned {type(wanted).__name__}"
            raise PluginResultInvalid(msg)
        return wanted

    async def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> list[Proposal]:
        """The plugin's ``propose``, in its host; proposals rebuilt and checked."""
        result = await self.host.request(
            "propose",
            violation=encode_violation(violation),
            context=encode_context(context),
        )
        plain = result.get("proposals") if isinstance(result, dict) else None
        if not isinstance(plain, list):
            msg = "the plugin host sent no proposals"
            raise PluginResultInvalid(msg)
        generation = self.host.generation
        proposals = []
        for item in plain:
            fields = proposal_fields(item)
            action = item.get("action")
            if action is not None:
                fields["changes"] = ()
                fields["action"] = Action(
                    description=str(action["description"]),
                    apply=self._action(generation, int(action["id"]), "apply"),
                    revert=self._action(generation, int(action["id"]), "revert"),
                )
            try:
                proposals.append(Proposal(**fields))
            except (TypeError, ValueError) as exc:
                msg = f"invalid proposal: {exc}"
                raise PluginResultInvalid(msg) from exc
        return proposals

    def _action(
        self, generation: int, action_id: int, op: str
    ) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            if self.host.generation != generation or not self.host.running:
                msg = (
                    f"the plugin host that proposed this action is gone; "
                    f"its {op} cannot run"
                )
                raise HostFailed(msg)
            await self.host.request(op, action=action_id)

        return call
