"""``perfwarden plugins``: each plugin's distribution, state, isolation and outcome
counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perfwarden.commands._common import control_path, print_json, print_table
from perfwarden.control.channel import request

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """List the plugins the daemon found."""
    data: dict[str, Any] = request(control_path(args.socket_dir), "plugins")
    if args.json:
        print_json(data)
        return 0
    rows = [
        [
            p["name"],
            f"{p['distribution']} {p['version']}",
            p["state"],
            p.get("isolation") or "-",
            str(p["proposals"]),
            str(p["applied"]),
            str(p["kept"]),
            str(p["reverted"]),
            str(p.get("inconclusive", 0)),
            str(p["failures"]),
            "-" if p.get("weight") is None else f"{p['weight']:.2f}",
        ]
        for p in data["plugins"]
    ]
    if not rows:
        print(
            "no optimizer plugins installed (entry-point group perfwarden.optimizers)"
        )
        return 0
    headers = ["PLUGIN", "DISTRIBUTION", "STATE", "ISOLATION", "PROPOSED", "APPLIED"]
    more = ["KEPT", "REVERTED", "INCONCLUSIVE", "FAILURES", "WEIGHT"]
    print_table([*headers, *more], rows)
    for plugin in data["plugins"]:
        if plugin["error"] and plugin["state"] != "active":
            name, error = plugin["name"], str(plugin["error"])
            # Plugin errors often start with the plugin's name already.
            shown = error if error.startswith(f"{name}:") else f"{name}: {error}"
            print(f"  {shown}")
    if not data["autoload"]:
        print(
            "(PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD is set: only configured plugins load)"
        )
    return 0
