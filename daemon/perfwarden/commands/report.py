"""``perfwarden report``: the seed's dashboard documents from live data (YAML/JSON)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import yaml

from perfwarden.commands._common import control_path
from perfwarden.control.channel import request

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Print ``monitoring_dashboard``, ``learning_patterns``, ``validation_results``."""
    data: dict[str, Any] = request(
        control_path(args.socket_dir), "report", metrics=args.metrics
    )
    if args.format == "json" or args.json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        yaml.safe_dump(data, sys.stdout, sort_keys=False, allow_unicode=True, width=100)
    return 0
