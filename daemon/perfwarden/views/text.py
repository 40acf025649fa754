"""How numbers read in text for people: the CLI's tables and ``perfwarden top``."""

from __future__ import annotations

import math

__all__ = ["format_number"]


def format_number(value: float | None, digits: int = 4) -> str:
    """A compact human form of a number; ``-`` for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.{digits}g}"
