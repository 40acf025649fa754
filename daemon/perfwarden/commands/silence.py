"""``perfwarden silence METRIC [--for 1h] [--tag k:v]`` and ``--remove ID``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from perfwarden.commands._common import control_path, print_json
from perfwarden.config.durations import parse_duration
from perfwarden.control.channel import request

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Add a silence (or lift one with ``--remove``)."""
    path = control_path(args.socket_dir)
    if args.remove:
        data: dict[str, Any] = request(path, "unsilence", id=args.remove)
        print(f"silence {data['removed']} lifted")
        return 0
    if not args.metric:
        print("perfwarden: silence needs a METRIC (or --remove ID)", file=sys.stderr)
        return 2
    try:
        parse_duration(args.duration)
    except ValueError as exc:
        print(f"perfwarden: --for: {exc}", file=sys.stderr)
        return 2
    tags = {}
    for tag in args.tag:
        key, sep, value = tag.partition(":")
        if not sep:
            print(f"perfwarden: --tag must be k:v, not {tag!r}", file=sys.stderr)
            return 2
        tags[key] = value
    data = request(
        path,
        "silence",
        metric=args.metric,
        tags=tags,
        comment=args.comment,
        **{"for": args.duration},
    )
    if not data.get("known", True):
        print(
            f"perfwarden: warning: no metric {args.metric!r} is configured or has a "
            "series; the silence applies if one appears (check the spelling)",
            file=sys.stderr,
        )
    if args.json:
        print_json(data)
        return 0
    left = data["until"] - time.time()
    print(f"silence {data['id']}: {data['metric']} {tags or ''} for {left:.0f}s")
    return 0
