"""Direct appends: the parser writes a line's sample straight into its window.

With thousands of series a batch brings each one a value or two, and the work a
batch does per series (the store's lookup, the window's :meth:`take`, the
batch's own dict and list) cost more than parsing the line (bench/scaling.md).
So for a series nobody judges (no levels: nothing to report as updated, no band
to check) the store gives the parser a sink under each raw key it knows the
series by, and a plain line costs a dict lookup and an append, nothing per
series per batch. A sink is an ``array('d')``: a gauge, timing, histogram or
distribution's is its window's pending samples (:meth:`RollingWindow.sink`); a
count's holds increments.

What the batch path did per series is done here in bulk instead, by visiting
the series: each that got lines since its last visit gets ``last_update`` (the
time of the latest batch: a series is at most one visit period fresher than it
is), a count's increments are added to its ``pending`` sum, and a sink grown
to :data:`SINK_FLUSH_AT` is flushed. Each batch pays for visiting the next
``lines / 16`` series, round the table (so a visit costs a few ns a line,
comes spread over the batches with its flushes, and a series is visited every
``16 x series`` lines); :meth:`DirectAppends.sync` visits them all, without
flushing, before anything reads ``last_update`` or ``pending``: the interval's
roll, expiry and the checkpoint's snapshot.

Values keep their order: a line the parser takes the long way appends to the
same sink. The store rebuilds the sinks' table whenever a series leaves or the
bands change, and turns direct appends off while a recording wants every batch.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Final, Protocol

from perfwarden.ingest.batch import MetricType, RawKey, Sink
from perfwarden.ingest.routes import Routes
from perfwarden.series.window import SINK_FLUSH_AT, RollingWindow

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DirectAppends"]

#: Types whose every value is a window sample (sets keep the batch path).
_SAMPLE_TYPES: Final = frozenset(
    {MetricType.GAUGE, MetricType.TIMING, MetricType.HISTOGRAM, MetricType.DISTRIBUTION}
)
#: Lines a series may get, on average, between two visits of the sync (a
#: visit costs ~70 ns, so a few ns a line; a sink then holds about
#: ``SINK_FLUSH_AT + 16`` values at most, on average).
_LINES_PER_VISIT: Final = 16
#: Series visited in one step at least (a step has its own overhead).
_MIN_STEP: Final = 64


class Series(Protocol):
    """What this module reads and writes of a store's series
    (:class:`perfwarden.series.store.Series`, which imports this module)."""

    key: str
    name: str
    type: MetricType
    window: RollingWindow
    band: tuple[float, float] | None
    last_update: float
    pending: float
    direct: bool
    synced_total: int


class DirectAppends:
    """The sinks the parser appends to, and their bookkeeping."""

    __slots__ = (
        "_counts",
        "_credit",
        "_cursor",
        "_entries",
        "_latest",
        "enabled",
        "routes",
        "sinks",
    )

    def __init__(self) -> None:
        #: Raw key -> the sink its lines are appended to (the same dict object
        #: for life, emptied and refilled).
        self.sinks: dict[RawKey, Sink] = {}
        #: Where the parser finds :attr:`sinks` by fields and name (registered
        #: by :meth:`add`, learned by the parser; emptied with them).
        self.routes = Routes()
        self.enabled = False
        #: Every series fed directly: (series, its window, the window's pending
        #: list) or, for a count, (series, None, its increments), all at hand
        #: for a cheap visit.
        self._entries: list[tuple[Series, RollingWindow | None, array[float]]] = []
        #: A count's increments by its canonical key (for its aliases).
        self._counts: dict[str, array[float]] = {}
        #: Where the next step of the sync starts, and lines not yet visited for.
        self._cursor = 0
        self._credit = 0
        self._latest = 0.0

    def __len__(self) -> int:
        """Series fed directly."""
        return len(self._entries)

    def add(self, raw_key: RawKey, series: Series) -> None:
        """Feed ``series`` directly under ``raw_key`` if it qualifies."""
        if not self.enabled or series.band is not None:
            return
        window: RollingWindow | None = None
        if series.type in _SAMPLE_TYPES:
            window = series.window
            sink = window.sink()
        elif series.type is MetricType.COUNT:
            sink = self._counts.setdefault(series.key, array("d"))
        else:
            return
        self.sinks[raw_key] = sink
        if series.type is not MetricType.GAUGE:  # a signed gauge may be a change
            # Its route now, not at its second line: a plain line's trailing
            # fields are its raw key's (``name|fields``).
            self.routes.add(raw_key[len(series.name) + 1 :], series.name, sink)
        if not series.direct:
            series.direct = True
            series.synced_total = series.window.total_count
            self._entries.append((series, window, sink))

    def rebuild(self, aliases: Mapping[RawKey, Series]) -> None:
        """Sync, then list again every raw key (of ``aliases``) that qualifies:
        after a series left, the bands changed or :attr:`enabled` did."""
        self.sync()
        self.sinks.clear()
        self.routes.clear()
        for series, _, _ in self._entries:
            series.direct = False
        self._entries.clear()
        self._counts.clear()
        self._cursor = 0
        for raw_key, series in aliases.items():
            self.add(raw_key, series)

    def note(self, lines: int, now: float) -> None:
        """A batch of ``lines`` accepted lines was committed at ``now``: visit
        the next few series, as many as those lines pay for, so the sync's work
        (and the flushes it makes) come spread over the batches, in proportion."""
        self._latest = now
        credit = self._credit + lines
        step = credit // _LINES_PER_VISIT
        if step < _MIN_STEP:
            self._credit = credit
            return
        entries = self._entries
        count = len(entries)
        if step >= count:  # every series once is enough
            self._credit = 0
            self._visit(entries, flush=True)
            return
        self._credit = credit - step * _LINES_PER_VISIT
        start = self._cursor
        end = start + step
        self._visit(entries[start:end], flush=True)
        if end > count:
            self._visit(entries[: end - count], flush=True)
        self._cursor = end % count

    def sync(self) -> None:
        """Visit every series now (before ``last_update`` or ``pending`` is
        read), without flushing: the readers flush what they read."""
        self._visit(self._entries, flush=False)

    def _visit(
        self,
        entries: list[tuple[Series, RollingWindow | None, array[float]]],
        *,
        flush: bool,
    ) -> None:
        """Give each series that got lines since its last visit the latest
        batch's time as ``last_update``; add up a count's increments; flush a
        sink grown long (when ``flush``)."""
        latest = self._latest
        # Attributes, no calls (a property or max() would double a visit).
        for series, window, sink in entries:
            if window is None:
                if sink:
                    series.pending += sum(sink)
                    del sink[:]
                    if series.last_update < latest:  # noqa: PLR1730 - see above
                        series.last_update = latest
                continue
            total = window.flushed + len(sink)
            if total != series.synced_total:
                series.synced_total = total
                if series.last_update < latest:  # noqa: PLR1730 - see above
                    series.last_update = latest
            if flush and len(sink) >= SINK_FLUSH_AT:
                window.flush()
