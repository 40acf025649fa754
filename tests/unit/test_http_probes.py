"""``/-/ready`` follows the daemon's readiness; ``Accept-Encoding`` parsing."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.views.http_server import HttpServer, accepts_gzip

if TYPE_CHECKING:
    from pathlib import Path


async def _status(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply.split(b"\r\n", 1)[0]


def test_ready_only_once_the_daemon_is(tmp_path: Path) -> None:
    """503 before the restore is done (and while stopping), 200 once ready;
    /-/healthy is 200 throughout."""
    config = parse_config('version: 1\nhttp:\n  listen: "127.0.0.1:0"\n')
    daemon = Daemon(config, tmp_path / "c.yaml", tmp_path / "run", tmp_path)

    async def scenario() -> list[bytes]:
        server = HttpServer(daemon)
        await server.start()
        try:
            assert server.address is not None
            port = server.address[1]
            replies = [await _status(port, "/-/ready")]
            replies.append(await _status(port, "/-/healthy"))
            daemon.ready = True
            replies.append(await _status(port, "/-/ready"))
            return replies
        finally:
            await server.stop()

    assert [
        b"HTTP/1.1 503 Service Unavailable",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 200 OK",
    ] == asyncio.run(scenario())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("deflate, gzip;q=1.0, *;q=0.5", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, identity", False),
        ("identity", False),
        ("deflate, br", False),
        ("", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(header: str, expected: bool) -> None:
    assert expected == accepts_gzip(header)
