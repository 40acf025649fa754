"""``perfwarden check-config [PATH]``: validate a config and its ``conf.d`` drop-ins,
listing every problem with the file and line it is in."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from perfwarden.config.dropins import drop_in_paths
from perfwarden.config.load import ConfigError, load_config, resolve_config_path

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Exit 0 when valid; 1 with ``PATH:LINE: key.path: message`` lines otherwise."""
    path = resolve_config_path(args.path, os.environ)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    print(f"{path}: ok ({len(config.metrics)} metrics, {len(config.knobs)} knobs)")
    for drop_in in drop_in_paths(path):
        print(f"  with {drop_in}")
    return 0
