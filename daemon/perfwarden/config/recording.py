"""The schema of the ``recording:`` section (what ``perfwarden backtest`` replays).

::

    recording:
      enabled: false       # on: accepted samples go to <state dir>/recording/
      metrics: []          # only these metric names (default: all)
      max_bytes: 268435456 # oldest segments removed beyond this (256 MiB)
      max_age: 168h        # ... or once older than this (a week)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from perfwarden.config.model import RecordingConfig
from perfwarden.config.nodes import at_least, name_problem, or_default, positive

if TYPE_CHECKING:
    from perfwarden.config.nodes import Checker, Section

__all__ = ["RECORDING_KEYS", "recording_section"]

RECORDING_KEYS: Final = ("enabled", "metrics", "max_bytes", "max_age")
#: Below this a segment would hold too little to be worth a file.
_MIN_BYTES: Final = 1 << 20


def recording_section(c: Checker, s: Section) -> RecordingConfig:
    """Read ``recording:`` (every problem to ``c``)."""
    d = RecordingConfig()
    return RecordingConfig(
        enabled=c.boolean(s, "enabled", default=d.enabled),
        metrics=c.strings(s, "metrics", _metric_name),
        max_bytes=or_default(
            c.integer(s, "max_bytes", at_least(_MIN_BYTES)), d.max_bytes
        ),
        max_age=or_default(c.duration(s, "max_age", positive), d.max_age),
    )


def _metric_name(value: str) -> str | None:
    return name_problem(value)
