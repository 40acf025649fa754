"""Silences: what mutes the events of a metric's series, for a while.

A silence names a metric and optionally tag matchers; a series with a key sent
twice (``#k:1,k:2``) has its values joined by commas and matches either. Expired
silences disappear when looked at. The evaluator consults :class:`Silences` before
it hands an event on (:mod:`perfwarden.alerts.evaluator`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["Silence", "Silences"]


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes the events of a metric's series (optionally only those with some tags)."""

    id: str
    metric: str
    matchers: dict[str, str]
    until: float
    created: float
    comment: str = ""

    def matches(self, metric: str, tags: dict[str, str]) -> bool:
        """Does this silence cover a series of ``metric`` with ``tags``?"""
        if metric != self.metric:
            return False
        # A key sent twice has its values joined by commas (Series.tag_dict).
        return all(
            k in tags and v in tags[k].split(",") for k, v in self.matchers.items()
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "id": self.id,
            "metric": self.metric,
            "matchers": self.matchers,
            "until": self.until,
            "created": self.created,
            "comment": self.comment,
        }


@dataclass(slots=True)
class Silences:
    """Active silences; expired ones disappear when looked at.

    ``listeners`` are told the silences in force after every addition, removal
    and restore (the recording notes them; expiry is left to ``until``).
    """

    wall: Callable[[], float] = time.time
    _items: dict[str, Silence] = field(default_factory=dict)
    listeners: list[Callable[[list[Silence]], None]] = field(default_factory=list)

    def add(
        self, metric: str, matchers: dict[str, str], duration: float, comment: str = ""
    ) -> Silence:
        """Silence ``metric`` (the series matching ``matchers``) for ``duration``."""
        now = self.wall()
        silence_id = uuid.uuid4().hex[:8]
        silence = Silence(silence_id, metric, matchers, now + duration, now, comment)
        self._items[silence.id] = silence
        self._changed()
        return silence

    def remove(self, silence_id: str) -> bool:
        """Lift a silence early; False when there is no such silence."""
        removed = self._items.pop(silence_id, None) is not None
        if removed:
            self._changed()
        return removed

    def active(self) -> list[Silence]:
        """Silences still in force (expired ones are forgotten)."""
        now = self.wall()
        for key in [k for k, s in self._items.items() if s.until <= now]:
            del self._items[key]
        return list(self._items.values())

    def restore(self, saved: Iterable[Silence]) -> None:
        """Re-install silences saved by a previous run (expired ones are skipped)."""
        now = self.wall()
        for silence in saved:
            if silence.until > now:
                self._items[silence.id] = silence
        self._changed()

    def _changed(self) -> None:
        if self.listeners:
            active = self.active()
            for listener in list(self.listeners):
                listener(active)

    def covers(self, metric: str, tags: dict[str, str]) -> bool:
        """Is a series of ``metric`` with ``tags`` silenced now?"""
        if not self._items:  # the common case, asked once per transition
            return False
        return any(s.matches(metric, tags) for s in self.active())
