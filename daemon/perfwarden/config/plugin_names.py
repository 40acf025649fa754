"""Name the ``plugins:`` entries that match no installed plugin, with a "did you mean".

One job: a misspelt or uninstalled plugin's options would otherwise be ignored without
a word (``pool_tunr:`` while ``pool_tuner`` runs on its defaults). The check needs the
names of the installed plugins, so it runs beside validation, not in it:
``check-config`` and every reload report its findings as warnings, and the config is
still accepted (a plugin may be installed later and picked up by a reload).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from perfwarden.config.model import ConfigProblem
from perfwarden.logs.setup import get_logger

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from perfwarden.config.model import PluginConfig

__all__ = ["unknown_plugins", "warn_unknown_plugins"]

_log = get_logger("perfwarden")


def unknown_plugins(
    plugins: Mapping[str, PluginConfig], installed: Collection[str], path: str
) -> list[ConfigProblem]:
    """One problem per configured plugin name that is not installed."""
    problems = []
    known = sorted(installed)
    for name, settings in plugins.items():
        if name in installed:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(known) if known else "none"
        message = (
            f"no plugin {name!r} is installed, so these options are not used"
            f"{hint} (installed: {listing})"
        )
        problems.append(ConfigProblem(path, settings.line, f"plugins.{name}", message))
    return problems


def warn_unknown_plugins(
    plugins: Mapping[str, PluginConfig], installed: set[str], path: str
) -> list[str]:
    """Log (``config.unknown_plugin``) and return the ``plugins:`` entries that no
    installed plugin answers to, each with its "did you mean"."""
    problems = unknown_plugins(plugins, installed, path)
    for problem in problems:
        _log.warning(
            "config.unknown_plugin",
            path=path,
            line=problem.line,
            key=problem.key,
            message=problem.message,
        )
    return [str(problem) for problem in problems]
