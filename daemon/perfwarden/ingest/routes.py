"""Routes: where the parser sends a plain sample line in one lookup.

The parser's fast path finds a line's raw key from its trailing fields and metric
name, and then (for a series fed directly, :mod:`perfwarden.series.direct`) the
sink to append to from the raw key: two lookups in tables of thousands, each a
likely cache miss. :class:`Routes` holds the result, trailing fields -> name ->
sink, so such a line takes one: the store registers a series' route when it gives
the series' sink (not a gauge's, whose signed values may be changes), and the
parser learns the others at a key's first line found through its raw key.

A route is only as valid as what it was learned from. The parser empties the
table when its own cache is emptied for a new reading of lines (tag limits, the
gauge reading: :attr:`Routes.epoch`); the owner of the sinks empties it whenever
they change. The table is bounded like the parser's cache: trailing fields are
the sender's to vary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from perfwarden.ingest.batch import Sink

__all__ = ["MAX_ROUTES", "Routes"]

#: Routes held at most (then the table starts over).
MAX_ROUTES: Final = 16384


class Routes:
    """Trailing fields -> metric name -> the sink its plain samples go to."""

    __slots__ = ("entries", "epoch", "table")

    def __init__(self) -> None:
        self.table: dict[str, dict[str, Sink]] = {}
        self.entries = 0
        #: The parser's reading the routes were learned under.
        self.epoch = 0

    def clear(self) -> None:
        """Forget every route."""
        self.table.clear()
        self.entries = 0

    def add(self, fields: str, name: str, target: Sink) -> None:
        """Send lines of ``name`` with these trailing fields to ``target``."""
        if self.entries >= MAX_ROUTES:
            self.clear()
        names = self.table.get(fields)
        if names is None:
            names = self.table[fields] = {}
        names[name] = target
        self.entries += 1
