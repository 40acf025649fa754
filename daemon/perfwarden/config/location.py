"""Where ``perfwarden.yaml`` is: the packaged default and the search order.

``--config``, ``$PERFWARDEN_CONFIG``, systemd's ``$CONFIGURATION_DIRECTORY``,
``/etc/perfwarden``, XDG's config home, then the packaged default.
"""

from __future__ import annotations

import os
import pathlib
from importlib import resources
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CONFIG_ENV",
    "CONFIG_NAME",
    "SYSTEM_CONFIG",
    "default_config_path",
    "resolve_config_path",
]

CONFIG_ENV: Final = "PERFWARDEN_CONFIG"
_SYSTEMD_CONFIG_ENV: Final = "CONFIGURATION_DIRECTORY"
CONFIG_NAME: Final = "perfwarden.yaml"
#: The system-wide config, when it exists.
SYSTEM_CONFIG: Final = pathlib.Path("/etc/perfwarden") / CONFIG_NAME


def default_config_path() -> pathlib.Path:
    """Return the packaged default configuration file.

    Installed from a wheel it is ``perfwarden/_data/perfwarden.yaml``; in a source
    checkout it is the repository's ``config/perfwarden.yaml`` (the same file).
    """
    try:
        packaged = resources.files("perfwarden") / "_data" / CONFIG_NAME
    except (OSError, ValueError):  # a namespace package without _data/ may refuse
        packaged = None
    if isinstance(packaged, pathlib.Path) and packaged.is_file():
        return packaged
    return pathlib.Path(__file__).resolve().parents[3] / "config" / CONFIG_NAME


def resolve_config_path(
    cli_value: str | None,
    environ: Mapping[str, str],
    *,
    system_config: pathlib.Path = SYSTEM_CONFIG,
) -> pathlib.Path:
    """Return the configuration file to use.

    In order: *cli_value* (``--config``), ``$PERFWARDEN_CONFIG``,
    ``$CONFIGURATION_DIRECTORY/perfwarden.yaml`` when that file exists (systemd's
    ``ConfigurationDirectory=``; the first of several ``:``-separated directories that
    holds one), ``/etc/perfwarden/perfwarden.yaml`` when it exists,
    ``$XDG_CONFIG_HOME/perfwarden/perfwarden.yaml`` (``~/.config`` by default) when
    it exists, else :func:`default_config_path`.  Empty values count as unset.
    """
    if cli_value:
        return pathlib.Path(cli_value)
    if env_value := environ.get(CONFIG_ENV):
        return pathlib.Path(env_value)
    candidates = [
        pathlib.Path(directory) / CONFIG_NAME
        for directory in environ.get(_SYSTEMD_CONFIG_ENV, "").split(":")
        if directory
    ]
    candidates.append(system_config)
    config_home = environ.get("XDG_CONFIG_HOME") or _home_config(environ)
    if config_home:
        candidates.append(pathlib.Path(config_home) / "perfwarden" / CONFIG_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return default_config_path()


def _home_config(environ: Mapping[str, str]) -> str | None:
    home = environ.get("HOME")
    return os.path.join(home, ".config") if home else None
