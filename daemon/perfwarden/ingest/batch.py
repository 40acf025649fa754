"""The line format's vocabulary and the parser's output: metric types, raw series
keys, and a :class:`Batch` of parsed samples with its per-reason line counts.

:mod:`perfwarden.ingest.statsd` fills batches (and re-exports these names); the store
takes them (:mod:`perfwarden.series.store`), the recording writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from array import array

__all__ = ["Batch", "MetricType", "RawKey", "Sink"]


class MetricType(StrEnum):
    """The DogStatsD metric types perfwarden understands."""

    GAUGE = "g"
    COUNT = "c"
    TIMING = "ms"
    HISTOGRAM = "h"
    DISTRIBUTION = "d"
    SET = "s"


#: A raw series key: ``"name|type"`` or ``"name|type|#tags"`` with tags as sent.
RawKey = str

#: Where the parser appends a series' plain samples itself, by raw key: its
#: window's pending samples or a count's increments (:mod:`perfwarden.series.direct`).
Sink: TypeAlias = "array[float]"


@dataclass(slots=True)
class Batch:
    """Samples and counts parsed from one or more datagrams, ready for the store.

    ``values`` holds float samples (and count increments, already divided by their
    sample rate) per raw key; ``members`` holds set members per raw key. ``lines``
    counts the accepted lines per raw key where it differs from the number of values
    (multi-value lines), so that dropping a whole key can account lines exactly.
    """

    received: int = 0
    accepted: int = 0
    ignored: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    values: dict[RawKey, list[float]] = field(default_factory=dict)
    members: dict[RawKey, list[str]] = field(default_factory=dict)
    extra_values: dict[RawKey, int] = field(default_factory=dict)
    #: Samples of lines with a ``|T`` field: ``(unix seconds, value)`` per raw key.
    stamped: dict[RawKey, list[tuple[int, float]]] = field(default_factory=dict)
    #: Lines whose stamp lay outside :attr:`stamp_bounds`, per reason (not accepted).
    skewed: dict[str, int] = field(default_factory=dict)
    #: ``(earliest, latest)`` stamps accepted, unix seconds; ``None``: any.
    stamp_bounds: tuple[float, float] | None = None
    #: Gauge deltas that came before any value of their key in this batch; the
    #: store adds them to the series' latest value (``gauge_deltas`` mode only).
    gauge_deltas: dict[RawKey, float] = field(default_factory=dict)
    #: The first malformed line seen (reason, excerpt), for rate-limited logging.
    example: tuple[str, str] | None = None

    @property
    def malformed_total(self) -> int:
        """Lines counted as malformed, all reasons together."""
        return sum(self.malformed.values())

    def lines_for(self, key: RawKey) -> int:
        """How many accepted lines carried samples for ``key``."""
        count = (
            len(self.values.get(key, ()))
            + len(self.members.get(key, ()))
            + len(self.stamped.get(key, ()))
        )
        return count - self.extra_values.get(key, 0)

    def clear(self) -> None:
        """Forget everything, keeping the object for reuse."""
        self.received = self.accepted = self.ignored = 0
        self.malformed.clear()
        self.values.clear()
        self.members.clear()
        self.extra_values.clear()
        self.stamped.clear()
        self.skewed.clear()
        self.gauge_deltas.clear()
        self.example = None
