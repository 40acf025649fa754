"""Parse human-written durations ("5s", "250ms", "1h30m", "1d", 5) into seconds.

One job: turn a configuration value into a non-negative, finite ``float`` number of
seconds, or raise :class:`ValueError` with a message that a user can act on.

Accepted forms::

    5          # int or float: seconds
    "5"        # a numeric string: seconds
    "250ms"    # milliseconds
    "1.5s"     # seconds
    "2m"       # minutes
    "1h"       # hours
    "1d"       # days (24 h)
    "1w"       # weeks (7 d)
    "1e3ms"    # exponents are allowed in the number
    "1h30m"    # Prometheus' compound form: integers, units from largest to smallest

Rejected: negatives, NaN and infinities, booleans, empty strings, unknown units, and
anything else.
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["DURATION_UNITS", "parse_duration"]

#: Seconds per unit, for every unit suffix :func:`parse_duration` understands.
DURATION_UNITS: Final[dict[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_DURATION_RE: Final = re.compile(
    r"""
    \s*
    (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    \s*
    (?P<unit>[a-zA-Z]*)
    \s*
    """,
    re.VERBOSE,
)
_INTEGER_RE: Final = re.compile(r"[0-9]+")
_COMPOUND_RE: Final = re.compile(r"(?:[0-9]+(?:ms|[wdhms]))+")
_COMPOUND_TERM_RE: Final = re.compile(r"([0-9]+)(ms|[wdhms])")
_UNIT_ORDER: Final = ("w", "d", "h", "m", "s", "ms")
_MAX_TEXT: Final = 64
_UNIT_HINT: Final = (
    "use a number of seconds, a number followed by ms, s, m, h, d or w, "
    'or a compound such as "1h30m"'
)


def parse_duration(value: str | int | float) -> float:
    """Return *value* as seconds.

    Numbers (and numeric strings without a unit) are seconds; strings may carry one of
    the units ``ms``, ``s``, ``m``, ``h``, ``d`` or ``w``, or be a compound of integer
    terms with units from largest to smallest (``"1h30m"``, ``"2d12h"``).  Raises
    :class:`ValueError` for negative, non-finite or unparsable values and for
    booleans.
    """
    if isinstance(value, bool):
        msg = f"expected a duration, got a boolean ({str(value).lower()}); {_UNIT_HINT}"
        raise ValueError(msg)
    if isinstance(value, int | float):
        return _checked(value, _show_number(value))
    if not isinstance(value, str):
        msg = f"expected a duration, got {type(value).__name__}; {_UNIT_HINT}"
        raise TypeError(msg)
    text = value.strip()
    shown = repr(text) if len(text) <= _MAX_TEXT else repr(text[:_MAX_TEXT] + "...")
    if not text:
        msg = f"empty duration; {_UNIT_HINT}"
        raise ValueError(msg)
    if len(text) > _MAX_TEXT:
        msg = f"duration {shown} is too long"
        raise ValueError(msg)
    if text.startswith("-"):
        msg = f"duration {shown} must not be negative"
        raise ValueError(msg)
    if _COMPOUND_RE.fullmatch(text) and len(_COMPOUND_TERM_RE.findall(text)) > 1:
        return _compound(text, shown)
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        msg = f"invalid duration {shown}; {_UNIT_HINT}"
        raise ValueError(msg)
    unit = match["unit"]
    if unit not in {"", *DURATION_UNITS}:
        msg = f"unknown unit {unit!r} in duration {shown}; {_UNIT_HINT}"
        raise ValueError(msg)
    digits = match["number"]
    number: int | float
    seconds: int | float
    try:
        # Integers stay exact so that "N ms" is exactly N/1000 for any integer N.
        number = int(digits) if _INTEGER_RE.fullmatch(digits) else float(digits)
        if unit == "ms":
            seconds = number / 1000
        elif unit in {"", "s"}:
            seconds = number
        else:
            seconds = number * DURATION_UNITS[unit]
        return _checked(seconds, shown)
    except OverflowError:
        msg = f"duration {shown} is too large"
        raise ValueError(msg) from None


def _compound(text: str, shown: str) -> float:
    """``"1h30m"``: integer terms whose units strictly descend, summed exactly."""
    milliseconds = 0
    last = -1
    for digits, unit in _COMPOUND_TERM_RE.findall(text):
        rank = _UNIT_ORDER.index(unit)
        if rank <= last:
            msg = (
                f"units in duration {shown} must go from largest to smallest, "
                'each once (as in "1h30m")'
            )
            raise ValueError(msg)
        last = rank
        milliseconds += int(digits) * round(DURATION_UNITS[unit] * 1000)
    try:
        return _checked(milliseconds / 1000, shown)
    except OverflowError:
        msg = f"duration {shown} is too large"
        raise ValueError(msg) from None


def _checked(seconds: int | float, shown: str) -> float:
    """Return *seconds* as a float after rejecting negative and non-finite values."""
    try:
        result = float(seconds)
    except OverflowError:
        msg = f"duration {shown} is too large"
        raise ValueError(msg) from None
    if math.isnan(result):
        msg = f"duration {shown} is not a number"
        raise ValueError(msg)
    if math.isinf(result):
        msg = f"duration {shown} is too large"
        raise ValueError(msg)
    if result < 0:
        msg = f"duration {shown} must not be negative"
        raise ValueError(msg)
    return result + 0.0  # normalises -0.0


def _show_number(value: int | float) -> str:
    """Return *value* for an error message, even when it is too long to print."""
    try:
        shown = repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits()
        return "(a very large number)"
    return shown if len(shown) <= _MAX_TEXT else "(a very large number)"
