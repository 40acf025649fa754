"""The control socket server: JSON-lines requests, peer credentials, dispatch.

Read commands are answered for anyone who can connect (the socket's mode and group
decide who can). Commands that change anything are checked against the peer's
credentials (SO_PEERCRED): the daemon's own uid, root, or a uid / group that the
config's ``control:`` section allows.

What a client can take is bounded, with the limits read from ``control:`` at each
new connection (so a reload applies them): open connections in all and per uid
(beyond them a connection is answered ``too_many_connections`` and closed at once,
so idle clients cannot exhaust the daemon's file descriptors), the request line's
length and nesting, and the time a client may leave a reply unread (then its
connection is dropped with what it had not read, so unread replies cannot pile up).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from perfwarden.control.protocol import (
    MAX_LINE,
    ProtocolError,
    Request,
    decode_request,
    encode_error,
    encode_ok,
)
from perfwarden.errors import ControlError
from perfwarden.logs.setup import RateLimiter, get_logger

if TYPE_CHECKING:
    from perfwarden.config.load import ControlConfig

__all__ = [
    "Command",
    "ControlCounters",
    "ControlServer",
    "PeerCredentials",
    "is_authorized",
    "judged_first",
]

_IDLE_TIMEOUT: Final = 300.0
#: Refused connections are logged at most this often (a flood is one line a minute).
_REFUSED_LOG_PERIOD: Final = 60.0
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


@dataclass(slots=True)
class ControlCounters:
    """Connection accounting, as ``status --json`` shows it under ``control``."""

    accepted: int = 0
    open: int = 0
    #: Connections closed at once, by reason (``total``, ``per_uid``).
    refused: dict[str, int] = field(default_factory=dict)
    #: Connections dropped because the client left a reply unread.
    slow_readers: int = 0
    too_large: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "accepted": self.accepted,
            "open": self.open,
            "refused": sum(self.refused.values()),
            "refused_by_reason": dict(sorted(self.refused.items())),
            "slow_readers": self.slow_readers,
            "too_large": self.too_large,
        }


class ControlServer:
    """Serves ``control.sock``; one task per connection, requests answered in order."""

    def __init__(
        self,
        commands: Mapping[str, Command],
        control_config: Callable[[], ControlConfig],
        counters: ControlCounters | None = None,
    ) -> None:
        self._commands = commands
        self._control_config = control_config
        self.counters = counters if counters is not None else ControlCounters()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_uid: dict[int, int] = {}
        self._refused_log = RateLimiter(_REFUSED_LOG_PERIOD)

    async def start(self, sock: socket.socket) -> None:
        """Serve on an already bound and listening socket."""
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            # A reader per connection, so that its line limit follows reloads.
            limit = self._control_config().max_request_bytes
            reader = asyncio.StreamReader(limit=limit)
            return asyncio.StreamReaderProtocol(reader, self._serve)

        self._server = await loop.create_unix_server(protocol, sock=sock)

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

    def _admit(self, peer: PeerCredentials) -> str | None:
        """Count a new connection in, or return why it is refused."""
        config = self._control_config()
        if self.counters.open >= config.max_connections:
            return "total"
        if self._per_uid.get(peer.uid, 0) >= config.max_connections_per_uid:
            return "per_uid"
        self.counters.open += 1
        self.counters.accepted += 1
        self._per_uid[peer.uid] = self._per_uid.get(peer.uid, 0) + 1
        return None

    def _leave(self, peer: PeerCredentials) -> None:
        self.counters.open -= 1
        left = self._per_uid[peer.uid] - 1
        if left:
            self._per_uid[peer.uid] = left
        else:
            del self._per_uid[peer.uid]

    def _refuse(self, peer: PeerCredentials, reason: str) -> bytes:
        refused = self.counters.refused
        refused[reason] = refused.get(reason, 0) + 1
        config = self._control_config()
        limit = (
            config.max_connections
            if reason == "total"
            else config.max_connections_per_uid
        )
        if self._refused_log.allow():
            _log.warning(
                "control.refused",
                reason=reason,
                limit=limit,
                uid=peer.uid,
                pid=peer.pid,
                suppressed=self._refused_log.take_suppressed(),
            )
        which = "in all" if reason == "total" else f"for uid {peer.uid}"
        message = f"too many control connections {which} (limit {limit})"
        return encode_error(None, "too_many_connections", message)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - always inside a task
        try:
            peer = PeerCredentials.of(writer.get_extra_info("socket"))
        except OSError:  # the client is already gone
            writer.close()
            return
        refused = self._admit(peer)
        if refused is not None:
            writer.write(self._refuse(peer, refused))
            writer.close()  # the short answer is already in the socket's buffer
            return
        self._tasks.add(task)
        try:
            while True:
                try:
                    async with asyncio.timeout(_IDLE_TIMEOUT):
                        line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    self.counters.too_large += 1
                    limit = self._control_config().max_request_bytes
                    message = f"request longer than {limit} bytes"
                    writer.write(encode_error(None, "too_large", message))
                    break
                if not line:
                    break
                stream = self._stream_for(line, peer)
                if stream is not None:
                    await self._serve_stream(stream, reader, writer)
                    break
                writer.write(await self._answer(line, peer))
                await self._drain(writer)
        except (TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._leave(peer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        """Wait until the client took the reply; drop it if it takes too long."""
        try:
            async with asyncio.timeout(self._control_config().send_timeout):
                await writer.drain()
        except TimeoutError:
            self.counters.slow_readers += 1
            writer.transport.abort()  # frees what it left unread at once
            raise

    def _stream_for(
        self, line: bytes, peer: PeerCredentials
    ) -> tuple[Request, AsyncIterator[Any]] | None:
        try:
            request = decode_request(line, self._control_config().max_json_depth)
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
                await self._drain(writer)
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
            request = decode_request(line, self._control_config().max_json_depth)
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
            reply = encode_ok(request.id, data)
        except ControlError as exc:
            return encode_error(request.id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - one failing command must not end the server
            _log.exception("control.command_failed", command=command.name)
            return encode_error(request.id, "failed", f"{type(exc).__name__}: {exc}")
        if len(reply) > MAX_LINE:
            # No client reads a longer line: say so instead of sending it.
            message = (
                f"the reply would be {len(reply)} bytes, over the protocol's "
                f"{MAX_LINE}; ask for fewer metrics"
            )
            return encode_error(request.id, "too_large", message)
        return reply


def judged_first(
    commands: dict[str, Command], judged: Callable[[], Awaitable[None]]
) -> dict[str, Command]:
    """Commands that first await ``judged`` (the evaluation of every committed
    sample), so that what they read (stats, alerts, a ping after a send) reflects
    every committed sample; streaming commands are left as they are."""

    def judged_before(handler: Handler) -> Handler:
        async def run(args: dict[str, Any]) -> Any:
            await judged()
            return await handler(args)

        return run

    return {
        name: command
        if command.stream
        else dataclasses.replace(
            command, handler=judged_before(cast("Handler", command.handler))
        )
        for name, command in commands.items()
    }
