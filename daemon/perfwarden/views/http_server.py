"""The optional HTTP listener: ``/metrics`` for Prometheus, ``/`` the dashboard.

Off unless the config sets ``http.listen`` (``"127.0.0.1:9464"``). It runs in the
daemon's event loop (``asyncio.start_server``), so it reads the loop-owned state
directly: a scrape gathers its numbers on the loop in chunks (yielding between
them) and computes percentiles and writes the text in a worker thread on the
copied snapshot (:mod:`perfwarden.views.exposition`). Nothing is done per sample on the
ingest path.

The HTTP is deliberately tiny: HTTP/1.1, ``GET`` and ``HEAD``, a request head of at
most 8 KiB, one response per connection (``Connection: close``); a body is
gzip-compressed when the request's ``Accept-Encoding`` allows it (Prometheus always
asks). Bounded by
``http:``: the head must arrive and the response be taken within ``timeout``
(10 s; a client that does not read its response is dropped with it, so unread
responses cannot pile up or hold every slot), at most ``max_connections`` (16) at
once (more get 503; at most 4 of them may be ``/metrics`` or ``/api/state``
responses, whose bodies are large), and a ``Host`` header that names this
listener: an IP address, ``localhost`` or one of ``allowed_hosts`` (a page served
from another name, as in DNS rebinding, gets 421). Routes:

* ``/metrics``: the exposition (OpenMetrics when the scraper asks for it);
* ``/-/healthy``: 200 while the daemon serves (a liveness probe);
* ``/-/ready``: 200 once the config is loaded and the state restored, 503 before
  that and while stopping (a readiness probe), as Prometheus' own paths;
* ``/``: the dashboard, one self-contained HTML page (no external requests, which
  its Content-Security-Policy enforces);
* ``/api/state``: the JSON the page polls every second (the control commands'
  data: status, stats with the newest window values, alerts, knobs, actions).

The listener follows the config: a reload that changes ``http.listen`` re-binds
it, and a bind that fails (address in use) is logged and retried every 5 s.

The daemon only needs ``await HttpServer(daemon).start()`` and
``await server.stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ipaddress
import json
import math
import platform
import time
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast
from urllib.parse import urlsplit

from perfwarden import __version__
from perfwarden.control.handlers import build_commands, series_stats
from perfwarden.logs.setup import get_logger
from perfwarden.views.exposition import Exposition

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from perfwarden.config.load import HttpConfig
    from perfwarden.readmodel import DaemonControl

    _Handler: TypeAlias = Callable[[dict[str, Any]], Awaitable[Any]]

__all__ = ["HttpServer", "accepts_gzip", "dashboard_state", "host_allowed"]

_log = get_logger("perfwarden.http")

_MAX_HEAD: Final = 8192
#: Bodies shorter than this are sent as they are: gzip would not pay for itself.
_GZIP_MIN: Final = 1024
#: Fast compression: a 1000-series exposition shrinks about 9-fold at level 1
#: for a few ms of CPU, where level 6 would cost several times that for ~15% less.
_GZIP_LEVEL: Final = 1
#: ``/metrics`` and ``/api/state`` responses being built or sent at once.
_MAX_BODIES: Final = 4
_FOLLOW_INTERVAL: Final = 1.0
_RETRY_INTERVAL: Final = 5.0
#: Series and newest samples per series in ``/api/state``.
_STATE_SERIES: Final = 100
_STATE_POINTS: Final = 240
_STATE_ACTIONS: Final = 20
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_CSP: Final = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


class HttpServer:
    """The listener; bound while the config has ``http.listen``."""

    def __init__(self, daemon: DaemonControl) -> None:
        self._daemon = daemon
        self._server: asyncio.Server | None = None
        self._bound_for: tuple[str, int] | None = None
        self._retry_at = 0.0
        self._follow: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._commands = build_commands(daemon)
        self._page: bytes | None = None
        self._exposition = Exposition(daemon)
        #: The address actually bound (port 0 resolved), or None.
        self.address: tuple[str, int] | None = None
        self._bodies_in_flight = 0
        #: Refusals and drops, for ``status --json`` under ``http``.
        self.counters = {"busy": 0, "slow_readers": 0, "timeouts": 0, "bad_host": 0}

    @property
    def public_url(self) -> str | None:
        """The URL others reach this server at (a wildcard bind named by the
        host's name), or None while unbound: the base of alerts' generatorURL."""
        if self.address is None:
            return None
        host, port = self.address
        if host in {"0.0.0.0", "::"}:  # noqa: S104 - naming the wildcard, not binding
            host = platform.node() or host
        return f"http://{_authority(host, port)}/"

    async def start(self) -> None:
        """Bind if configured, and follow the config from now on."""
        await self._sync()
        self._follow = asyncio.create_task(self._follow_loop(), name="http-follow")

    async def stop(self) -> None:
        """Stop listening and finish (or cancel) the requests in progress."""
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
            self._follow = None
        await self._unbind()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    # -- binding ----------------------------------------------------------------------

    async def _follow_loop(self) -> None:
        while True:
            await asyncio.sleep(_FOLLOW_INTERVAL)
            try:
                await self._sync()
            except Exception:  # noqa: BLE001 - the listener must not die silently
                _log.exception("http.failed")

    async def _sync(self) -> None:
        wanted = self._daemon.config.http.listen
        if wanted == self._bound_for and (
            self._server is not None
            or wanted is None
            or time.monotonic() < self._retry_at
        ):
            return
        await self._unbind()
        self._bound_for = wanted
        if wanted is None:
            return
        host, port = wanted
        try:
            self._server = await asyncio.start_server(
                self._accept, host, port, limit=_MAX_HEAD, reuse_address=True
            )
        except OSError as exc:
            self._retry_at = time.monotonic() + _RETRY_INTERVAL
            _log.error("http.bind_failed", host=host, port=port, error=str(exc))
            return
        sockname = self._server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        _log.info(
            "http.started",
            host=self.address[0],
            port=self.address[1],
            url=f"http://{_authority(*self.address)}/",
        )

    async def _unbind(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        _log.info("http.stopped", host=self.address and self.address[0])
        self._server = None
        self.address = None

    # -- requests -----------------------------------------------------------------

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        limits = self._daemon.config.http
        try:
            async with asyncio.timeout(limits.timeout):
                if len(self._connections) > limits.max_connections:
                    self.counters["busy"] += 1
                    await _respond(writer, 503, b"too many connections\n")
                else:
                    await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except TimeoutError:
            # The response was not taken in time: drop it with the connection.
            self.counters["slow_readers"] += 1
            writer.transport.abort()
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(self._daemon.config.http.timeout / 2):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            self.counters["timeouts"] += 1
            await _respond(writer, 408, b"request timeout\n")
            return
        except asyncio.LimitOverrunError:
            await _respond(writer, 431, b"request head too large\n")
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await _respond(writer, 400, b"bad request line\n")
            return
        method, target, _ = parts
        if method not in {"GET", "HEAD"}:
            await _respond(
                writer, 405, b"GET or HEAD only\n", extra={"Allow": "GET, HEAD"}
            )
            return
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        path = urlsplit(target).path
        if not host_allowed(headers.get("host"), self._daemon.config.http):
            self.counters["bad_host"] += 1
            await _respond(writer, 421, b"unknown Host; see http.allowed_hosts\n")
            return
        reply = _Reply(writer, head_only=method == "HEAD", encodings=headers)
        try:
            await self._route(reply, path, headers)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # noqa: BLE001 - one bad request must not stop the server
            _log.exception("http.request_failed", path=path)
            await _respond(writer, 500, b"internal error\n")

    async def _route(self, reply: _Reply, path: str, headers: dict[str, str]) -> None:
        if path in ("/metrics", "/api/state") and self._bodies_in_flight >= _MAX_BODIES:
            # Each response a client has not taken yet is a copy of the body held
            # in its transport: bounded by bounding how many there are.
            self.counters["busy"] += 1
            await reply.send(503, b"busy: try again\n", extra={"Retry-After": "1"})
            return
        if path == "/metrics":
            self._bodies_in_flight += 1
            try:
                body, content_type = await self._exposition.scrape(
                    headers.get("accept", "")
                )
                await reply.send(200, body, content_type)
            finally:
                self._bodies_in_flight -= 1
        elif path == "/-/healthy":
            await reply.send(200, b"perfwarden is healthy.\n")
        elif path == "/-/ready":
            if self._daemon.ready:
                await reply.send(200, b"perfwarden is ready.\n")
            else:
                await reply.send(503, b"perfwarden is not ready.\n")
        elif path == "/api/state":
            self._bodies_in_flight += 1
            try:
                state = await dashboard_state(self._daemon, self._commands)
                body = json.dumps(_finite(state), separators=(",", ":")).encode()
                await reply.send(200, body, "application/json")
            finally:
                self._bodies_in_flight -= 1
        elif path in {"/", "/index.html"}:
            if self._page is None:
                page = resources.files("perfwarden.views") / "web" / "dashboard.html"
                self._page = page.read_bytes()
            await reply.send(
                200,
                self._page,
                "text/html; charset=utf-8",
                extra={"Content-Security-Policy": _CSP},
            )
        else:
            await reply.send(404, b"not found\n")


class _Reply:
    """The response to one request: gzip when the client accepts it, no body for
    ``HEAD`` (but the headers a ``GET`` would get, ``Content-Length`` included)."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        *,
        head_only: bool,
        encodings: dict[str, str],
    ) -> None:
        self._writer = writer
        self._head_only = head_only
        self._gzip = accepts_gzip(encodings.get("accept-encoding", ""))

    async def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        headers = {**(extra or {}), "Vary": "Accept-Encoding"}
        if self._gzip and len(body) >= _GZIP_MIN:
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
            headers["Content-Encoding"] = "gzip"
        await _respond(
            self._writer,
            status,
            body,
            content_type,
            extra=headers,
            head_only=self._head_only,
        )


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``q=0`` refuses it)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in {"gzip", "x-gzip", "*"}:
            continue
        quality = params.strip().lower()
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False


async def dashboard_state(
    daemon: DaemonControl, commands: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What ``/api/state`` returns: the control commands' data, plus the newest
    window values of each series (at most 100 series, configured metrics first)."""
    commands = commands if commands is not None else build_commands(daemon)

    async def run(name: str) -> Any:
        return await cast("_Handler", commands[name].handler)({})

    configured = list(daemon.config.metrics)
    order = {name: index for index, name in enumerate(configured)}
    everything = sorted(
        daemon.store, key=lambda s: (order.get(s.name, len(order)), s.name, s.key)
    )
    series = []
    for item in everything[:_STATE_SERIES]:
        record = series_stats(daemon, item)
        record["points"] = item.window.tail(min(len(item.window), _STATE_POINTS))
        record["points"] = [float(v) for v in record["points"]]
        series.append(record)
    status = await run("status")
    alerts = await run("alerts")
    return {
        "version": __version__,
        "now": time.time(),
        "status": {
            "uptime_seconds": status["uptime_seconds"],
            "ingest": status["ingest"],
            "series": status["series"],
            "plugins": status["plugins"],
            "optimizer": status["optimizer"],
            "last_reload": status["config"]["last_reload"],
        },
        "series": series,
        "series_shown": len(series),
        # The first page of alerts (~256 KiB): in an incident, not all of them.
        "alerts": alerts["alerts"],
        "alerts_total": alerts["total"],
        "knobs": daemon.knobs.document()["knobs"],
        "actions": list(daemon.optimizer.history)[-_STATE_ACTIONS:],
    }


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def host_allowed(host: str | None, config: HttpConfig) -> bool:
    """Whether a request's ``Host`` header names this listener.

    No header (HTTP/1.0 tools) passes: browsers always send one. An IP address,
    ``localhost`` and ``http.allowed_hosts`` pass, with or without a port; any other
    name is what a DNS-rebinding page would send.
    """
    if host is None:
        return True
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".")
    if name in ("localhost", *(h.lower().rstrip(".") for h in config.allowed_hosts)):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    extra: dict[str, str] | None = None,
    *,
    head_only: bool = False,
) -> None:
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "close",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Server": f"perfwarden/{__version__}",
        **(extra or {}),
    }
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(head.encode("latin-1") + b"\r\n" + (b"" if head_only else body))
    await writer.drain()
