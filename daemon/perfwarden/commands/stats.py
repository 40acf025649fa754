"""``perfwarden stats [METRIC...]``: per-series statistics with 95% intervals."""

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


def _tags(record: dict[str, Any]) -> str:
    # A key sent with several values maps to them comma-joined: show each as sent.
    tags = [
        f"{k}:{part}" if part else k
        for k, v in sorted(record["tags"].items())
        for part in v.split(",")
    ]
    return ",".join(tags) or "-"


def _interval(record: dict[str, Any]) -> str:
    if record["ci_low"] is None:
        return "-"
    shown = f"[{format_number(record['ci_low'])}, {format_number(record['ci_high'])}]"
    # The log-scale interval of a non-negative quantity is marked as such.
    return f"{shown} log" if record.get("ci_method") == "log-t" else shown


def run(args: argparse.Namespace) -> int:
    """Print the statistics of every series (or of the named metrics)."""
    data: dict[str, Any] = request(
        control_path(args.socket_dir), "stats", metrics=args.metrics
    )
    if args.json:
        print_json(data)
        return 1 if data["unknown"] else 0
    rows = [
        [
            r["metric"],
            _tags(r),
            str(r["sample_size"]),
            r.get("unit") or "-",
            format_number(r["mean"]),
            _interval(r),
            format_number(r["p50"]),
            format_number(r["p95"]),
            format_number(r["p99"]),
            format_number(r["target"]),
            r["status"],
        ]
        for r in data["series"]
    ]
    if rows:
        # One UNIT column before the numbers it applies to keeps every cell short
        # and aligned (the report formats each value with its unit instead).
        headers = ["METRIC", "TAGS", "N", "UNIT", "MEAN", "CI95", "P50", "P95", "P99"]
        print_table([*headers, "TARGET", "STATUS"], rows)
    elif not data["unknown"]:
        print(
            "no series yet: send a metric, e.g. perfwarden send context_loading_time 42"
        )
    for name in data["unknown"]:
        print(f"perfwarden: no series for metric {name!r}", file=sys.stderr)
    return 1 if data["unknown"] else 0
