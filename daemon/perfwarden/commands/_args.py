"""Argument types and shared options of the command line (:mod:`perfwarden.cli`)."""

from __future__ import annotations

import argparse
import math

__all__ = [
    "add_json",
    "add_socket_dir",
    "positive_float",
    "positive_int",
    "sample_rate",
]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"must be a whole number of at least 1, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        msg = f"must be a positive number of seconds, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def sample_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        msg = f"must be a number above 0 and at most 1, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_socket_dir(
    parser: argparse.ArgumentParser, *, nested: bool = False, daemon: bool = False
) -> None:
    # A nested subcommand must not reset what its parent parsed (argparse copies
    # sub-parser defaults over the namespace), hence SUPPRESS there.
    parser.add_argument(
        "--socket-dir",
        default=argparse.SUPPRESS if nested else None,
        metavar="DIR",
        help="where to put the sockets (default: $PERFWARDEN_SOCKET_DIR, "
        "$RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR/perfwarden, or /tmp/perfwarden-$UID)"
        if daemon
        else "where the daemon's sockets are (default: $PERFWARDEN_SOCKET_DIR, "
        "/run/perfwarden if present, $XDG_RUNTIME_DIR/perfwarden, or "
        "/tmp/perfwarden-$UID)",
    )


def add_json(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if nested else False,
        help="print JSON instead of text",
    )
