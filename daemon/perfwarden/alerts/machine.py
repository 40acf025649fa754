"""The alert state machine of one series: pure, with hold times and hysteresis.

::

            violated (for: 0)                     clear of warning (with margin)
    OK ─violated─► PENDING ─held `for`─► FIRING(warning) ─critical─► FIRING(critical)
    ▲ (for: 0 goes    │                  │  ▲                              │
    │  straight to    │ not violated     │  └── clear of critical ─────────┘
    │  FIRING)        ▼                  │       (de-escalated)
    └──────────── CANCELLED   RESOLVED ◄─┘ clear of warning, margin included

A level is *violated* when the whole observation (a value, a mean or a confidence
interval, depending on the basis) lies beyond its threshold; it is *cleared* only
when the whole observation is back on the good side by the hysteresis margin, so a
value hovering on a threshold cannot flap. An observation in between keeps the
current state. ``no_data`` is decided by the evaluator (nothing arrived for a while)
and is left when data comes back.

:func:`step` is a pure function ``(alert, verdict, now, hold) -> (alert, events)``.
The hold is a time (``for: 5s``: the condition began at least that long ago) and a
count (``for: 3 samples``: at least that many samples in a row were judged
violating); ``samples`` says how many new samples the observation judged (0 on a
tick without data), so a hold in samples does not depend on how data is paced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from perfwarden.config.load import Bound

__all__ = [
    "ACTIONS",
    "AlertState",
    "Level",
    "SeriesAlert",
    "Transition",
    "Verdict",
    "judge_observation",
    "step",
]


class Level(StrEnum):
    """The alert levels of the seed's ``AlertManager``."""

    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(StrEnum):
    """Where a series' alert stands."""

    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    NO_DATA = "no_data"


class Transition(StrEnum):
    """The transitions a user sees, each logged as ``alert.<value>``."""

    PENDING = "pending"
    CANCELLED = "cancelled"  # pending, then back to ok before `for` elapsed
    FIRED = "fired"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    RESOLVED = "resolved"
    NO_DATA = "no_data"
    DATA_RESUMED = "data_resumed"


#: The seed's ``action`` per level.
ACTIONS: Final = {
    Level.CRITICAL: "immediate_optimization_required",
    Level.WARNING: "optimization_recommended",
}

_SEVERITY: Final = {Level.WARNING: 1, Level.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one observation says about the thresholds.

    ``violated`` is the most severe level whose threshold the whole observation is
    beyond (or ``None``); ``clear_of_warning`` / ``clear_of_critical`` say whether it
    is entirely back on the good side of that level, margin included.
    """

    violated: Level | None
    clear_of_warning: bool
    clear_of_critical: bool


@dataclass(frozen=True, slots=True)
class SeriesAlert:
    """The alert state of one series."""

    state: AlertState = AlertState.OK
    level: Level | None = None
    #: When the current state was entered (pending: when the condition began).
    since: float = 0.0
    fired_at: float | None = None
    #: Pending: samples judged violating since the condition began.
    held: int = 0


def _beyond(low: float, high: float, threshold: float, bound: Bound) -> bool:
    return low > threshold if bound is Bound.UPPER else high < threshold


def _clear(
    low: float, high: float, threshold: float, bound: Bound, margin: float
) -> bool:
    slack = margin * abs(threshold)
    if bound is Bound.UPPER:
        return high < threshold - slack
    return low > threshold + slack


def judge_observation(
    low: float,
    high: float,
    *,
    bound: Bound,
    warning: float | None,
    critical: float | None,
    hysteresis: float,
) -> Verdict:
    """Compare an observation ``[low, high]`` with the levels of one metric."""
    violated: Level | None = None
    if critical is not None and _beyond(low, high, critical, bound):
        violated = Level.CRITICAL
    elif warning is not None and _beyond(low, high, warning, bound):
        violated = Level.WARNING
    clear_of_critical = critical is None or _clear(
        low, high, critical, bound, hysteresis
    )
    clear_of_warning = clear_of_critical and (
        warning is None or _clear(low, high, warning, bound, hysteresis)
    )
    return Verdict(violated, clear_of_warning, clear_of_critical)


def _more_severe(a: Level, b: Level) -> Level:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def step(
    alert: SeriesAlert,
    verdict: Verdict,
    now: float,
    hold: float,
    *,
    samples: int = 1,
    hold_samples: int = 0,
) -> tuple[SeriesAlert, Transition | None]:
    """Advance one series' alert by one observation at time ``now``.

    It fires once the condition has held ``hold`` seconds *and* ``hold_samples``
    samples (``samples``: how many new samples this observation judged).
    """
    violated = verdict.violated
    if alert.state is AlertState.NO_DATA:
        return SeriesAlert(since=now), Transition.DATA_RESUMED
    if alert.state is AlertState.OK:
        if violated is None:
            return alert, None
        if hold <= 0 and samples >= hold_samples:
            return SeriesAlert(AlertState.FIRING, violated, now, now), Transition.FIRED
        pending = SeriesAlert(AlertState.PENDING, violated, now, held=samples)
        return pending, Transition.PENDING
    if alert.state is AlertState.PENDING:
        assert alert.level is not None  # noqa: S101 - pending always has a level
        if violated is None:
            return SeriesAlert(since=now), Transition.CANCELLED
        level = _more_severe(alert.level, violated)
        held = alert.held + samples
        if now - alert.since >= hold and held >= hold_samples:
            return (
                SeriesAlert(AlertState.FIRING, level, alert.since, now),
                Transition.FIRED,
            )
        if level is alert.level and held == alert.held:
            return alert, None
        return replace(alert, level=level, held=held), None
    # FIRING
    if alert.level is Level.WARNING and violated is Level.CRITICAL:
        return replace(alert, level=Level.CRITICAL), Transition.ESCALATED
    if alert.level is Level.CRITICAL and verdict.clear_of_critical:
        if verdict.clear_of_warning:
            return SeriesAlert(since=now), Transition.RESOLVED
        return replace(alert, level=Level.WARNING), Transition.DEESCALATED
    if alert.level is Level.WARNING and verdict.clear_of_warning:
        return SeriesAlert(since=now), Transition.RESOLVED
    return alert, None
