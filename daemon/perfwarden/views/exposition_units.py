"""Base units for the exposition, as Prometheus names them.

Prometheus wants seconds and bytes, with the unit at the end of the metric's name
(``_seconds``, ``_bytes``; ratios ``_ratio``), never milliseconds or megabytes:
statsd_exporter converts a timer's milliseconds to seconds, node_exporter reports
bytes. A metric's unit is its configured ``unit:``; a metric without one that
arrives as a DogStatsD timer (``|ms``) is in milliseconds, as the type says;
anything else (``x``, a count, no unit) has no base unit and is exposed as it is.

Binary multiples: ``KB``, ``MB`` and ``GB`` are 2^10, 2^20 and 2^30 bytes, as
perfwarden's own memory metrics and ``status`` count them (and ``ps``/``free``).
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["NONE", "BaseUnit", "base_unit"]


class BaseUnit(NamedTuple):
    """The name suffix (``"seconds"``; ``""`` for none) and the factor that
    turns a value in the configured unit into the base unit."""

    suffix: str
    factor: float


#: No base unit: the value as sent, no suffix.
NONE: Final = BaseUnit("", 1.0)

_SECONDS: Final = {
    **dict.fromkeys(("ns", "nanosecond", "nanoseconds"), 1e-9),
    **dict.fromkeys(("us", "µs", "μs", "microsecond", "microseconds"), 1e-6),
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 1e-3),
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1.0),
    **dict.fromkeys(("min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hour", "hours"), 3600.0),
}
#: Looked up in lower case: ``MB``, ``MiB`` and ``mb`` are all 2^20 bytes.
_BYTES: Final = {
    **dict.fromkeys(("b", "byte", "bytes"), 1.0),
    **dict.fromkeys(("kb", "kib", "kilobytes"), 2.0**10),
    **dict.fromkeys(("mb", "mib", "megabytes"), 2.0**20),
    **dict.fromkeys(("gb", "gib", "gigabytes"), 2.0**30),
}
_RATIOS: Final = {"ratio": 1.0, "fraction": 1.0, "%": 0.01, "percent": 0.01}


def base_unit(unit: str | None, metric_type: str) -> BaseUnit:
    """The base unit of a series: from its metric's ``unit:``, else
    milliseconds for a timer (``|ms``), else none."""
    if unit is None:
        return BaseUnit("seconds", 1e-3) if metric_type == "ms" else NONE
    name = unit.strip()
    if name in _SECONDS:
        return BaseUnit("seconds", _SECONDS[name])
    if name.lower() in _BYTES:
        return BaseUnit("bytes", _BYTES[name.lower()])
    if name.lower() in _RATIOS:
        return BaseUnit("ratio", _RATIOS[name.lower()])
    return NONE
