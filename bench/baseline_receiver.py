"""A bare asyncio DogStatsD datagram receiver, the ceiling perfwarden is measured by.

It drains its datagram socket exactly as perfwarden does (``add_reader`` and a
``recv_into`` loop of at most 512 datagrams per wake-up into one 1 MiB buffer) and
either only counts the lines (``--mode count``: ``data.count(b"\\n")``) or also parses
each line minimally into name, value, type and tags and groups the values per raw
key (``--mode parse``), without storing anything.

Counters are served as one JSON line to whoever connects to ``--control``.
Run by ``bench/ingest.py``; prints ``READY`` on stdout once both sockets are bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys

_DRAIN_LIMIT = 512
_RCVBUF_BYTES = 8 << 20
_SO_RCVBUFFORCE = 33


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", required=True, help="datagram socket to bind")
    parser.add_argument("--control", required=True, help="stream socket for counters")
    parser.add_argument("--mode", choices=("count", "parse"), default="count")
    args = parser.parse_args()
    return asyncio.run(_serve(args.socket, args.control, args.mode))


async def _serve(path: str, control: str, mode: str) -> int:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF_BYTES)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF_BYTES)
    counts = {"lines": 0, "datagrams": 0, "bytes": 0, "bad": 0}
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    recv_into = sock.recv_into
    values: dict[str, list[float]] = {}

    def drain_count() -> None:
        lines = datagrams = size_total = 0
        for _ in range(_DRAIN_LIMIT):
            try:
                size = recv_into(buffer)
            except (BlockingIOError, InterruptedError):
                break
            datagrams += 1
            size_total += size
            lines += buffer.count(b"\n", 0, size)
        counts["lines"] += lines
        counts["datagrams"] += datagrams
        counts["bytes"] += size_total

    def drain_parse() -> None:
        lines = datagrams = size_total = bad = 0
        for _ in range(_DRAIN_LIMIT):
            try:
                size = recv_into(buffer)
            except (BlockingIOError, InterruptedError):
                break
            datagrams += 1
            size_total += size
            for line in str(view[:size], "utf-8").split("\n"):
                if not line:
                    continue
                head, _, rest = line.partition("|")
                name, _, raw = head.partition(":")
                type_, _, tags = rest.partition("|#")
                try:
                    value = float(raw)
                except ValueError:
                    bad += 1
                    continue
                if not name or not type_:
                    bad += 1
                    continue
                key = f"{name}|{type_}|#{tags}"
                bucket = values.get(key)
                if bucket is None:
                    values[key] = [value]
                else:
                    bucket.append(value)
                lines += 1
        values.clear()
        counts["lines"] += lines
        counts["datagrams"] += datagrams
        counts["bytes"] += size_total
        counts["bad"] += bad

    loop.add_reader(sock.fileno(), drain_count if mode == "count" else drain_parse)

    async def report(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(json.dumps(counts).encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(report, path=control)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await stop.wait()
    server.close()
    loop.remove_reader(sock.fileno())
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
