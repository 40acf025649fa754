"""Each metric's band: the values past which a batch is judged at once.

The store checks the ``min``/``max`` of each judged series' new values against its
band, so a crossing does not wait for the evaluation's coalescing
(:mod:`perfwarden.alerts.pacing`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from perfwarden.config.model import Bound

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.config.model import Config
    from perfwarden.series.store import Band

__all__ = ["bands_of"]


def bands_of(config: Config) -> Callable[[str], Band | None]:
    """The store's band per metric name: None without levels; else values past
    the first level met (warning, or critical alone) make a batch urgent."""
    metrics = config.metrics

    def band(name: str) -> Band | None:
        metric = metrics.get(name)
        if metric is None or not metric.has_levels:
            return None
        levels = [v for v in (metric.warning, metric.critical) if v is not None]
        if metric.bound is Bound.UPPER:
            return (-math.inf, min(levels))
        return (max(levels), math.inf)

    return band
