"""``perfwarden learning export`` and ``perfwarden learning import FILE...``.

Export writes this host's own judged outcomes (per strategy and per strategy and
metric: ``successes`` and ``trials``) as JSON, asked of the running daemon or,
with ``--state-dir``, read from its ``state.db`` (:func:`saved_learning`); import
sums one or more hosts' exports and hands them to the daemon as its fleet prior,
replacing the previous one, at ``--weight`` or else the daemon's
``optimizer.fleet_prior_weight``. The format is documented in docs/fleet.md.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwarden.commands._common import control_path, print_json
from perfwarden.control.channel import request
from perfwarden.errors import PerfwardenError
from perfwarden.optimize.learning import Learning, LearningFormatError, merge_exports
from perfwarden.state.file import APPLICATION_ID, STATE_FILE

if TYPE_CHECKING:
    import argparse

__all__ = ["run", "saved_learning"]


def run(args: argparse.Namespace) -> int:
    """Export the learned record, or import exports as the fleet prior."""
    if args.action == "export":
        if args.state_dir is not None:
            learning = saved_learning(Path(args.state_dir))
            now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            document = learning.export_document(platform.node(), now)
        else:
            document = request(control_path(args.socket_dir), "learning.export")
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    merged = merge_exports(_read(name) for name in args.files)
    # Without --weight the daemon takes its optimizer.fleet_prior_weight.
    weight = {} if args.weight is None else {"weight": args.weight}
    imported = request(
        control_path(args.socket_dir), "learning.import", document=merged, **weight
    )
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


def saved_learning(state_dir: Path) -> Learning:
    """The learned record of ``state_dir/state.db`` as of its last checkpoint.

    SQLite never writes the file: beside a running daemon (its ``-wal`` exists
    while it has the file open) it is opened ``mode=ro`` and the last committed
    checkpoint is read, WAL included; with no daemon it is opened ``immutable``,
    which also leaves no ``-wal``/``-shm`` behind (a plain read-only open would
    create them, owned by whoever ran the export). A missing or foreign file
    raises :class:`PerfwardenError` naming it.
    """
    path = state_dir / STATE_FILE
    if not path.is_file():
        message = f"{path}: no state file (is DIR the daemon's --state-dir?)"
        raise PerfwardenError(message)
    in_use = path.with_name(f"{path.name}-wal").exists()
    try:
        text = _learning_text(path, "mode=ro" if in_use else "mode=ro&immutable=1")
    except sqlite3.DatabaseError as exc:
        message = f"{path}: not a perfwarden state database ({exc})"
        raise PerfwardenError(message) from None
    learning = Learning()
    if text is None:  # the daemon has not checkpointed a record yet
        return learning
    try:
        learning.restore(json.loads(text))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        message = f"{path}: the saved learning record is unreadable ({exc})"
        raise PerfwardenError(message) from None
    return learning


def _learning_text(path: Path, query: str) -> str | None:
    """The saved learning document's JSON text (``None``: not saved yet)."""
    uri = f"{path.absolute().as_uri()}?{query}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        if int(app_id) != APPLICATION_ID:
            message = f"{path}: not a perfwarden state database"
            raise PerfwardenError(message)
        row = conn.execute(
            "SELECT data FROM documents WHERE name = 'learning'"
        ).fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


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
