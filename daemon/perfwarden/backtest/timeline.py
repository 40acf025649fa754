"""Alert timelines from a replay's events: per series, summarised, and compared.

A series' timeline is its transitions in order (``pending``, ``fired``,
``escalated``, ``deescalated``, ``resolved``, ``cancelled``, ``no_data``, ...), each
with its time, the time since the series' previous transition, the observation that
decided it and whether a silence muted it. The summary counts fires, time firing (an
alert still firing at the end counts until the end and is *open*) and flaps: fires
that come within :data:`FLAP_WINDOW` of the same series' previous resolve.
:func:`compare` states what a new config would change against the current one, in
sentences.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from perfwarden.alerts.machine import Transition

if TYPE_CHECKING:
    from collections.abc import Iterable

    from perfwarden.alerts.evaluator import AlertEvent

__all__ = [
    "FLAP_WINDOW",
    "SeriesTimeline",
    "Step",
    "compare",
    "format_duration",
    "format_time",
    "timelines",
]

#: A fire this soon (seconds) after the same series resolved is a flap.
FLAP_WINDOW: Final = 300.0
_CLOSING: Final = {Transition.RESOLVED, Transition.NO_DATA}


@dataclass(frozen=True, slots=True)
class Step:
    """One transition of one series."""

    at: float
    transition: str
    severity: str | None
    previous_severity: str | None
    observed: tuple[float, float] | None
    threshold: float | None
    #: Seconds since the series' previous transition (None for its first).
    after: float | None
    reason: str | None = None
    #: A silence was in force: live, it was logged but not acted on or routed.
    silenced: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "at": self.at,
            "transition": self.transition,
            "severity": self.severity,
            "previous_severity": self.previous_severity,
            "observed": list(self.observed) if self.observed else None,
            "threshold": self.threshold,
            "after_seconds": self.after,
            "reason": self.reason,
            "silenced": self.silenced,
        }


@dataclass(slots=True)
class SeriesTimeline:
    """The transitions of one series and their summary."""

    series: str
    metric: str
    steps: list[Step] = field(default_factory=list)
    fires: int = 0
    #: Fires a silence muted (counted in ``fires`` too).
    silenced_fires: int = 0
    escalations: int = 0
    resolves: int = 0
    flaps: int = 0
    firing_seconds: float = 0.0
    #: Firing when the replay ended (since ``fired_at``).
    open: bool = False
    first_fired: float | None = None
    fired_at: float | None = None

    def summary(self) -> dict[str, Any]:
        """The counts, JSON-ready."""
        return {
            "fires": self.fires,
            "silenced_fires": self.silenced_fires,
            "escalations": self.escalations,
            "resolves": self.resolves,
            "flaps": self.flaps,
            "firing_seconds": round(self.firing_seconds, 3),
            "open": self.open,
            "first_fired": self.first_fired,
        }

    def as_dict(self) -> dict[str, Any]:
        """Steps and summary, JSON-ready."""
        return {
            "metric": self.metric,
            "transitions": [step.as_dict() for step in self.steps],
            "summary": self.summary(),
        }


def timelines(
    events: Iterable[AlertEvent], end: float | None
) -> dict[str, SeriesTimeline]:
    """Per series key, its timeline; an alert firing at ``end`` is open until then."""
    lines: dict[str, SeriesTimeline] = {}
    last_resolved: dict[str, float] = {}
    for event in events:
        line = lines.get(event.series)
        if line is None:
            line = lines[event.series] = SeriesTimeline(event.series, event.metric)
        previous = line.steps[-1].at if line.steps else None
        line.steps.append(
            Step(
                at=event.at,
                transition=event.transition.value,
                severity=event.level.value if event.level else None,
                previous_severity=(
                    event.previous_level.value if event.previous_level else None
                ),
                observed=event.observed,
                threshold=event.threshold,
                after=None if previous is None else event.at - previous,
                reason=event.reason,
                silenced=event.silenced,
            )
        )
        transition = event.transition
        if transition is Transition.FIRED:
            line.fires += 1
            line.silenced_fires += event.silenced
            line.fired_at = event.at
            if line.first_fired is None:
                line.first_fired = event.at
            resolved = last_resolved.get(event.series)
            if resolved is not None and event.at - resolved <= FLAP_WINDOW:
                line.flaps += 1
        elif transition is Transition.ESCALATED:
            line.escalations += 1
        elif transition in _CLOSING and line.fired_at is not None:
            line.firing_seconds += event.at - line.fired_at
            line.fired_at = None
            if transition is Transition.RESOLVED:
                line.resolves += 1
                last_resolved[event.series] = event.at
    for line in lines.values():
        if line.fired_at is not None:
            line.open = True
            if end is not None:
                line.firing_seconds += max(end - line.fired_at, 0.0)
    return lines


def compare(
    new: dict[str, SeriesTimeline], current: dict[str, SeriesTimeline]
) -> list[dict[str, Any]]:
    """What ``new`` changes against ``current``, series by series, as sentences
    (``message``) with the figures beside them."""
    differences: list[dict[str, Any]] = []
    for key in sorted(set(new) | set(current)):
        empty = SeriesTimeline(key, key.partition("|")[0])
        differences.extend(
            {"series": key, "kind": kind, "message": message, **figures}
            for kind, message, figures in _differ(
                key, new.get(key, empty), current.get(key, empty)
            )
        )
    return differences


def _differ(
    key: str, a: SeriesTimeline, b: SeriesTimeline
) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    if a.fires != b.fires:
        more = a.fires - b.fires
        word = "more" if more > 0 else "fewer"
        plural = "s" if abs(more) != 1 else ""
        message = f"{abs(more)} {word} fire{plural} on {key} ({a.fires}, not {b.fires})"
        out.append(("fires", message, {"new": a.fires, "current": b.fires}))
    if a.first_fired is not None and b.first_fired is not None:
        delta = b.first_fired - a.first_fired
        if delta:
            when = "earlier" if delta > 0 else "later"
            message = f"{key} would have fired {format_duration(abs(delta))} {when}"
            out.append(("first_fire", message, {"seconds": round(delta, 3)}))
    if a.open and not b.open:
        message = f"{key} never resolves (firing from {format_time(a.fired_at)})"
        out.append(("never_resolves", message, {}))
    if b.open and not a.open:
        message = f"{key} resolves, where the current config's stays firing"
        out.append(("resolves", message, {}))
    delta = a.firing_seconds - b.firing_seconds
    if abs(delta) >= 1.0:
        sign = "+" if delta > 0 else "-"
        message = f"{sign}{format_duration(abs(delta))} firing on {key}"
        out.append(("firing_time", message, {"seconds": round(delta, 3)}))
    if a.flaps != b.flaps:
        plural = "s" if a.flaps != 1 else ""
        message = f"{a.flaps} flap{plural} on {key} instead of {b.flaps}"
        out.append(("flaps", message, {"new": a.flaps, "current": b.flaps}))
    return out


def format_duration(seconds: float) -> str:
    """``40s``, ``2m05s``, ``3h10m``, ``2d04h``."""
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.2g}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_time(moment: float | None) -> str:
    """A unix time as ``2026-12-06 10:42:59Z``."""
    if moment is None:
        return "?"
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
