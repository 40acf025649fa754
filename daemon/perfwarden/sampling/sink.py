"""Where the samplers' samples go: one callback type, shared by both samplers."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Sink"]

Sink = Callable[[str, dict[str, str], float], None]
"""``sink(metric_name, tags, value)``: where samples go; called in the loop thread."""
