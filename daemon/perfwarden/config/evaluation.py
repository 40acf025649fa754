"""The ``evaluation`` section of ``perfwarden.yaml`` and the hold (``for``) of metrics.

One job: read how alerts are judged (basis, windows, hold, hysteresis, missing
data) and reject settings under which a window could never judge, so an alert
could never fire: an evaluation window below ``statistics.min_samples``, a short
window too small to trim or too large for the series window, a fractional
``for: N samples``. Used by :mod:`perfwarden.config.load`, which composes the file.
"""

from __future__ import annotations

import re
from typing import Final

from yaml.nodes import ScalarNode

from perfwarden.config.model import Basis, EvaluationConfig, StatisticsConfig
from perfwarden.config.nodes import (
    Checker,
    Section,
    at_least,
    line_of,
    non_negative,
    or_default,
    positive,
)

__all__ = ["EVALUATION_KEYS", "check_reference", "evaluation_section_of", "hold"]

EVALUATION_KEYS: Final = (
    "interval", "basis", "for", "window", "short_window", "hysteresis",
    "missing_after", "coalesce",
)  # fmt: skip
#: ``for: 3 samples``: a hold counted in samples rather than time.
_SAMPLES_HOLD: Final = re.compile(r"\s*(\S+)\s+samples?\s*")


def evaluation_section_of(
    c: Checker, s: Section, statistics: StatisticsConfig
) -> EvaluationConfig:
    """The ``evaluation`` section, checked against ``statistics``."""
    d = EvaluationConfig()
    window = or_default(c.integer(s, "window", at_least(2)), d.window)
    if window < statistics.min_samples:
        # mean and ci are only judged from min_samples values on: a smaller
        # evaluation window would never alert.
        c.add(
            s.value_line("window") if "window" in s else s.line,
            s.dotted("window"),
            f"must be at least statistics.min_samples ({statistics.min_samples})",
        )
    short_window = or_default(c.integer(s, "short_window", at_least(3)), d.short_window)
    basis = or_default(c.choice(s, "basis", Basis), d.basis)
    needed = short_window + statistics.min_samples
    reported = statistics.min_samples > statistics.window  # already a problem
    if basis is Basis.MULTIWINDOW and not reported and statistics.window < needed:
        c.add(
            s.value_line("short_window") if "short_window" in s else s.line,
            s.dotted("short_window"),
            f"short_window + statistics.min_samples ({needed}) exceeds"
            f" statistics.window ({statistics.window}): the short windows would"
            " never judge",
        )
    hold_time, hold_samples = hold(c, s)
    return EvaluationConfig(
        interval=or_default(c.duration(s, "interval", positive), d.interval),
        basis=basis,
        for_=or_default(hold_time, d.for_),
        for_samples=or_default(hold_samples, d.for_samples),
        window=window,
        short_window=short_window,
        hysteresis=or_default(c.number(s, "hysteresis", _fraction), d.hysteresis),
        missing_after=or_default(
            c.duration(s, "missing_after", positive), d.missing_after
        ),
        coalesce=or_default(c.duration(s, "coalesce", _coalesce), d.coalesce),
    )


def hold(c: Checker, s: Section) -> tuple[float | None, int | None]:
    """``for``: a duration, or ``N samples`` (seconds or samples; the other is 0)."""
    node = s.node("for")
    if not isinstance(node, ScalarNode) or not isinstance(node.value, str):
        return c.duration(s, "for", non_negative), None
    match = _SAMPLES_HOLD.fullmatch(node.value)
    if match is None:
        return c.duration(s, "for", non_negative), None
    count = match.group(1)
    if not count.isdigit():
        message = f"must be a whole number of samples, got {count!r}"
        c.add(line_of(node), s.dotted("for"), message)
        return None, None
    return 0.0, int(count)


def check_reference(
    c: Checker,
    m: Section,
    window: int | None,
    evaluation: EvaluationConfig,
    statistics: StatisticsConfig,
) -> None:
    """On ``multiwindow`` a metric's window must hold the short window and the
    ``min_samples`` before it, else the short window never judges (never fires)."""
    needed = evaluation.short_window + statistics.min_samples
    if evaluation.basis is not Basis.MULTIWINDOW or window is None or window >= needed:
        return
    message = (
        f"must be at least evaluation.short_window + statistics.min_samples"
        f" ({needed}) on the multiwindow basis, or its short windows never judge"
    )
    c.add(m.value_line("window"), m.dotted("window"), message)


def _coalesce(value: float) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1s"


def _fraction(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be at least 0 and below 1"
