"""``perfwarden alerts``: the firing alerts in the seed's report layout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perfwarden.commands._common import control_path, format_number, print_json
from perfwarden.control.channel import request

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Print the alert summary, then pending / no-data series and silences."""
    data: dict[str, Any] = request(control_path(args.socket_dir), "alerts")
    if args.json:
        print_json(data)
        return 0
    print(data["report"])
    others = [a for a in data["alerts"] if a["state"] != "firing" or a["silenced"]]
    if others:
        print()
        print("Not firing (yet), or silenced:")
        for alert in others:
            tags = ",".join(f"{k}={v}" for k, v in sorted(alert["tags"].items()))
            name = alert["metric"] + (f"{{{tags}}}" if tags else "")
            note = " (silenced)" if alert["silenced"] else ""
            value = format_number(alert["value"])
            print(
                f"  {alert['state'].upper()}: {name} level={alert['level']} "
                f"value={value}{note}"
            )
    if data["silences"]:
        print()
        print("Silences:")
        for silence in data["silences"]:
            print(
                f"  {silence['id']}  {silence['metric']} {silence['matchers'] or ''} "
                f"until {format_number(silence['until'])}  {silence['comment']}"
            )
    return 0
