"""One JSON POST over HTTP/1.1 or HTTPS with asyncio streams, under a deadline.

The daemon has no HTTP client dependency and needs only this: a request with
``Connection: close``, the response's status code, the first bytes of its body
for the log. Runs on the event loop and never blocks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Final
from urllib.parse import urlsplit

from perfwarden import __version__

__all__ = ["PostError", "post_json"]

#: The response bytes read at most (status line, headers, the start of the body).
_MAX_RESPONSE: Final = 65536


class PostError(Exception):
    """The request could not be made or answered (refused, timed out, garbage)."""


async def post_json(url: str, body: bytes, *, within: float) -> tuple[int, bytes]:
    """POST ``body`` (JSON) to ``url``; the status code and the response body's
    first bytes. Raises :class:`PostError` on connection trouble or when it takes
    longer than ``within`` seconds."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    authority = f"[{host}]" if ":" in host else host
    if parts.port:
        authority += f":{parts.port}"
    head = (
        f"POST {target} HTTP/1.1\r\n"
        f"Host: {authority}\r\n"
        f"User-Agent: perfwarden/{__version__}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl.create_default_context() if secure else None
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            response = await reader.read(_MAX_RESPONSE)
            while len(response) < _MAX_RESPONSE and (chunk := await reader.read(4096)):
                response += chunk
    except TimeoutError as exc:
        msg = f"no answer within {within:g} s"
        raise PostError(msg) from exc
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise PostError(str(exc) or type(exc).__name__) from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    fields = status_line.split(b" ", 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        msg = f"not an HTTP response: {status_line[:80]!r}"
        raise PostError(msg)
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(fields[1]), payload[:512]
