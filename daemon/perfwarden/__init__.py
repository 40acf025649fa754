"""perfwarden: a sidecar daemon for real-time performance monitoring.

Applications send DogStatsD lines to its Unix sockets (or use
:mod:`perfwarden.client`); perfwarden keeps rolling windows with confidence
intervals, judges them against YAML thresholds and hands violations to optimizer
plugins. The public surface of the package is listed in ``__all__``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("perfwarden")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
