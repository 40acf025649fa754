"""Plugin discovery and loading: find (no import) → load (import + construct + check).

Discovery reads ``importlib.metadata.entry_points(group="perfwarden.optimizers")``
without importing anything; loading imports one entry point, calls its factory with
the plugin's options and checks the result against :class:`~perfwarden.plugin_api.
Optimizer`. Every failure names the plugin, its distribution and version.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from perfwarden.plugin_api import ENTRY_POINT_GROUP, Optimizer, PluginNotConfigured

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["PluginLoadError", "PluginSource", "find", "instantiate"]


@dataclass(frozen=True, slots=True)
class PluginSource:
    """A discovered entry point, not yet imported."""

    name: str
    value: str
    dist: str
    version: str
    entry_point: importlib.metadata.EntryPoint


class PluginLoadError(Exception):
    """A plugin that could not be imported, constructed, or does not conform."""

    def __init__(
        self, source: PluginSource, reason: str, *, unconfigured: bool = False
    ) -> None:
        super().__init__(
            f"plugin {source.name!r} ({source.dist} {source.version}): {reason}"
        )
        self.source = source
        self.reason = reason
        #: The factory said its required options are missing (not a fault).
        self.unconfigured = unconfigured


def find(
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> tuple[list[PluginSource], list[PluginSource]]:
    """Every plugin of the group, sorted by name; and the duplicates of a name.

    When two distributions declare the same name, the first in sorted order
    (by distribution name) wins and the others are returned as duplicates.
    """
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    sources = []
    for ep in entry_points:
        dist = ep.dist
        sources.append(
            PluginSource(
                name=ep.name,
                value=ep.value,
                dist=dist.metadata["Name"] if dist is not None else "?",
                version=dist.version if dist is not None else "?",
                entry_point=ep,
            )
        )
    sources.sort(key=lambda s: (s.name, s.dist))
    chosen: dict[str, PluginSource] = {}
    duplicates = []
    for source in sources:
        if source.name in chosen:
            duplicates.append(source)
        else:
            chosen[source.name] = source
    return list(chosen.values()), duplicates


def _summary(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def instantiate(source: PluginSource, options: Mapping[str, object]) -> Optimizer:
    """Import, construct and check one plugin (blocking: run it off the loop).

    Raises :class:`PluginLoadError` on any failure.
    """
    # BaseException: a plugin calling sys.exit() at import or in its constructor
    # fails to load; this runs in a worker thread, never the loop's (no Ctrl-C).
    try:
        factory = source.entry_point.load()
    except BaseException as exc:
        raise PluginLoadError(source, f"import failed: {_summary(exc)}") from exc
    if not callable(factory):
        raise PluginLoadError(source, f"{source.value} is not a class or factory")
    try:
        plugin = factory(options)
    except PluginNotConfigured as exc:
        raise PluginLoadError(source, str(exc), unconfigured=True) from exc
    except BaseException as exc:
        raise PluginLoadError(source, f"construction failed: {_summary(exc)}") from exc
    if not isinstance(plugin, Optimizer):
        missing = [
            m for m in ("handles", "propose") if not callable(getattr(plugin, m, None))
        ]
        raise PluginLoadError(
            source,
            f"{type(plugin).__name__} lacks {', '.join(missing)} (see plugin_api)",
        )
    for method, arguments in (("handles", 1), ("propose", 2)):
        if not _takes(getattr(plugin, method), arguments):
            raise PluginLoadError(
                source, f"{method}() must take {arguments} positional argument(s)"
            )
    return plugin


def _takes(function: object, count: int) -> bool:
    try:
        inspect.signature(function).bind(*([None] * count))  # type: ignore[arg-type]
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (a builtin): trust it
        return True
    return True
