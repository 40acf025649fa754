"""The control socket's wire format: one JSON object per line, each way.

::

    client -> daemon   {"id": 7, "command": "stats", "args": {"metrics": ["x"]}}\\n
    daemon -> client   {"id": 7, "ok": true, "data": {...}}\\n
                       {"id": 7, "ok": false, "error": {"code": "forbidden",
                                                        "message": "..."}}\\n

A connection may carry any number of requests, answered in order. A request line
longer than :data:`MAX_LINE` bytes is answered with ``too_large`` and the connection is
closed. Error codes: ``bad_request``, ``unknown_command``, ``forbidden``, ``too_large``,
``failed`` (the command ran and failed; the message says why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "MAX_LINE",
    "ProtocolError",
    "Request",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_ok",
    "encode_request",
]

MAX_LINE: Final = 1 << 20


class ProtocolError(ValueError):
    """A line that is not a well-formed request or response."""


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded request."""

    id: int | str | None
    command: str
    args: dict[str, Any] = field(default_factory=dict)


def encode_request(request_id: int | str, command: str, args: dict[str, Any]) -> bytes:
    """A request line, newline-terminated."""
    payload = {"id": request_id, "command": command, "args": args}
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> Request:
    """Parse one request line; raises :class:`ProtocolError` when it is not one."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"not JSON: {exc}"
        raise ProtocolError(msg) from None
    if not isinstance(obj, dict):
        msg = "a request is a JSON object"
        raise ProtocolError(msg)
    command = obj.get("command")
    args = obj.get("args", {})
    request_id = obj.get("id")
    if not isinstance(command, str) or not command:
        msg = "'command' must be a non-empty string"
        raise ProtocolError(msg)
    if not isinstance(args, dict):
        msg = "'args' must be an object"
        raise ProtocolError(msg)
    if request_id is not None and not isinstance(request_id, int | str):
        msg = "'id' must be a number or a string"
        raise ProtocolError(msg)
    return Request(request_id, command, args)


def encode_ok(request_id: int | str | None, data: Any) -> bytes:
    """A success response line."""
    return _line({"id": request_id, "ok": True, "data": data})


def encode_error(request_id: int | str | None, code: str, message: str) -> bytes:
    """An error response line."""
    error = {"code": code, "message": message}
    return _line({"id": request_id, "ok": False, "error": error})


def decode_response(line: bytes) -> dict[str, Any]:
    """Parse one response line into its envelope; raises :class:`ProtocolError`."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"not JSON: {exc}"
        raise ProtocolError(msg) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        msg = "a response is an object with a boolean 'ok'"
        raise ProtocolError(msg)
    return obj


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode() + b"\n"
