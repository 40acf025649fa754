"""What a reload changed, as lines a person reads: ``section.key: old -> new``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfwarden.config.model import Config

__all__ = ["describe_changes"]


def describe_changes(old: Config, new: Config) -> list[str]:
    """Human-readable ``section.key: old -> new`` lines (top-level sections only)."""
    changes: list[str] = []
    for name in sorted(set(old.metrics) | set(new.metrics)):
        before, after = old.metrics.get(name), new.metrics.get(name)
        if before == after:
            continue
        if before is None:
            changes.append(f"metrics.{name}: added")
        elif after is None:
            changes.append(f"metrics.{name}: removed")
        else:
            for key in before.__slots__:
                a, b = getattr(before, key), getattr(after, key)
                if a != b:
                    changes.append(f"metrics.{name}.{key.rstrip('_')}: {a!r} -> {b!r}")
    sections = (
        "statistics",
        "evaluation",
        "optimizer",
        "control",
        "sockets",
        "ingest",
        "state",
        "http",
        "recording",
        "alertmanager",
        "logging",
    )
    changes.extend(
        f"{section}: {getattr(old, section)!r} -> {getattr(new, section)!r}"
        for section in sections
        if getattr(old, section) != getattr(new, section)
    )
    if old.knobs != new.knobs:
        changes.append("knobs: changed")
    if old.plugins != new.plugins:
        changes.append("plugins: changed")
    return changes
