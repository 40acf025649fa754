"""Parse human-written durations ("5s", "250ms", "1m", "1h", "1.5s", 5) into seconds.

One job: turn a configuration value into a non-negative, finite ``float`` number of
seconds, or raise :class:`ValueError` with a message that a user can act on.

Accepted forms::

    5          # int or float: seconds
    "5"        # a numeric string: seconds
    "250ms"    # milliseconds
    "1.5s"     # seconds
    "2m"       # minutes
    "1h"       # hours
    "1e3ms"    # exponents are allowed in the number

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
_MAX_TEXT: Final = 64
_UNIT_HINT: Final = "use a number of seconds or a number followed by ms, s, m or h"


def parse_duration(value: str | int | float) -> float:
    """Return *value* as seconds.

    Numbers (and numeric strings without a unit) are seconds; strings may carry one of
    the units ``ms``, ``s``, ``m`` or ``h``.  Raises :class:`ValueError` for negative,
    non-finite or unparsable values and for booleans.
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
