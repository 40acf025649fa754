"""Which processes match a ``name``, ``cmdline`` or ``unit`` entry, remembered
between scans.

Reading every process's name, command line or cgroup at every scan costs in
proportion to the host, not to what is sampled. :class:`MatchMemory` keeps, per
pid, whether the process matched and a digest of the bytes that decision read. A
scan lists the pids with their identity tokens (one directory read,
:meth:`~perfwarden.sampling.process_source.ProcessSource.identities`) and reads only:

* the pids it has not seen, and those now held by another process (a reused pid
  comes with another token), so a process that starts is found at the next scan
  and an exited one is forgotten there; each again at the scan after, for a
  process listed between its fork and its ``exec`` (with its parent's name and
  command line until then);
* a rolling share of the others, each again within :data:`RECHECK_EVERY` seconds,
  for a process that changes its name, command line or cgroup while it keeps its
  pid (``exec`` without a fork, ``setproctitle``, a child that runs ``exec`` only
  after a while, a move to another cgroup).

Only when those bytes differ from what was judged is the process judged again
(for a name or command line through psutil, so the rules of matching are psutil's
names and command lines as before). Runs in the sampler's worker thread; one memory
per entry, touched by one scan at a time.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.sampling.process_source import MatchField, ProcessSource

__all__ = ["RECHECK_EVERY", "MatchMemory"]

#: Seconds within which a remembered process is read again: one that renames itself,
#: runs ``exec`` or moves to another cgroup under its pid is matched (or no longer)
#: within this time.
RECHECK_EVERY: Final = 10.0


class MatchMemory:
    """Remembers which pids matched, and reads only new pids and a rolling share.

    ``matches(source, pid, raw)`` decides on a process from the bytes of ``field``
    just read (``raw``), asking ``source`` for more if it needs; ``interval`` is
    the entry's scan interval (seconds), which sets the share read again per scan.
    """

    def __init__(
        self,
        field: MatchField,
        matches: Callable[[ProcessSource, int, bytes], bool],
        interval: float,
    ) -> None:
        self._field: MatchField = field
        self._matches = matches
        self._recheck_share = min(1.0, interval / RECHECK_EVERY)
        self._identities: dict[int, int] = {}
        # pid -> digest of the bytes judged; the least recently read first.
        self._digests: OrderedDict[int, int] = OrderedDict()
        self._matched: set[int] = set()
        self._new: list[int] = []  # pids new at the latest scan
        #: Processes judged, on new bytes (for tests and benchmarks).
        self.judged = 0
        #: Processes whose match bytes were read.
        self.read = 0

    def matching_pids(self, source: ProcessSource) -> list[int]:
        """The pids matching now, in order; reads what may have changed."""
        identities = source.identities()
        previous = self._identities
        for pid in previous.keys() - identities.keys():
            self._forget(pid)
        self._identities = identities
        # New at the previous scan: a second look, for a process listed between its
        # fork and its exec (then it still had its parent's name and command line).
        second_look = [pid for pid in self._new if pid in self._digests]
        self._new = [pid for pid, _ in identities.items() - previous.items()]
        for pid in self._new:
            self._digests.pop(pid, None)  # another process now: judge it afresh
        for pid in itertools.chain(second_look, self._new):
            self._read(source, pid)
        stale = len(self._digests) - len(second_look) - len(self._new)
        budget = min(math.ceil(len(self._digests) * self._recheck_share), stale)
        for pid in list(itertools.islice(self._digests, max(budget, 0))):
            self._read(source, pid)
        return sorted(self._matched)

    def _read(self, source: ProcessSource, pid: int) -> None:
        try:
            self.read += 1
            raw = source.match_bytes(pid, self._field)
            digest = hash(raw)
            if self._digests.get(pid) != digest:
                self.judged += 1
                if self._matches(source, pid, raw):
                    self._matched.add(pid)
                else:
                    self._matched.discard(pid)
        except (psutil.Error, OSError):
            # Gone since the listing (or unreadable this once): should the next
            # listing still show it, it is new to us then.
            self._forget(pid)
            self._identities.pop(pid, None)
            return
        self._digests[pid] = digest
        self._digests.move_to_end(pid)

    def _forget(self, pid: int) -> None:
        self._digests.pop(pid, None)
        self._matched.discard(pid)
