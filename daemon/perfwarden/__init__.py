"""perfwarden: a sidecar daemon for real-time performance monitoring.

Applications send DogStatsD lines to its Unix sockets (or use
:mod:`perfwarden.client`); perfwarden keeps rolling windows with confidence
intervals, judges them against YAML thresholds and hands violations to optimizer
plugins. The public surface of the package is listed in ``__all__``.
"""

from __future__ import annotations

# A literal, read by hatchling at build time ([tool.hatch.version]): importing
# importlib.metadata here would cost every application that imports
# perfwarden.client several MiB.
__version__ = "0.1.0"

__all__ = ["__version__"]
