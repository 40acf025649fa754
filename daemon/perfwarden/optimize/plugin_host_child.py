"""The plugin host process: one plugin, its own memory and CPU limits.

Started by :mod:`.plugin_host` as ``python -m perfwarden.optimize.plugin_host_child
--fd N --memory BYTES --cpu SECONDS``. It lowers its own limits first
(``RLIMIT_AS`` to ``--memory``: an allocation past it raises ``MemoryError`` here,
not in the daemon; ``RLIMIT_CORE`` to 0), then serves requests in the wire format
of :mod:`.plugin_wire` on the inherited socket ``N``, each in a task of its own:
plain plugin functions in a worker thread, coroutine functions on this process's
loop, exactly as the daemon runs an in-process plugin, with the call's deadline in
force. Before each call the CPU limit is renewed: ``RLIMIT_CPU`` allows ``--cpu``
seconds more than the process used so far, and the kernel ends the process with
``SIGXCPU`` past it (a plugin thread left spinning after its call included).

The plugin's actions stay here, under ids handed out with the proposals. The host
exits when the daemon closes its end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import inspect
import io
import json
import os
import resource
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from perfwarden.deadline import deadline_scope
from perfwarden.optimize.plugin_calls import in_daemon_thread
from perfwarden.optimize.plugin_loader import PluginLoadError, PluginSource, instantiate
from perfwarden.optimize.plugin_wire import (
    WireError,
    decode_context,
    decode_options,
    decode_violation,
    encode_proposal,
)
from perfwarden.plugin_api import Action, Optimizer, Proposal

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["main"]

_PR_SET_PDEATHSIG: Final = 1
#: How much more likely than the daemon a host is to be chosen by the OOM killer.
OOM_SCORE_ADJ: Final = 500
#: The longest request line the host reads (a violation and a context).
MAX_REQUEST: Final = 16 * 1024 * 1024


def lower_limits(memory: int, cpu: float) -> list[str]:
    """This process's address space to ``memory`` bytes (0: unchanged), no core
    files, and a first CPU limit; what could not be enforced, as sentences (a
    system-call filter may refuse ``setrlimit``)."""
    unenforced = []
    for name, limit, value in (
        ("core files", resource.RLIMIT_CORE, 0),
        ("memory_limit_mb", resource.RLIMIT_AS, memory),
    ):
        if value <= 0 and limit != resource.RLIMIT_CORE:
            continue
        try:
            resource.setrlimit(limit, (value, value))
        except (OSError, ValueError) as exc:
            unenforced.append(f"{name}: {exc}")
    try:
        renew_cpu(cpu)
    except (OSError, ValueError) as exc:
        unenforced.append(f"cpu_limit: {exc}")
    die_with_parent()
    # Ask the OOM killer to take this host before the daemon (raising one's own
    # score needs no privilege); best effort.
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text(f"{OOM_SCORE_ADJ}\n")
    return unenforced


def die_with_parent() -> None:
    """Have the kernel kill this host when the daemon dies, ``kill -9`` included
    (Linux ``PR_SET_PDEATHSIG``); best effort elsewhere. Without it a host stuck in
    a blocking coroutine would notice the daemon's end only when it unblocks."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the daemon died before prctl: go now
            os._exit(0)


def renew_cpu(seconds: float) -> None:
    """Allow ``seconds`` of CPU more than used so far (0: unchanged)."""
    if seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


class _Invalid(Exception):
    """The plugin returned something the API does not allow."""


async def _run(function: Callable[..., Any], *args: object) -> Any:
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    result = await in_daemon_thread(function, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


class Host:
    """Serves one plugin's calls."""

    def __init__(self, cpu: float, unenforced: list[str]) -> None:
        self._cpu = cpu
        self._unenforced = unenforced
        self._plugin: Optimizer | None = None
        self._actions: dict[int, Action] = {}
        self._next_action = 0

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request (every failure becomes an error reply)."""
        reply: dict[str, Any] = {"id": request.get("id")}
        try:
            if not self._unenforced:
                renew_cpu(self._cpu)
            deadline = float(request.get("deadline") or "inf")
            with deadline_scope(deadline):
                result = await self._dispatch(request)
        except PluginLoadError as exc:
            kind = "unconfigured" if exc.unconfigured else "load"
            reply.update(ok=False, kind=kind, error=exc.reason)
        except TimeoutError as exc:
            reply.update(ok=False, kind="timeout", error=_described(exc))
        except (_Invalid, WireError) as exc:
            reply.update(ok=False, kind="invalid", error=str(exc))
        except BaseException as exc:  # noqa: BLE001 - the plugin's, reported back
            reply.update(ok=False, kind="error", error=_described(exc))
        else:
            reply.update(ok=True, result=result)
        return reply

    async def _dispatch(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == "load":
            return await self._load(request)
        plugin = self._plugin
        if plugin is None:
            msg = "no plugin loaded"
            raise RuntimeError(msg)
        if op == "handles":
            wanted = await _run(plugin.handles, decode_violation(request["violation"]))
            if wanted is not True and wanted is not False:
                msg = f"returned {type(wanted).__name__}"
                raise _Invalid(msg)
            return wanted
        if op == "propose":
            proposals = await _run(
                plugin.propose,
                decode_violation(request["violation"]),
                decode_context(request["context"]),
            )
            return self._proposals(proposals)
        if op in {"apply", "revert"}:
            action = self._actions.get(int(request["action"]))
            if action is None:
                msg = "no such action in this plugin host"
                raise RuntimeError(msg)
            await _run(action.apply if op == "apply" else action.revert)
            if op == "revert":
                self._actions.pop(int(request["action"]), None)
            return None
        msg = f"unknown op {op!r}"
        raise RuntimeError(msg)

    async def _load(self, request: dict[str, Any]) -> dict[str, Any]:
        from importlib.metadata import EntryPoint  # noqa: PLC0415 - only at load

        ep = request["entry_point"]
        entry_point = EntryPoint(ep["name"], ep["value"], ep["group"])
        source = PluginSource(
            ep["name"], ep["value"], request["dist"], request["version"], entry_point
        )
        options = decode_options(request["options"])
        self._plugin = await in_daemon_thread(instantiate, source, options)
        return {"pid": os.getpid(), "unenforced": self._unenforced}

    def _proposals(self, proposals: object) -> dict[str, Any]:
        if not isinstance(proposals, list | tuple) or not all(
            isinstance(p, Proposal) for p in proposals
        ):
            msg = f"returned {type(proposals).__name__}, not Proposals"
            raise _Invalid(msg)
        encoded = []
        for proposal in proposals:
            action_id = None
            if proposal.action is not None:
                self._next_action += 1
                action_id = self._next_action
                self._actions[action_id] = proposal.action
            encoded.append(encode_proposal(proposal, action_id))
        return {"proposals": encoded}


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def serve(sock: socket.socket, host: Host) -> None:
    """Answer requests on ``sock`` until the daemon closes it."""
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_REQUEST)
    tasks: set[asyncio.Task[None]] = set()

    async def one(line: bytes) -> None:
        try:
            request = json.loads(line)
        except ValueError as exc:
            reply: dict[str, Any] = {"id": None, "ok": False, "kind": "error"}
            reply["error"] = f"unreadable request: {exc}"
        else:
            reply = await host.answer(request)
        try:
            data = json.dumps(reply).encode() + b"\n"
        except (TypeError, ValueError) as exc:
            data = json.dumps(
                {"id": reply["id"], "ok": False, "kind": "invalid", "error": str(exc)}
            ).encode()
            data += b"\n"
        writer.write(data)
        await writer.drain()

    # Imports done, limits set: the daemon may start counting the plugin's time.
    writer.write(json.dumps({"id": 0, "ok": True, "result": "ready"}).encode() + b"\n")
    await writer.drain()
    while line := await reader.readline():
        task = asyncio.create_task(one(line))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the host process."""
    parser = argparse.ArgumentParser(prog="perfwarden-plugin-host")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--memory", type=int, default=0)
    parser.add_argument("--cpu", type=float, default=0.0)
    args = parser.parse_args(argv)
    # The host shares the daemon's stdout (its log): a plugin's print() goes out a
    # whole line per write, never half a line inside one of the daemon's.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    unenforced = lower_limits(args.memory, args.cpu)
    sock = socket.socket(fileno=args.fd)
    asyncio.run(serve(sock, Host(args.cpu, unenforced)))
    # Threads of abandoned plain calls may still run: do not wait for them.
    os._exit(0)


if __name__ == "__main__":
    main()
