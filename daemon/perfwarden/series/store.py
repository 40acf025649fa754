"""The metric store: one rolling window per series, fed in batches from the parser.

A *series* is a metric name, its DogStatsD type and its sorted, de-duplicated tags;
``name|type|#tags`` is its canonical key. Raw keys as they arrive (tags in the
sender's order) are resolved to series once and then cached, so the hot path is a
dict lookup and one window append per series per batch; for series nobody judges
the parser appends to the window itself (:mod:`perfwarden.series.direct`).

Gauges, timings, histograms and distributions append every value to the window.
Counts accumulate until the end of each evaluation interval, when their rate (per
second) becomes one sample; sets count their distinct members the same way.

The number of series is capped: a line for a new series beyond the cap is dropped and
counted, so a flood of random names cannot grow memory without bound; while
:attr:`MetricStore.shedding` is set (the daemon's memory is past its ceiling) lines
for new series are dropped the same way, counted apart. Set members are bounded per
series and, in bytes, for all set series together in each interval. A series that
received nothing for its ``expire_after`` is forgotten (:meth:`MetricStore.expire`),
so series that come and go (a ``pid`` tag, a pod name) do not hold their slots for ever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from perfwarden.ingest.statsd import Batch, MetricType, RawKey, split_raw_key
from perfwarden.series.direct import DirectAppends
from perfwarden.series.window import RollingWindow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from perfwarden.ingest.batch import Sink
    from perfwarden.ingest.routes import Routes

__all__ = ["Band", "MetricStore", "Series", "canonical_tags"]

#: ``(low, high)``: values at or below ``low`` or at or above ``high`` are urgent.
Band = tuple[float, float]
_NEVER_URGENT: Final[Band] = (-math.inf, math.inf)

#: Distinct members a set series remembers per interval; more are not counted.
MAX_SET_MEMBERS: Final = 65536
#: Bytes of set members remembered per interval, all set series together.
MAX_SET_BYTES: Final = 16 << 20
#: What one remembered member costs beyond its text (str object, set slot).
SET_MEMBER_OVERHEAD: Final = 64
_MAX_ALIASES_PER_SERIES: Final = 4
#: A raw key's type field -> its MetricType (cheaper than ``MetricType(value)``).
_TYPES: Final = {member.value: member for member in MetricType}


def canonical_tags(raw: str) -> tuple[str, ...]:
    """Sorted, de-duplicated tags from a raw ``a:1,b:2`` string (empty tags dropped)."""
    if not raw:
        return ()
    if "," not in raw:
        return (raw,)
    return tuple(sorted({tag for tag in raw.split(",") if tag}))


def _split_tag(tag: str) -> tuple[str, str, str]:
    return tag.partition(":")


@dataclass(slots=True, eq=False)
class Series:
    """One metric name + type + tag set, with its rolling window."""

    key: str
    name: str
    type: MetricType
    tags: tuple[str, ...]
    window: RollingWindow
    #: Monotonic time of the last sample (or count/set line) received.
    last_update: float = 0.0
    #: Count increments or set members received since the last interval roll (a
    #: set series' members: None until its first, as most series are no sets).
    pending: float = 0.0
    members: set[str] | None = None
    #: ``(low, high)`` when the evaluator judges this series (its metric has
    #: levels), else None; only judged series are reported as updated, and a
    #: value at or beyond either edge makes its batch urgent
    #: (:meth:`MetricStore.take_urgent`).
    band: Band | None = (-math.inf, math.inf)
    #: Does the parser append to this series' window directly, and the window's
    #: ``total_count`` at the last sync of those appends
    #: (:mod:`perfwarden.series.direct`)?
    direct: bool = False
    synced_total: int = 0

    @property
    def judged(self) -> bool:
        """Does the evaluator judge this series?"""
        return self.band is not None

    @property
    def label(self) -> str:
        """How user text names the series: ``metric{k=v,...}`` (no type suffix)."""
        if not self.tags:
            return self.name
        pairs = (f"{k}={v}" if sep else k for k, sep, v in map(_split_tag, self.tags))
        return f"{self.name}{{{','.join(pairs)}}}"

    @property
    def tag_dict(self) -> dict[str, str]:
        """Tags as a mapping; a bare tag ``foo`` maps to ``""``.

        A key sent more than once (``#k:1,k:2``, as DogStatsD allows) maps to its
        values joined by commas in sorted order (``"1,2"``): a tag value cannot hold
        a comma on the wire, so nothing is lost or made ambiguous.
        """
        out: dict[str, str] = {}
        for tag in self.tags:
            k, _, v = tag.partition(":")
            out[k] = f"{out[k]},{v}" if k in out else v
        return out


class MetricStore:
    """All series, their windows, and the drop accounting of the series cap."""

    def __init__(
        self,
        window_for: Callable[[str], int],
        max_series: int,
        band: Callable[[str], Band | None] = lambda name: _NEVER_URGENT,
    ) -> None:
        """``band(name)``: the band of a metric's series (None: not judged)."""
        self._window_for = window_for
        self._max_series = max_series
        self._band = band
        self._urgent = False
        self._series: dict[str, Series] = {}
        self._aliases: dict[RawKey, Series] = {}
        self._by_name: dict[str, list[Series]] = {}
        #: Judged series appended to since the last call to :meth:`take_updated`.
        self._updated: set[Series] = set()
        #: Lines dropped because the series cap was reached.
        self.dropped_lines = 0
        #: While True, lines for new series are dropped (counted in shed_lines).
        self.shedding = False
        #: Lines dropped because they would have started a series while shedding.
        self.shed_lines = 0
        #: Set members not counted because of the member or byte limits.
        self.set_overflow = 0
        #: Told of every batch before it is taken (the recording), with the
        #: arguments of :meth:`ingest`; returns True when it kept (or replaced)
        #: any of the batch's value lists, which the windows must then not take.
        self.on_ingest: Callable[[Batch, float, float], bool] | None = None
        self.max_set_members = MAX_SET_MEMBERS
        self.max_set_bytes = MAX_SET_BYTES
        self._set_bytes_left = MAX_SET_BYTES
        self._direct = DirectAppends()

    @property
    def sinks(self) -> dict[RawKey, Sink]:
        """Raw key -> where the parser appends the key's plain samples
        (:mod:`perfwarden.series.direct`; empty unless :meth:`set_direct`)."""
        return self._direct.sinks

    @property
    def routes(self) -> Routes:
        """Where the parser remembers :attr:`sinks` (emptied with them)."""
        return self._direct.routes

    def set_direct(self, enabled: bool) -> None:
        """Turn direct appends on (the daemon) or off (while a recording wants
        every batch whole; the default, for replays and tests of batches)."""
        if enabled != self._direct.enabled:
            self._direct.enabled = enabled
            self._direct.rebuild(self._aliases)

    def sync_direct(self) -> None:
        """Bring ``last_update`` of the series fed directly up to date."""
        self._direct.sync()

    def __len__(self) -> int:
        return len(self._series)

    def __iter__(self) -> Iterator[Series]:
        return iter(self._series.values())

    def get(self, key: str) -> Series | None:
        """The series with this canonical key, if any."""
        return self._series.get(key)

    def by_name(self, name: str) -> list[Series]:
        """Every series of one metric name (all types and tag sets)."""
        return list(self._by_name.get(name, ()))

    def names(self) -> list[str]:
        """Metric names that have at least one series, in first-seen order."""
        return list(self._by_name)

    def take_urgent(self) -> bool:
        """Did a value at or beyond its series' band arrive since the previous
        call (and reset)? Such a batch is judged at once, not coalesced."""
        urgent, self._urgent = self._urgent, False
        return urgent

    def take_updated(self) -> set[Series]:
        """Judged series that received samples since the previous call (and reset)."""
        updated, self._updated = self._updated, set()
        return updated

    def ingest(
        self,
        batch: Batch,
        now: float,
        stamp_offset: float = 0.0,
        *,
        owned: bool = False,
    ) -> None:
        """Append a parsed batch to the windows; account lines the cap drops.

        ``now`` is the arrival time on the store's clock; a stamped sample (``|T``)
        counts at its own time, ``stamp + stamp_offset`` on that clock (never later
        than ``now``), so a late line does not refresh its series' ``last_update``
        beyond its own time. ``owned``: the caller gives the batch's value lists
        up (the ingestor, which clears its batch after), lists the parser filled
        (so checked values, see :func:`perfwarden.ingest.statsd.parse`): unless
        :attr:`on_ingest` kept them too (a recording that notes them), a window
        takes such a list as it is, without a second check (and without a copy
        when it can).

        Per series this is a dict lookup and a list append (the window writes its
        numpy buffer in bulk later): with thousands of series a batch brings each
        only a value or two, so anything heavier here is paid per line.
        """
        if self.on_ingest is not None and self.on_ingest(batch, now, stamp_offset):
            owned = False
        if batch.gauge_deltas:
            self._ingest_deltas(batch, now)
        aliases = self._aliases
        count = MetricType.COUNT
        judged: list[tuple[Series, list[float]]] = []
        for key, values in batch.values.items():
            series = aliases.get(key)
            if series is None:
                series = self._resolve(key)
                if series is None:
                    self._count_dropped(batch.lines_for(key))
                    continue
            series.last_update = now
            if series.type is count:
                series.pending += sum(values)
                continue
            if owned:
                series.window.take(values)
            else:
                series.window.extend(values)
            if series.band is not None:
                judged.append((series, values))
            elif series.direct:  # last_update is now: not the next sync's business
                series.synced_total = series.window.total_count
        if judged:
            self._note_updated(judged)
        if batch.members:
            self._ingest_members(batch, now)
        if batch.stamped:
            self._ingest_stamped(batch, now, stamp_offset)
        if self._direct.sinks and batch.accepted:
            self._direct.note(batch.accepted, now)

    def _ingest_deltas(self, batch: Batch, now: float) -> None:
        """Signed gauge changes, before the batch's values (they came first)."""
        for key, delta in batch.gauge_deltas.items():
            series = self._resolve(key)
            if series is None:
                if key not in batch.values:  # else counted with the values
                    self._count_dropped(batch.lines_for(key))
                continue
            window = series.window
            latest = float(window.tail(1)[0]) if len(window) else 0.0
            window.extend([latest + delta])
            self._note_updated([(series, [latest + delta])])
            series.last_update = now
            series.synced_total = window.total_count

    def _note_updated(self, judged: list[tuple[Series, list[float]]]) -> None:
        """Report series as updated with these values (the values path passes the
        judged ones; stamped lines and gauge changes any); a value at or past a
        band's edge makes the batch urgent. Read after the windows took the
        lists: a list given to a window may have grown since by the values of
        another raw key of the same series (tags in another order), values of
        this batch too."""
        updated = self._updated
        urgent = self._urgent
        for series, values in judged:
            updated.add(series)
            band = series.band
            if not urgent and band is not None:
                urgent = min(values) <= band[0] or max(values) >= band[1]
        self._urgent = urgent

    def _ingest_members(self, batch: Batch, now: float) -> None:
        for key, members in batch.members.items():
            series = self._resolve(key)
            if series is None:
                self._count_dropped(batch.lines_for(key))
                continue
            held = series.members
            if held is None:
                held = series.members = set()
            self._add_members(held, members)
            series.last_update = now

    def _ingest_stamped(self, batch: Batch, now: float, stamp_offset: float) -> None:
        for key, pairs in batch.stamped.items():
            series = self._resolve(key)
            if series is None:
                if key not in batch.values:  # else counted with them
                    self._count_dropped(batch.lines_for(key))
                continue
            values = [value for _, value in pairs]
            if series.type is MetricType.COUNT:
                series.pending += sum(values)
            else:
                window = series.window
                if series.direct and series.synced_total != window.total_count:
                    series.last_update = now  # lines the parser fed it since the sync
                window.extend(values)
                series.synced_total = window.total_count
                self._note_updated([(series, values)])
            newest = min(now, max(stamp for stamp, _ in pairs) + stamp_offset)
            series.last_update = max(series.last_update, newest)

    def _count_dropped(self, lines: int) -> None:
        if self.shedding:
            self.shed_lines += lines
        else:
            self.dropped_lines += lines

    def _add_members(self, held: set[str], members: list[str]) -> None:
        """Remember new members within the per-series and per-interval byte limits."""
        left = self._set_bytes_left
        limit = self.max_set_members
        overflow = 0
        for member in members:
            if member in held:
                continue
            cost = len(member) + SET_MEMBER_OVERHEAD
            if cost > left or len(held) >= limit:
                overflow += 1
                continue
            held.add(member)
            left -= cost
        self._set_bytes_left = left
        self.set_overflow += overflow

    def roll_interval(self, interval: float) -> None:
        """Turn each count's sum into a rate sample and each set into a distinct count.

        Called once per evaluation interval (``interval`` seconds). A count series
        that received nothing gets a zero rate, as statsd flushes counters. The
        pending samples of windows that went quiet go to their buffers here too,
        so that a series that stopped holds its samples compactly, not in a list.
        """
        self._direct.sync()
        for series in self._series.values():
            series.window.settle()
            if series.type is MetricType.COUNT:
                series.window.append(series.pending / interval)
                series.pending = 0.0
            elif series.type is MetricType.SET:
                series.window.append(float(len(series.members or ())))
                series.members = None
            else:
                continue
            if series.band is not None:
                self._updated.add(series)
        self._set_bytes_left = self.max_set_bytes

    def set_limits(self, max_members: int, max_bytes: int) -> None:
        """Bound set members: per series, and in bytes for all sets per interval."""
        self._set_bytes_left += max_bytes - self.max_set_bytes
        self.max_set_members = max_members
        self.max_set_bytes = max_bytes

    def reconfigure(
        self,
        window_for: Callable[[str], int],
        max_series: int,
        band: Callable[[str], Band | None] | None = None,
    ) -> None:
        """Apply new window sizes (keeping the newest samples), a new series cap
        and (when given) new bands."""
        self._window_for = window_for
        self._max_series = max_series
        if band is not None:
            self._band = band
        for series in self._series.values():
            series.band = self._band(series.name)
            capacity = window_for(series.name)
            if capacity != series.window.capacity:
                series.window.resize(capacity)
        self._direct.rebuild(self._aliases)

    def drop_names(self, keep: Callable[[str], bool]) -> list[str]:
        """Forget every series whose name ``keep`` rejects; return those names."""
        dropped = [name for name in self._by_name if not keep(name)]
        self._remove([s for name in dropped for s in self._by_name[name]])
        return dropped

    def expire(
        self, now: float, expire_after: Callable[[str], float]
    ) -> list[tuple[Series, float]]:
        """Forget every series idle for longer than ``expire_after(name)`` seconds.

        Idle is ``now - last_update`` (the last sample, count or set line); a limit
        of ``0`` (or less) means never. Returns the forgotten series with their idle
        seconds, longest idle first; their slots under the series cap are free at
        once, and a later line for the same key starts a new, empty series. A series
        whose last update is unknown (``last_update == 0``) starts its idle time now.
        """
        self._direct.sync()
        limits: dict[str, float] = {}
        expired: list[tuple[Series, float]] = []
        for series in self._series.values():
            last = series.last_update
            if not last:
                series.last_update = now
                continue
            name = series.name
            limit = limits.get(name)
            if limit is None:
                limit = limits[name] = expire_after(name)
            if limit > 0 and now - last > limit:
                expired.append((series, now - last))
        if expired:
            expired.sort(key=lambda pair: pair[1], reverse=True)
            self._remove([series for series, _ in expired])
        return expired

    def _remove(self, gone: list[Series]) -> None:
        """Take series out of every index (the cap counts only what is left)."""
        if not gone:
            return
        removed = set(gone)
        for series in gone:
            del self._series[series.key]
        self._updated -= removed
        for name in {series.name for series in gone}:
            kept = [s for s in self._by_name[name] if s not in removed]
            if kept:
                self._by_name[name] = kept
            else:
                del self._by_name[name]
        series_of = self._series.get
        self._aliases = {
            raw: s for raw, s in self._aliases.items() if series_of(s.key) is s
        }
        self._direct.rebuild(self._aliases)

    def restore(self, series: Series) -> bool:
        """Add a series saved by a previous run (state restore, before ingest).

        Its window is resized to the configured capacity; False (nothing added)
        when the key is already present or the series cap is reached.
        """
        if series.key in self._series or len(self._series) >= self._max_series:
            return False
        capacity = self._window_for(series.name)
        if capacity != series.window.capacity:
            series.window.resize(capacity)
        series.band = self._band(series.name)
        self._series[series.key] = series
        self._by_name.setdefault(series.name, []).append(series)
        return True

    def _resolve(self, raw_key: RawKey) -> Series | None:
        series = self._aliases.get(raw_key)
        if series is not None:
            return series
        name, type_, raw_tags = split_raw_key(raw_key)
        tags: tuple[str, ...] = ()
        if len(raw_key) == len(name) + len(type_) + 1:  # no tags: it is the key
            key = raw_key
        else:
            tags = canonical_tags(raw_tags)
            key = f"{name}|{type_}|#{','.join(tags)}" if tags else f"{name}|{type_}"
        series = self._series.get(key)
        if series is None:
            if self.shedding or len(self._series) >= self._max_series:
                return None
            window = RollingWindow(self._window_for(name))
            band = self._band(name)
            series = Series(key, name, _TYPES[type_], tags, window, band=band)
            self._series[key] = series
            self._by_name.setdefault(name, []).append(series)
        # Tag permutations of one series are bounded so a hostile sender cannot grow
        # the alias table without bound; beyond that, lookups canonicalise again.
        if len(self._aliases) < _MAX_ALIASES_PER_SERIES * max(len(self._series), 1):
            self._aliases[raw_key] = series
            self._direct.add(raw_key, series)
        return series
