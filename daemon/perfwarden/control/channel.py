"""A small synchronous client for the control socket, used by the CLI."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path
from typing import Any

from perfwarden.control.protocol import (
    MAX_LINE,
    ProtocolError,
    decode_response,
    encode_request,
)
from perfwarden.errors import ControlError, DaemonUnreachableError
from perfwarden.ownership import check_client_directory

__all__ = ["ControlChannel", "request"]

_ids = itertools.count(1)


class ControlChannel:
    """One connection to ``control.sock``; ``call()`` sends, waits and returns."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self._path = path = Path(path)  # a str works too
        check_client_directory(path.parent)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
            sock.close()
            msg = f"no perfwarden daemon answers on {path} ({exc.strerror or exc})"
            raise DaemonUnreachableError(msg) from None
        except PermissionError as exc:
            sock.close()
            msg = f"not allowed to connect to {path}: {exc.strerror}"
            raise DaemonUnreachableError(msg) from None
        self._sock = sock
        self._reader = sock.makefile("rb")

    def __enter__(self) -> ControlChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._reader.close()
        self._sock.close()

    def call(self, command: str, **args: Any) -> Any:
        """Run one command; its ``data`` on success, :class:`ControlError` otherwise.

        A paged reply (``next_offset`` set, ``paged`` naming the fields that grow
        page by page, dotted for nested ones) is followed to its end, and the pages
        are joined into one reply: lists concatenated, objects merged, text
        appended. Every other field is the first page's.
        """
        data = self._call_once(command, args)
        while isinstance(data, dict) and data.get("next_offset") is not None:
            page = self._call_once(command, {**args, "offset": data["next_offset"]})
            if not isinstance(page, dict):
                break
            for path in data.get("paged") or ():
                _join(data, page, str(path).split("."))
            data["next_offset"] = page.get("next_offset")
        return data

    def _call_once(self, command: str, args: dict[str, Any]) -> Any:
        try:
            self._sock.sendall(encode_request(next(_ids), command, args))
            line = self._reader.readline(MAX_LINE + 1)
        except (OSError, TimeoutError) as exc:
            msg = f"the daemon on {self._path} stopped answering: {exc}"
            raise DaemonUnreachableError(msg) from None
        if not line:
            msg = f"the daemon on {self._path} closed the connection"
            raise DaemonUnreachableError(msg)
        try:
            response = decode_response(line)
        except ProtocolError as exc:
            msg = f"unreadable answer: {exc}"
            raise ControlError("bad_response", msg) from None
        if response["ok"]:
            return response.get("data")
        error = response.get("error") or {}
        raise ControlError(str(error.get("code")), str(error.get("message")))


def _join(data: dict[str, Any], page: dict[str, Any], path: list[str]) -> None:
    """Add ``page``'s field at ``path`` to ``data``'s."""
    *parents, name = path
    for parent in parents:
        inner, more = data.get(parent), page.get(parent)
        if not isinstance(inner, dict) or not isinstance(more, dict):
            return
        data, page = inner, more
    ours, theirs = data.get(name), page.get(name)
    if isinstance(ours, list) and isinstance(theirs, list):
        data[name] = [*ours, *theirs]
    elif isinstance(ours, dict) and isinstance(theirs, dict):
        data[name] = {**ours, **theirs}
    elif isinstance(ours, str) and isinstance(theirs, str):
        data[name] = ours + theirs
    elif ours is None:
        data[name] = theirs


def request(path: Path, command: str, timeout: float = 10.0, **args: Any) -> Any:
    """Open a channel, run one command, close."""
    with ControlChannel(path, timeout) as channel:
        return channel.call(command, **args)
