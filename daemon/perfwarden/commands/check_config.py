"""``perfwarden check-config [PATH] [--backtest [INPUT]]``: validate a config and its
``conf.d`` drop-ins, listing every problem with the file and line it is in; with
``--backtest``, also replay the recording (or INPUT) with it and with the current
config and print what the edit would change."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from perfwarden.config.dropins import drop_in_paths
from perfwarden.config.load import ConfigError, load_config, resolve_config_path
from perfwarden.config.plugin_names import unknown_plugins
from perfwarden.optimize.plugin_loader import find

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Exit 0 when valid; 1 with ``PATH:LINE: key.path: message`` lines otherwise.

    A valid file may still draw warnings (a ``plugins:`` entry that names no plugin
    installed here), printed the same way with ``(warning)``; they do not fail it.
    """
    path = resolve_config_path(args.path, os.environ)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    installed = {source.name for source in find()[0]}
    warnings = unknown_plugins(config.plugins, installed, str(path))
    for warning in warnings:
        print(f"{warning} (warning)", file=sys.stderr)
    noted = f", {len(warnings)} warning(s)" if warnings else ""
    print(
        f"{path}: ok ({len(config.metrics)} metrics, {len(config.knobs)} knobs{noted})"
    )
    for drop_in in drop_in_paths(path):
        print(f"  with {drop_in}")
    if getattr(args, "backtest", None) is not None:
        _backtest(args, path)
    return 0


def _backtest(args: argparse.Namespace, path: Path) -> None:
    """The edited file against the current one, over the recording (or INPUT)."""
    from perfwarden.commands.backtest import (  # noqa: PLC0415 - only when asked
        backtest,
        inputs_of,
        print_report,
    )

    current = resolve_config_path(args.against, os.environ)
    inputs = inputs_of([args.backtest] if args.backtest else None, args.state_dir)
    report = backtest(path, inputs, against=current, show_progress=sys.stderr.isatty())
    print_report(report, timelines_shown=False)
