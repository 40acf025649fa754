"""The control socket server: JSON-lines requests, peer credentials, dispatch.

Read commands are answered for anyone who can connect (the socket's mode and group
decide who can). Commands that change anything are checked against the peer's
credentials (SO_PEERCRED): the daemon's own uid, root, or a uid / group that the
config's ``control:`` section allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from perfwarden.control.protocol import (
    MAX_LINE,
    ProtocolError,
    Request,
    decode_request,
    encode_error,
    encode_ok,
)
from perfwarden.errors import ControlError
from perfwarden.logs.setup import get_logger

if TYPE_CHECKING:
    from perfwarden.config.load import ControlConfig

__all__ = ["Command", "ControlServer", "PeerCredentials", "is_authorized"]

_IDLE_TIMEOUT: Final = 300.0
_log = get_logger("perfwarden.control")


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is at the other end of a Unix socket connection."""

    pid: int
    uid: int
    gid: int

    @classmethod
    def of(cls, sock: socket.socket) -> PeerCredentials:
        """Read SO_PEERCRED from a connected Unix socket."""
        raw = sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
        )
        pid, uid, gid = struct.unpack("3i", raw)
        return cls(pid, uid, gid)

    def groups(self) -> set[int]:
        """The peer's primary and supplementary group ids (from /proc)."""
        gids = {self.gid}
        with contextlib.suppress(OSError), open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("Groups:"):
                    gids.update(int(g) for g in line.split()[1:])
                    break
        return gids


def is_authorized(peer: PeerCredentials, control: ControlConfig) -> bool:
    """May ``peer`` run commands that change the daemon's state?"""
    if peer.uid in (0, os.getuid()) or peer.uid in control.allow_uids:
        return True
    if not control.allow_groups:
        return False
    allowed: set[int] = set()
    for name in control.allow_groups:
        with contextlib.suppress(KeyError):
            allowed.add(grp.getgrnam(name).gr_gid)
    return bool(allowed & peer.groups())


Handler = Callable[[dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[[dict[str, Any]], AsyncIterator[Any]]


@dataclass(frozen=True, slots=True)
class Command:
    """A control command: its handler and whether it changes state.

    A ``stream`` command's handler is an async generator: each item it yields is
    sent as one ``ok`` response with the request's id, until the client hangs up.
    """

    name: str
    handler: Handler | StreamHandler
    mutating: bool = False
    stream: bool = False


class ControlServer:
    """Serves ``control.sock``; one task per connection, requests answered in order."""

    def __init__(
        self,
        commands: Mapping[str, Command],
        control_config: Callable[[], ControlConfig],
    ) -> None:
        self._commands = commands
        self._control_config = control_config
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, sock: socket.socket) -> None:
        """Serve on an already bound and listening socket."""
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=MAX_LINE
        )

    async def close(self) -> None:
        """Stop accepting and end open connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always inside a task
        self._tasks.add(task)
        try:
            peer = PeerCredentials.of(writer.get_extra_info("socket"))
            while True:
                try:
                    async with asyncio.timeout(_IDLE_TIMEOUT):
                        line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(encode_error(None, "too_large", "request too large"))
                    break
                if not line:
                    break
                stream = self._stream_for(line, peer)
                if stream is not None:
                    await self._serve_stream(stream, reader, writer)
                    break
                writer.write(await self._answer(line, peer))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    def _stream_for(
        self, line: bytes, peer: PeerCredentials
    ) -> tuple[Request, AsyncIterator[Any]] | None:
        try:
            request = decode_request(line)
        except ProtocolError:
            return None
        command = self._commands.get(request.command)
        if command is None or not command.stream:
            return None
        if command.mutating and not is_authorized(peer, self._control_config()):
            return None
        iterator: AsyncIterator[Any] = command.handler(request.args)  # type: ignore[assignment]
        return request, iterator

    async def _serve_stream(
        self,
        stream: tuple[Request, AsyncIterator[Any]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        request, iterator = stream
        hangup = asyncio.ensure_future(reader.read(1))
        item: asyncio.Future[Any] | None = None
        try:
            while True:
                item = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait(
                    {item, hangup}, return_when=asyncio.FIRST_COMPLETED
                )
                if hangup in done:
                    return
                try:
                    data = item.result()
                except StopAsyncIteration:
                    return
                item = None
                writer.write(encode_ok(request.id, data))
                await writer.drain()
        finally:
            hangup.cancel()
            # The generator may be suspended inside the pending anext(): cancel that
            # and let it finish before closing the generator.
            if item is not None and not item.done():
                item.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await item
            with contextlib.suppress(RuntimeError):
                await iterator.aclose()  # type: ignore[attr-defined]

    async def _answer(self, line: bytes, peer: PeerCredentials) -> bytes:
        try:
            request = decode_request(line)
        except ProtocolError as exc:
            return encode_error(None, "bad_request", str(exc))
        command = self._commands.get(request.command)
        if command is None:
            known = ", ".join(sorted(self._commands))
            message = f"unknown command {request.command!r} (known: {known})"
            return encode_error(request.id, "unknown_command", message)
        if command.mutating and not is_authorized(peer, self._control_config()):
            _log.warning(
                "control.forbidden", command=command.name, uid=peer.uid, pid=peer.pid
            )
            message = (
                f"uid {peer.uid} may not run {command.name!r}: only the daemon's "
                "uid, root, and control.allow_uids / allow_groups may change state"
            )
            return encode_error(request.id, "forbidden", message)
        try:
            data = await command.handler(request.args)  # type: ignore[misc]
            return encode_ok(request.id, data)
        except ControlError as exc:
            return encode_error(request.id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - one failing command must not end the server
            _log.exception("control.command_failed", command=command.name)
            return encode_error(request.id, "failed", f"{type(exc).__name__}: {exc}")
