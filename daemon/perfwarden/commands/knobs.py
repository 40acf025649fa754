"""``perfwarden knobs`` and ``perfwarden knobs set NAME VALUE``.

``knobs set`` stores the nearest value the knob's declaration allows; when that is
not the value given (outside the bounds, off the step), it says so on stderr as a
warning and still exits 0, since the knob did change (``--json`` carries the same
as ``adjusted`` and ``message``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from perfwarden.commands._common import (
    control_path,
    format_number,
    print_json,
    print_table,
)
from perfwarden.control.channel import request

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def _range(knob: dict[str, Any]) -> str:
    if knob["choices"] is not None:
        return "|".join(str(c) for c in knob["choices"])
    step = f" step {format_number(knob['step'])}" if knob["step"] else ""
    return f"{format_number(knob['min'])}..{format_number(knob['max'])}{step}"


def run(args: argparse.Namespace) -> int:
    """Show the knobs, or set one by hand (recorded as a manual change)."""
    path = control_path(args.socket_dir)
    if args.action == "set":
        data: dict[str, Any] = request(
            path, "knobs.set", name=args.name, value=args.value, reason=args.reason
        )
        if args.json:
            print_json(data)
        else:
            print(f"{data['name']} = {data['value']} (version {data['version']})")
        if data.get("message"):  # absent from an older daemon's reply
            print(f"perfwarden knobs set: warning: {data['message']}", file=sys.stderr)
        return 0
    data = request(path, "knobs")
    if args.json:
        print_json(data)
        return 0
    rows = [
        [
            name,
            str(knob["value"]),
            str(knob["initial"]),
            _range(knob),
            knob["changed_by"],
            knob["reason"] or "",
        ]
        for name, knob in data["knobs"].items()
    ]
    if not rows:
        print("no knobs declared (the config's knobs: section)")
        return 0
    print_table(["KNOB", "VALUE", "INITIAL", "RANGE", "CHANGED BY", "REASON"], rows)
    return 0
