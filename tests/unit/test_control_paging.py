"""The control server and channel with an in-process server on a real socket:
paged replies joined by the channel, a reply past the line cap refused clearly."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.config.model import ControlConfig
from perfwarden.control.channel import request
from perfwarden.control.protocol import MAX_LINE
from perfwarden.control.server import Command, ControlServer
from perfwarden.errors import ControlError

if TYPE_CHECKING:
    from pathlib import Path

PAGES = [
    {"items": [1, 2], "doc": {"rows": {"a": 1}}, "text": "head\n", "first": True},
    {"items": [3], "doc": {"rows": {"b": 2}}, "text": "one\n", "first": False},
    {"items": [], "doc": {"rows": {"c": 3}}, "text": "two\n", "first": False},
]


async def paged(args: dict[str, Any]) -> dict[str, Any]:
    offset = args.get("offset", 0)
    page = dict(PAGES[offset])
    page["next_offset"] = offset + 1 if offset + 1 < len(PAGES) else None
    page["paged"] = ["items", "doc.rows", "text"]
    return page


async def huge(args: dict[str, Any]) -> str:
    return "x" * MAX_LINE


async def call(tmp_path: Path, command: str) -> Any:
    path = tmp_path / "control.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen()
    commands = {"paged": Command("paged", paged), "huge": Command("huge", huge)}
    server = ControlServer(commands, ControlConfig)
    await server.start(sock)
    try:
        return await asyncio.to_thread(request, path, command)
    finally:
        await server.close()


class TestPaging:
    async def test_pages_are_joined(self, tmp_path: Path) -> None:
        """Lists concatenated, nested objects merged, text appended; the rest is
        the first page's."""
        data = await call(tmp_path, "paged")
        assert [1, 2, 3] == data["items"]
        assert {"a": 1, "b": 2, "c": 3} == data["doc"]["rows"]
        assert "head\none\ntwo\n" == data["text"]
        assert data["first"] is True
        assert data["next_offset"] is None

    async def test_a_reply_past_the_line_is_refused(self, tmp_path: Path) -> None:
        """A reply longer than MAX_LINE is a clear too_large, never sent cut."""
        with pytest.raises(ControlError) as raised:
            await call(tmp_path, "huge")
        assert "too_large" == raised.value.code
        assert "over the protocol's" in raised.value.message
