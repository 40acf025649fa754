"""``perfwarden report``: the dashboard documents from live data (YAML or JSON).

``monitoring_dashboard`` (per metric: mean, target, interval, trend, status),
``learning_patterns`` and ``validation_results``. The optimizer's raw action records
(epoch times, full p-values) are long, so the YAML shows a one-line summary per
action unless ``--verbose``; ``--json`` always carries both.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import yaml

from perfwarden.commands._common import control_path
from perfwarden.commands._printable import json_printable
from perfwarden.control.channel import request

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Print the documents; exit 1 when a named metric is unknown."""
    data: dict[str, Any] = request(
        control_path(args.socket_dir), "report", metrics=args.metrics
    )
    unknown: list[str] = data.pop("unknown", [])
    for paging in ("total", "next_offset", "paged"):  # joined already
        data.pop(paging, None)
    for name in unknown:
        print(f"perfwarden: no series or config for metric {name!r}", file=sys.stderr)
    if unknown and len(unknown) == len(args.metrics):
        return 1
    if args.format == "json" or args.json:
        text = json.dumps(data, indent=2, ensure_ascii=False)
        sys.stdout.write(json_printable(text) + "\n")
    else:
        results = data.get("validation_results", {})
        if not args.verbose:
            results.pop("recent_actions", None)
        yaml.safe_dump(data, sys.stdout, sort_keys=False, allow_unicode=True, width=100)
    return 1 if unknown else 0
