"""``perfwarden learning export`` and ``perfwarden learning import FILE...``.

Export writes this host's own judged outcomes (per strategy and per strategy and
metric: ``successes`` and ``trials``) as JSON; import sums one or more hosts'
exports and hands them to the daemon as its fleet prior, replacing the previous
one. The format is documented in docs/fleet.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwarden.commands._common import control_path, print_json
from perfwarden.control.channel import request
from perfwarden.errors import PerfwardenError
from perfwarden.optimize.learning import LearningFormatError, merge_exports

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Export the learned record, or import exports as the fleet prior."""
    path = control_path(args.socket_dir)
    if args.action == "export":
        document: dict[str, Any] = request(path, "learning.export")
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    merged = merge_exports(_read(name) for name in args.files)
    imported = request(path, "learning.import", document=merged, weight=args.weight)
    if args.json:
        print_json(imported)
    else:
        hosts = ", ".join(imported["hosts"]) or "unnamed hosts"
        print(
            f"imported {imported['trials']} trials of {imported['strategies']} "
            f"strategies ({imported['metrics']} strategy/metric pairs) from {hosts} "
            f"at weight {imported['weight']:g}"
        )
    return 0


def _read(name: str) -> dict[str, Any]:
    """One export file (``-``: stdin), checked, with its name in any error."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text("utf-8")
        document = json.loads(text)
        merge_exports([document])
    except OSError as exc:
        message = f"{name}: {exc.strerror or exc}"
        raise PerfwardenError(message) from None
    except json.JSONDecodeError as exc:
        message = f"{name}: not JSON ({exc})"
        raise PerfwardenError(message) from None
    except LearningFormatError as exc:
        message = f"{name}: {exc}"
        raise PerfwardenError(message) from None
    if not isinstance(document, dict):  # merge_exports said so already
        raise PerfwardenError(name)
    return document
