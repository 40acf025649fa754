"""``perfwarden send NAME VALUE``: one DogStatsD line to ``metrics.sock``."""

from __future__ import annotations

import math
import socket
import sys
from typing import TYPE_CHECKING

from perfwarden.commands._common import socket_dir
from perfwarden.errors import DaemonUnreachableError
from perfwarden.paths import METRICS_SOCKET

if TYPE_CHECKING:
    import argparse

__all__ = ["format_line", "run"]


def format_line(
    name: str, value: str, type_: str, tags: list[str], sample_rate: float | None
) -> str:
    """The DogStatsD line for one metric."""
    line = f"{name}:{value}|{type_}"
    if sample_rate is not None:
        line += f"|@{sample_rate:g}"
    if tags:
        line += "|#" + ",".join(tags)
    return line


def run(args: argparse.Namespace) -> int:
    """Validate and send; exit 3 when no daemon listens."""
    if args.type != "s":
        try:
            number = float(args.value)
        except ValueError:
            print(
                f"perfwarden: VALUE must be a number, not {args.value!r}",
                file=sys.stderr,
            )
            return 2
        if not math.isfinite(number):
            print("perfwarden: VALUE must be finite", file=sys.stderr)
            return 2
    for part in (args.name, args.value, *args.tag):
        if any(ch in part for ch in "|\n"):
            print(
                f"perfwarden: {part!r} may not contain '|' or a newline",
                file=sys.stderr,
            )
            return 2
    line = format_line(args.name, args.value, args.type, args.tag, args.sample_rate)
    path = socket_dir(args.socket_dir) / METRICS_SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(line.encode(), str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            msg = f"no perfwarden daemon listens on {path} ({exc.strerror})"
            raise DaemonUnreachableError(msg) from None
    return 0
