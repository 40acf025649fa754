"""``perfwarden reload``: re-read the config and rescan plugins.

Prints the changes (config keys, plugins loaded or removed) and, on stderr, warnings
such as ``plugins:`` entries that name no installed plugin.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from perfwarden.commands._common import control_path, print_json
from perfwarden.control.channel import request
from perfwarden.errors import ControlError

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Ask the daemon to reload; exit 1 with every error when it rejects the file."""
    try:
        data: dict[str, Any] = request(control_path(args.socket_dir), "reload")
    except ControlError as exc:
        if exc.code != "rejected":
            raise
        print(
            "perfwarden: the config was rejected; the old one stays in force:",
            file=sys.stderr,
        )
        for line in exc.message.splitlines():
            print(f"  {line}", file=sys.stderr)
        return 1
    if args.json:
        print_json(data)
        return 0
    changes = data["changes"]
    print(f"reloaded (sha256 {data['sha256'][:12]}): {len(changes)} change(s)")
    for change in changes:
        print(f"  {change}")
    for warning in data.get("warnings", []):  # absent from an older daemon's reply
        print(f"perfwarden: warning: {warning}", file=sys.stderr)
    return 0
