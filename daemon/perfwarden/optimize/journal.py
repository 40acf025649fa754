"""The write-ahead journal of actions in flight: ``inflight.json`` in the state dir.

An optimizer action changes knobs before its verdict. The journal makes that change
undoable after any crash: the record of an experiment (its knobs' original values
and the values about to be set) is durable on disk *before* the first knob changes,
and is dropped only once the experiment is over (kept, or reverted and the
originals written back). A daemon killed at any instant in between finds the record
at its next start and puts the originals back (:func:`revert_unfinished`), unless
someone else changed the knob since.

``inflight.json`` (written like ``knobs.json``: temporary file, fsync, rename, fsync
of the directory)::

    {"version": 1, "in_flight": [
        {"correlation_id": "3f2a9c1d0b7e", "metric": "latency", "strategy": "halve",
         "plugin": "acme", "originals": {"batch.size": 64},
         "applied": {"batch.size": 32}, "action": null, "at": 1732560000.0}]}
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, Final

from perfwarden.logs.setup import get_logger
from perfwarden.optimize.knobs import write_json_atomic

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from perfwarden.optimize.knobs import KnobStore

__all__ = ["JOURNAL_FILE", "ActionJournal", "revert_unfinished"]

#: The journal's file name in the state directory.
JOURNAL_FILE: Final = "inflight.json"
_VERSION: Final = 1
_log = get_logger("perfwarden.optimizer")


class ActionJournal:
    """The durable list of experiments in flight (no file without a state dir)."""

    def __init__(self, directory: Path | None) -> None:
        self._path = directory / JOURNAL_FILE if directory is not None else None
        self._entries: dict[str, dict[str, Any]] = {}

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The experiments recorded and not yet settled, oldest first."""
        return list(self._entries.values())

    def load(self) -> list[dict[str, Any]]:
        """What a previous run left in flight (the file stays until :meth:`clear`)."""
        if self._path is None:
            return []
        for leftover in self._path.parent.glob(f".{JOURNAL_FILE}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        try:
            document = json.loads(self._path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            _log.warning("journal.unreadable", path=str(self._path), error=str(exc))
            return []
        entries = document.get("in_flight") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            return []
        return [entry for entry in entries if isinstance(entry, dict)]

    def record(self, entry: Mapping[str, Any]) -> None:
        """Make ``entry`` durable; raises ``OSError`` if it could not be written
        (the caller must then not change anything)."""
        cid = str(entry["correlation_id"])
        self._entries[cid] = dict(entry)
        try:
            self._write()
        except OSError:
            del self._entries[cid]
            raise

    def settle(self, correlation_id: str) -> None:
        """The experiment is over: drop its record (logged if that fails; the next
        start would then revert a kept change, which is the safe side)."""
        if self._entries.pop(correlation_id, None) is None:
            return
        try:
            self._write()
        except OSError as exc:
            _log.error("journal.write_failed", path=str(self._path), error=str(exc))

    def clear(self) -> None:
        """Forget everything (after the start-up revert)."""
        self._entries.clear()
        if self._path is None:
            return
        try:
            self._write()
        except OSError as exc:
            _log.error("journal.write_failed", path=str(self._path), error=str(exc))

    def _write(self) -> None:
        if self._path is None:
            return
        document = {"version": _VERSION, "in_flight": list(self._entries.values())}
        write_json_atomic(self._path, document)


def revert_unfinished(
    entries: Iterable[Mapping[str, Any]], knobs: KnobStore, *, reason: str
) -> list[str]:
    """Put back the originals of experiments a stopped daemon left unvalidated.

    A knob that holds neither the value the experiment set nor its original was
    changed by someone since: theirs stands. Returns the correlation ids handled.
    """
    handled = []
    for entry in entries:
        cid = str(entry.get("correlation_id"))
        applied = entry.get("applied") or {}
        originals = entry.get("originals") or {}
        if not isinstance(applied, dict) or not isinstance(originals, dict):
            continue
        for knob, original in originals.items():
            try:
                current = knobs.get(knob)
            except KeyError:
                continue
            if current == original:
                continue  # killed before this knob changed
            if knob in applied and current != applied[knob]:
                continue  # changed by someone since: theirs stands
            with contextlib.suppress(TypeError, ValueError):
                knobs.set(knob, original, source="revert", reason=cid)
        _log.info(
            "optimizer.reverted",
            correlation_id=cid,
            metric=entry.get("metric"),
            strategy=entry.get("strategy"),
            verdict="reverted",
            reason=reason,
            action=entry.get("action"),
        )
        handled.append(cid)
    return handled
