"""The value checks that configuration readers apply, as plain functions.

One job: say whether a value is acceptable, without knowing where it came from.
The type predicates (``is_number``, ``is_int``, ``is_bool``, ``is_str``,
``is_duration``) tell :meth:`~perfwarden.config.nodes.Checker.typed` which scalars a
reader takes; the range checks (``positive``, ``at_least(n)``, ``name_problem``,
``regex`` ...) are :data:`Check` s: each returns what is wrong with a value, or None
when it is fine, and the reader records that message with the value's line.

Internal to the configuration modules, which import these names from
:mod:`perfwarden.config.nodes`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, TypeAlias, TypeVar

__all__ = [
    "Check",
    "at_least",
    "is_bool",
    "is_duration",
    "is_int",
    "is_number",
    "is_str",
    "name_problem",
    "non_empty",
    "non_negative",
    "open_unit",
    "or_default",
    "positive",
    "regex",
    "tag_key",
]

#: Characters that cannot appear in a DogStatsD metric name or tag key.
_UNSAFE_NAME: Final = re.compile(r"[:|@#,\s]")

_T = TypeVar("_T")
#: A range check: returns what is wrong with a value, or None when it is fine.
Check: TypeAlias = Callable[[_T], str | None]


def is_number(value: object) -> bool:
    """Whether *value* is an int or float (a bool is not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: object) -> bool:
    """Whether *value* is an int (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_bool(value: object) -> bool:
    """Whether *value* is a bool."""
    return isinstance(value, bool)


def is_str(value: object) -> bool:
    """Whether *value* is a string."""
    return isinstance(value, str)


def is_duration(value: object) -> bool:
    """Whether *value* may be given to :func:`parse_duration`."""
    return isinstance(value, str) or is_number(value)


# -- range checks: each returns what is wrong with a value, or None ------------------


def at_least(minimum: int) -> Check[int]:
    """A check that an integer is at least *minimum*."""
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def open_unit(value: float) -> str | None:
    """Check that *value* lies strictly between 0 and 1."""
    return None if 0 < value < 1 else "must be between 0 and 1 (exclusive)"


def positive(value: float) -> str | None:
    """Check that *value* is greater than 0."""
    return None if value > 0 else "must be greater than 0"


def non_negative(value: float) -> str | None:
    """Check that *value* is not negative."""
    return None if value >= 0 else "must not be negative"


def non_empty(value: str) -> str | None:
    """Check that a string is not empty."""
    return None if value else "must not be empty"


def name_problem(value: str) -> str | None:
    """Check that *value* is a DogStatsD-safe name: non-empty, no ``:|@#,`` or space."""
    if not value:
        return "name must not be empty"
    if _UNSAFE_NAME.search(value):
        return "name must not contain whitespace or any of : | @ # ,"
    return None


def tag_key(value: str) -> str | None:
    """Check that *value* can be a DogStatsD tag key."""
    problem = name_problem(value)
    return None if problem is None else problem.replace("name", "tag key", 1)


def regex(value: str) -> str | None:
    """Check that *value* is a non-empty, valid regular expression."""
    if not value:
        return "must not be empty"
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return None


def or_default(value: _T | None, default: _T) -> _T:
    """*value*, or *default* when it is None."""
    return default if value is None else value
