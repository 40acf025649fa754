"""Direct appends: the parser writes a line's sample straight into its window.

With thousands of series a batch brings each one a value or two, and the work a
batch does per series (the store's lookup, the window's :meth:`take`, the
batch's own dict and list) cost more than parsing the line (bench/scaling.md).
So for a series nobody judges (no levels: nothing to report as updated, no band
to check) the store gives the parser a list under each raw key it knows the
series by, and a plain line costs a dict lookup and a list append, nothing per
series per batch. A gauge, timing, histogram or distribution's list is its
window's pending list (:meth:`RollingWindow.sink`); a count's holds increments.

What the batch path did per series is done here in bulk instead, at a
:meth:`DirectAppends.sync`: each series that got lines since the last one gets
``last_update`` (the time of the latest batch: a series is at most one sync
period fresher than it is), a pending list grown long is flushed, and a count's
increments are added to its ``pending`` sum. The store syncs after every
``16 x series`` lines (so a sync costs a few ns a line and the lists stay short),
and before anything reads ``last_update`` or ``pending``: the interval's roll,
expiry and the checkpoint's snapshot.

Values keep their order: a line the parser takes the long way appends to the
same list. The store rebuilds the lists' table whenever a series leaves or the
bands change, and turns direct appends off while a recording wants every batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from perfwarden.ingest.batch import MetricType, RawKey
from perfwarden.series.window import FLUSH_AT, RollingWindow

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DirectAppends"]

#: Types whose every value is a window sample (sets keep the batch path).
_SAMPLE_TYPES: Final = frozenset(
    {MetricType.GAUGE, MetricType.TIMING, MetricType.HISTOGRAM, MetricType.DISTRIBUTION}
)
#: Lines between syncs, per series fed directly (and at least this many).
_LINES_PER_SERIES: Final = 16
_MIN_LINES: Final = 1024


class Series(Protocol):
    """What this module reads and writes of a store's series
    (:class:`perfwarden.series.store.Series`, which imports this module)."""

    key: str
    type: MetricType
    window: RollingWindow
    band: tuple[float, float] | None
    last_update: float
    pending: float
    direct: bool
    synced_total: int


class DirectAppends:
    """The pending lists the parser appends to, and their bookkeeping."""

    __slots__ = ("_counts", "_latest", "_lines", "_series", "enabled", "sinks")

    def __init__(self) -> None:
        #: Raw key -> the pending list of its series' window (what the parser
        #: appends to; the same dict object for life, emptied and refilled).
        self.sinks: dict[RawKey, list[float]] = {}
        self.enabled = False
        #: Sample series fed directly: canonical key -> (series, its window,
        #: the window's pending list), all three at hand for a cheap sync.
        self._series: dict[str, tuple[Series, RollingWindow, list[float]]] = {}
        #: Count series fed directly, with their increments since the last sync.
        self._counts: dict[str, tuple[Series, list[float]]] = {}
        self._lines = 0
        self._latest = 0.0

    def __len__(self) -> int:
        """Series fed directly."""
        return len(self._series) + len(self._counts)

    def add(self, raw_key: RawKey, series: Series) -> None:
        """Feed ``series`` directly under ``raw_key`` if it qualifies."""
        if not self.enabled or series.band is not None:
            return
        if series.type in _SAMPLE_TYPES:
            window = series.window
            sink = window.sink()
            self.sinks[raw_key] = sink
            if not series.direct:
                series.direct = True
                series.synced_total = window.total_count
                self._series[series.key] = (series, window, sink)
        elif series.type is MetricType.COUNT:
            held = self._counts.get(series.key)
            if held is None:
                held = self._counts[series.key] = (series, [])
            self.sinks[raw_key] = held[1]

    def rebuild(self, aliases: Mapping[RawKey, Series]) -> None:
        """Sync, then list again every raw key (of ``aliases``) that qualifies:
        after a series left, the bands changed or :attr:`enabled` did."""
        self.sync()
        self.sinks.clear()
        for series, _, _ in self._series.values():
            series.direct = False
        self._series.clear()
        self._counts.clear()
        for raw_key, series in aliases.items():
            self.add(raw_key, series)

    def note(self, lines: int, now: float) -> None:
        """A batch of ``lines`` accepted lines was committed at ``now``."""
        self._latest = now
        self._lines += lines
        if self._lines >= max(_MIN_LINES, _LINES_PER_SERIES * len(self)):
            self.sync()

    def sync(self) -> None:
        """Give every series that got lines since the last sync the latest
        batch's time as ``last_update``; bound its pending list, or add up its
        increments."""
        self._lines = 0
        latest = self._latest
        for series, increments in self._counts.values():
            if increments:
                series.pending += sum(increments)
                increments.clear()
                series.last_update = max(series.last_update, latest)
        # Per series at every sync: attributes, no calls (a property or max()
        # would double what a sync costs).
        for series, window, sink in self._series.values():
            total = window.flushed + len(sink)
            if total != series.synced_total:
                series.synced_total = total
                if series.last_update < latest:  # noqa: PLR1730 - see above
                    series.last_update = latest
                if len(sink) >= FLUSH_AT:
                    window.flush()
