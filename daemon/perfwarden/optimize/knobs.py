"""The knob store: bounded values, their originals and provenance, ``knobs.json``.

Only the daemon writes knobs (plugins propose, the core applies). Every change is
clamped to the knob's declaration, versioned, recorded with who made it and why
(``manual``, ``optimizer:<strategy>``, ``revert``, ``config``), written atomically
to ``knobs.json`` in the state directory (temporary file, fsync, rename, fsync of
the directory: a reader never sees half a file, even after ``kill -9``) and
announced to subscribers (the control socket's ``knobs.watch`` streams).

``knobs.json``::

    {"version": 7, "updated_at": 1732560000.0,
     "knobs": {"compression.ratio": {"value": 0.5, "initial": 0.4, "min": 0.1,
               "max": 0.9, "step": 0.1, "choices": null, "changed_by": "manual",
               "changed_at": 1732560000.0, "reason": "..."}}}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from perfwarden.logs.setup import get_logger
from perfwarden.paths import KNOBS_FILE
from perfwarden.plugin_api import KnobSpec, KnobValue

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from perfwarden.config.load import KnobConfig

__all__ = [
    "KNOBS_FILE",
    "Adjustment",
    "KnobRecord",
    "KnobStore",
    "adjustment",
    "spec_of",
    "write_json_atomic",
]

_log = get_logger("perfwarden.knobs")


def spec_of(knob: KnobConfig) -> KnobSpec:
    """The plugin-facing declaration of a configured knob."""
    return KnobSpec(
        name=knob.name,
        initial=knob.initial,
        min=knob.min,
        max=knob.max,
        step=knob.step,
        choices=knob.choices,
    )


@dataclass(frozen=True, slots=True)
class Adjustment:
    """Why a knob holds another value than the one asked for."""

    #: ``clamped`` (outside the bounds) or ``rounded`` (off the step, or a fraction
    #: for a whole-number knob).
    kind: str
    #: One sentence for a person: what was asked, the rule, what was stored.
    message: str


def _shown(value: KnobValue) -> str:
    return f"{value:g}" if isinstance(value, int | float) else repr(value)


def adjustment(
    spec: KnobSpec, requested: KnobValue, stored: KnobValue
) -> Adjustment | None:
    """How ``spec.clamp`` changed ``requested`` into ``stored`` (None: unchanged)."""
    if isinstance(requested, str) or stored == requested:
        return None
    name, asked, result = spec.name, _shown(requested), _shown(stored)
    if spec.min is not None and requested < spec.min:
        rule = f"below the minimum {_shown(spec.min)}"
        return Adjustment("clamped", f"{name}: {asked} is {rule}; set to {result}")
    if spec.max is not None and requested > spec.max:
        rule = f"above the maximum {_shown(spec.max)}"
        return Adjustment("clamped", f"{name}: {asked} is {rule}; set to {result}")
    rule = (
        f"not on the knob's step of {_shown(spec.step)}"
        if spec.step
        else "not a whole number"
    )
    return Adjustment("rounded", f"{name}: {asked} is {rule}; set to {result}")


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path``: temp file, fsync, rename, fsync dir."""
    data = json.dumps(payload, indent=2, sort_keys=True).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _timestamp(value: object, now: Callable[[], float]) -> float:
    """A saved time if it is a finite number, else now (a hand-edited file)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):
            if math.isfinite(float(value)):
                return float(value)
    return now()


@dataclass(frozen=True, slots=True)
class KnobRecord:
    """A knob's current value and where it came from."""

    value: KnobValue
    changed_by: str
    changed_at: float
    reason: str = ""


class KnobStore:
    """Every knob's value; the single writer of ``knobs.json``."""

    def __init__(
        self,
        specs: Mapping[str, KnobSpec],
        directory: Path | None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._specs = dict(specs)
        self._path = directory / KNOBS_FILE if directory is not None else None
        self._wall = wall
        now = wall()
        self._records = {
            name: KnobRecord(spec.initial, "config", now)
            for name, spec in specs.items()
        }
        self.version = 0
        self.subscribers: list[Callable[[dict[str, Any]], None]] = []

    @property
    def specs(self) -> Mapping[str, KnobSpec]:
        """The declarations, read-only."""
        return MappingProxyType(self._specs)

    def values(self) -> dict[str, KnobValue]:
        """Name → current value."""
        return {name: record.value for name, record in self._records.items()}

    def get(self, name: str) -> KnobValue:
        """The current value of ``name`` (``KeyError`` if undeclared)."""
        return self._records[name].value

    def record(self, name: str) -> KnobRecord:
        """The current value of ``name`` with its provenance."""
        return self._records[name]

    def clamped(self, name: str, value: KnobValue) -> KnobValue:
        """What :meth:`set` would store for ``value`` (raises as :meth:`set` does)."""
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self._specs)) or "none declared"
            msg = f"no knob {name!r} (known: {known})"
            raise KeyError(msg)
        return spec.clamp(value)

    def set(
        self,
        name: str,
        value: KnobValue,
        *,
        source: str,
        reason: str = "",
        correlation_id: str | None = None,
    ) -> KnobValue:
        """Clamp and set ``name``; returns the value stored (raises on a bad value).

        ``correlation_id`` (the optimizer's, for its changes and reverts) goes on
        the ``knob.changed`` line as its own field, so one id selects a decision's
        every line.
        """
        stored = self.clamped(name, value)
        old = self._records[name].value
        self._records[name] = KnobRecord(stored, source, self._wall(), reason)
        self.version += 1
        _log.info(
            "knob.changed",
            knob=name,
            old=old,
            new=stored,
            requested=value,
            changed_by=source,
            reason=reason,
            version=self.version,
            **({"correlation_id": correlation_id} if correlation_id else {}),
        )
        self._publish()
        return stored

    def reconfigure(self, specs: Mapping[str, KnobSpec]) -> None:
        """New declarations: keep (re-clamped) values of knobs that still exist."""
        now = self._wall()
        records: dict[str, KnobRecord] = {}
        for name, spec in specs.items():
            old = self._records.get(name)
            if old is None:
                records[name] = KnobRecord(spec.initial, "config", now)
                continue
            try:
                value = spec.clamp(old.value)
            except (TypeError, ValueError):
                value = spec.initial
            records[name] = (
                old
                if value == old.value
                else KnobRecord(value, "config", now, "reclamped")
            )
        changed = records != self._records or specs != self._specs
        self._specs = dict(specs)
        self._records = records
        if changed:
            self.version += 1
            self._publish()

    def restore(self, saved: Mapping[str, Any]) -> list[str]:
        """Take values from a saved ``knobs.json`` document, re-validated.

        Unknown knobs and values that no longer fit are skipped; returns the names
        restored.
        """
        restored: list[str] = []
        knobs = saved.get("knobs") if isinstance(saved, dict) else None
        if not isinstance(knobs, dict):
            return restored
        for name, entry in knobs.items():
            spec = self._specs.get(name)
            if spec is None or not isinstance(entry, dict) or "value" not in entry:
                continue
            try:
                value = spec.clamp(entry["value"])
            except (TypeError, ValueError, ArithmeticError):
                continue
            self._records[name] = KnobRecord(
                value,
                str(entry.get("changed_by", "restored")),
                _timestamp(entry.get("changed_at"), self._wall),
                str(entry.get("reason", "")),
            )
            restored.append(name)
        version = saved.get("version")
        if isinstance(version, int) and version > self.version:
            self.version = version
        return restored

    def load(self) -> list[str]:
        """Restore from ``knobs.json`` if a previous run left one.

        Temporary files of writes a crash interrupted are removed first.
        """
        if self._path is None:
            return []
        for leftover in self._path.parent.glob(f".{KNOBS_FILE}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        if not self._path.exists():
            return []
        try:
            saved = json.loads(self._path.read_text())
        except (OSError, ValueError) as exc:
            _log.warning("knob.restore_failed", path=str(self._path), error=str(exc))
            return []
        return self.restore(saved)

    def document(self) -> dict[str, Any]:
        """The ``knobs.json`` document (also what ``perfwarden knobs`` shows)."""
        knobs = {}
        for name, record in self._records.items():
            spec = self._specs[name]
            knobs[name] = {
                "value": record.value,
                "initial": spec.initial,
                "min": spec.min,
                "max": spec.max,
                "step": spec.step,
                "choices": list(spec.choices) if spec.choices is not None else None,
                "changed_by": record.changed_by,
                "changed_at": record.changed_at,
                "reason": record.reason,
            }
        return {"version": self.version, "updated_at": self._wall(), "knobs": knobs}

    def write(self) -> None:
        """Write ``knobs.json`` now (atomically)."""
        if self._path is None:
            return
        try:
            write_json_atomic(self._path, self.document())
        except OSError as exc:
            _log.error("knob.write_failed", path=str(self._path), error=str(exc))

    def _publish(self) -> None:
        self.write()
        update = {"version": self.version, "values": self.values()}
        for subscriber in list(self.subscribers):
            try:
                subscriber(update)
            except Exception:  # noqa: BLE001 - a broken watcher must not stop others
                _log.exception("knob.subscriber_failed")
