"""The closed sets of values some config keys take, as string enums.

Each member's value is what the YAML writes. :mod:`perfwarden.config.model` uses
them in its records and re-exports them.
"""

from __future__ import annotations

import enum

__all__ = [
    "Basis",
    "Bound",
    "Isolation",
    "LogLevel",
    "MetricsAccess",
    "OptimizerMode",
    "SignedGauges",
]


class Bound(enum.StrEnum):
    """Which side of a threshold is bad for a metric."""

    #: Lower is better: the value must stay *below* its thresholds (latency, memory).
    UPPER = "upper"
    #: Higher is better: the value must stay *above* its thresholds (quality, speedup).
    LOWER = "lower"


class SignedGauges(enum.StrEnum):
    """How a gauge value written with a sign (``+3``, ``-5``) is read."""

    #: DogStatsD's reading: ``-5`` is the value -5 (the default).
    ABSOLUTE = "absolute"
    #: Etsy statsd's reading: ``+3`` / ``-5`` change the series' current value.
    DELTA = "delta"


class Basis(enum.StrEnum):
    """What is compared with a metric's thresholds when alerts are evaluated."""

    #: Each sample on its own (the seed's per-value check).
    SAMPLE = "sample"
    #: The mean of the window.
    MEAN = "mean"
    #: The whole confidence interval of the mean must lie beyond the threshold.
    CI = "ci"
    #: A short and a long window at once, each gated by its interval; either fires.
    MULTIWINDOW = "multiwindow"


class OptimizerMode(enum.StrEnum):
    """Whether the optimizer applies what it chooses."""

    ACTIVE = "active"
    DRY_RUN = "dry-run"


class Isolation(enum.StrEnum):
    """Where a plugin's code runs."""

    #: A host subprocess of its own, with memory and CPU limits (docs/plugins.md).
    PROCESS = "process"
    #: In the daemon: plain functions in worker threads, coroutines on its loop.
    IN_PROCESS = "in-process"


class MetricsAccess(enum.StrEnum):
    """Who may send metrics to the ingest sockets."""

    PRIVATE = "private"
    GROUP = "group"
    WORLD = "world"


class LogLevel(enum.StrEnum):
    """The least severe log events written."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
