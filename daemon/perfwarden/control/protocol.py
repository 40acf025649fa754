"""The control socket's wire format: one JSON object per line, each way.

::

    client -> daemon   {"id": 7, "command": "stats", "args": {"metrics": ["x"]}}\\n
    daemon -> client   {"id": 7, "ok": true, "data": {...}}\\n
                       {"id": 7, "ok": false, "error": {"code": "forbidden",
                                                        "message": "..."}}\\n

A connection may carry any number of requests, answered in order. A request line
longer than ``control.max_request_bytes`` is answered with ``too_large`` and the
connection is closed; a request nested deeper than ``control.max_json_depth`` is a
``bad_request``. A reply is at most :data:`MAX_LINE` bytes: commands whose answer
could be longer (``stats``, ``alerts``, ``report``) answer in pages: ``total``,
``next_offset`` (ask again with ``"offset": next_offset``; ``null`` on the last
page) and ``paged``, the fields that grow page by page (dotted for nested ones),
which a client joins (lists concatenated, objects merged, text appended); ``stats``
and ``alerts`` with a ``limit`` answer one page of at most that many records (its
``next_offset`` is ``null``), ``stats`` sorted as ``perfwarden top`` shows them with
``"order": "top"``. Any other reply that would be longer is answered ``too_large``
instead. Error codes: ``bad_request``, ``unknown_command``, ``forbidden``,
``too_large``, ``too_many_connections``, ``failed`` (the command ran and failed; the
message says why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_DEPTH",
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
#: Nesting of arrays and objects a request may have unless told otherwise.
DEFAULT_MAX_DEPTH: Final = 32


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


def _depth(obj: Any) -> int:
    """How deeply arrays and objects nest in ``obj`` (a scalar: 0); no recursion."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(obj, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        todo.extend((child, depth + 1) for child in children)
    return deepest


def decode_request(line: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Request:
    """Parse one request line; raises :class:`ProtocolError` when it is not one."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"not JSON: {exc}"
        raise ProtocolError(msg) from None
    except RecursionError:
        obj = None
        depth = max_depth + 1
    else:
        depth = _depth(obj)
    if depth > max_depth:
        msg = f"nested deeper than {max_depth} levels"
        raise ProtocolError(msg)
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
