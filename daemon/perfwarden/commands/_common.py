"""Helpers shared by the commands: paths, JSON output, small text tables."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from perfwarden.paths import CONTROL_SOCKET, discover_socket_dir
from perfwarden.views.text import format_number

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["control_path", "format_number", "print_json", "print_table", "socket_dir"]


def socket_dir(cli_value: str | None) -> Path:
    """The socket directory a client command talks to (the client's search order)."""
    return discover_socket_dir(cli_value, os.environ)


def control_path(cli_value: str | None) -> Path:
    """The control socket a client command talks to."""
    return socket_dir(cli_value) / CONTROL_SOCKET


def print_json(data: Any) -> None:
    """Pretty, stable JSON on stdout."""
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns separated by two spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in (headers, *rows):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(line.rstrip())
