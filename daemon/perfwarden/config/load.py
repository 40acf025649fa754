"""Load and validate ``perfwarden.yaml`` into the frozen model of :mod:`.model`.

One job: turn configuration bytes into a :class:`Config`, or into a :class:`ConfigError`
that lists *every* problem as ``PATH:LINE: key.path: message``.  Parsing is a pure
function (:func:`parse_config`); :func:`load_config` only adds reading the file and
its ``conf.d/*.yaml`` drop-ins once (merged in name order, :mod:`.dropins`);
:mod:`.location` picks the file (``--config``, ``$PERFWARDEN_CONFIG``, systemd's
``$CONFIGURATION_DIRECTORY``, ``/etc/perfwarden``, XDG's config home, the packaged
default).

The YAML is *composed*, not loaded, so every value keeps the line it came from
(:mod:`.nodes` reads the nodes). This module checks the top level and composes the
sections, each read by its own module: :mod:`.sections` (statistics, metrics,
optimizer, plugins), :mod:`.evaluation`, :mod:`.knobs`, :mod:`.runtime` (processes,
control, sockets, ingest, state, http), :mod:`.recording`, :mod:`.routes`
(alertmanager). Every record type is re-exported here: import configuration names
from this module.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import TYPE_CHECKING, Final

from yaml.nodes import MappingNode

from perfwarden.config.dropins import digest_of, drop_in_paths, mark_file, merge
from perfwarden.config.evaluation import (
    EVALUATION_KEYS,
    evaluation_section_of,
)
from perfwarden.config.knobs import knobs_section
from perfwarden.config.location import (
    CONFIG_ENV,
    SYSTEM_CONFIG,
    default_config_path,
    resolve_config_path,
)
from perfwarden.config.model import (
    Basis,
    Bound,
    Config,
    ConfigError,
    ConfigProblem,
    ControlConfig,
    EvaluationConfig,
    HttpConfig,
    IngestConfig,
    KnobConfig,
    LoggingConfig,
    LogLevel,
    MetricConfig,
    MetricsAccess,
    OptimizerConfig,
    OptimizerMode,
    PluginConfig,
    ProcessConfig,
    RecordingConfig,
    SignedGauges,
    SocketsConfig,
    StateConfig,
    StatisticsConfig,
)
from perfwarden.config.nodes import (
    Checker,
    Section,
    is_int,
    line_of,
)
from perfwarden.config.recording import RECORDING_KEYS, recording_section
from perfwarden.config.routes import ALERTMANAGER_KEYS, alertmanager_section
from perfwarden.config.runtime import (
    CONTROL_KEYS,
    HTTP_KEYS,
    INGEST_KEYS,
    SOCKETS_KEYS,
    STATE_KEYS,
    control_section,
    http_section,
    ingest_section,
    processes_section,
    sockets_section,
    state_section,
)
from perfwarden.config.sections import (
    OPTIMIZER_KEYS,
    STATISTICS_KEYS,
    check_expiry,
    metrics_section,
    optimizer_section,
    plugins_section,
    statistics_section,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from yaml.nodes import Node

__all__ = [
    "CONFIG_ENV",
    "CONFIG_VERSION",
    "SYSTEM_CONFIG",
    "Basis",
    "Bound",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ControlConfig",
    "EvaluationConfig",
    "HttpConfig",
    "IngestConfig",
    "KnobConfig",
    "LogLevel",
    "LoggingConfig",
    "MetricConfig",
    "MetricsAccess",
    "OptimizerConfig",
    "OptimizerMode",
    "PluginConfig",
    "ProcessConfig",
    "RecordingConfig",
    "SignedGauges",
    "SocketsConfig",
    "StateConfig",
    "StatisticsConfig",
    "default_config_path",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

#: The only configuration format version this perfwarden reads.
CONFIG_VERSION: Final = 1
#: Environment variable naming the configuration file.

_SECTIONS: Final = (
    "version", "statistics", "evaluation", "metrics", "knobs", "optimizer",
    "processes", "plugins", "control", "sockets", "ingest", "state", "http",
    "recording",
    "alertmanager",
    "logging",
)  # fmt: skip
_EMPTY: Final = "empty config"  # StructureChecker.compose's problem for no document


# --------------------------------------------------------------------------- public


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read *path* and its drop-ins once and return their validated :class:`Config`.

    Drop-ins are the ``conf.d/*.yaml`` files beside *path*, merged in name order
    (:mod:`.dropins`); a problem in one names that file and line.  Raises
    :class:`ConfigError` with every problem; a file that cannot be read gives one
    problem on line 0.  ``Config.source`` is the path as given, or ``"<default>"``
    for the packaged default; problems always name the real path.
    """
    shown = os.fspath(path)
    files = [pathlib.Path(path), *drop_in_paths(path)]
    contents: list[tuple[str, bytes]] = []
    for file in files:
        name = os.fspath(file)
        try:
            contents.append((name, file.read_bytes()))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            problem = ConfigProblem(
                name, 0, "", f"cannot read the config file: {reason}"
            )
            raise ConfigError([problem]) from None
    source = "<default>" if _is_default(pathlib.Path(path)) else shown
    main = contents[0][1]
    return _parse(main, source=source, shown=shown, drop_ins=contents[1:])


def parse_config(text: str | bytes, source: str = "<string>") -> Config:
    """Validate YAML *text* and return its :class:`Config`; *source* names it.

    Pure: no file or environment access.  Raises :class:`ConfigError` listing every
    problem in file order.
    """
    return _parse(text, source=source, shown=source)


# --------------------------------------------------------------------- internals


def _is_default(path: pathlib.Path) -> bool:
    try:
        return path.resolve() == default_config_path().resolve()
    except OSError:
        return False


def _parse(
    text: str | bytes,
    *,
    source: str,
    shown: str,
    drop_ins: Sequence[tuple[str, bytes]] = (),
) -> Config:
    data = text.encode("utf-8") if isinstance(text, str) else text
    checker = Checker(shown)
    root = checker.compose(text)
    for name, drop_in_text in drop_ins:
        root = _merge_drop_in(checker, root, name, drop_in_text)
    config = None if root is None else _build(checker, root)
    if checker.problems or config is None:
        order = {name: index for index, (name, _) in enumerate(drop_ins, start=1)}
        raise ConfigError(
            sorted(
                checker.problems,
                key=lambda problem: (order.get(problem.path, 0), problem.line),
            )
        )
    digest = digest_of(data, drop_ins)
    return dataclasses.replace(config, source=source, sha256=digest)


def _merge_drop_in(
    checker: Checker, root: Node | None, name: str, text: bytes
) -> Node | None:
    """*root* with drop-in *text* merged in; its problems are recorded in *name*."""
    own = Checker(name)
    drop_in = own.compose(text)
    # An empty (or all-comment) drop-in changes nothing; it is no problem.
    checker.problems.extend(p for p in own.problems if p.message != _EMPTY)
    if drop_in is None:
        return root
    if not isinstance(drop_in, MappingNode):
        got = own.describe(drop_in, "")
        checker.problems.append(
            ConfigProblem(name, line_of(drop_in), "", f"must be a mapping, got {got}")
        )
        return root
    mark_file(drop_in, name)
    if not isinstance(root, MappingNode):
        return root  # the main file's problem is reported already
    return merge(root, drop_in)


# ---------------------------------------------------------------------- sections


def _build(c: Checker, root: Node) -> Config | None:
    """Check the whole document; the model is meaningful only if nothing was wrong."""
    if not isinstance(root, MappingNode):
        got = c.describe(root, "")
        c.add(line_of(root), "", f"the top level must be a mapping, got {got}")
        return None
    top = c.section(root, "", 1, _SECTIONS) or Section("", 1)
    version_node = top.node("version")
    version = c.typed(version_node, "version", "an integer", is_int)
    if version_node is None:
        c.missing(top, "version", f" (add `version: {CONFIG_VERSION}`)")
    elif isinstance(version, int) and version != CONFIG_VERSION:
        message = f"unsupported version {version}; this perfwarden reads version 1"
        c.add(line_of(version_node), "version", message)
    statistics_node = _sub(c, top, "statistics", STATISTICS_KEYS)
    statistics = statistics_section(c, statistics_node)
    evaluation_node = _sub(c, top, "evaluation", EVALUATION_KEYS)
    evaluation = evaluation_section_of(c, evaluation_node, statistics)
    check_expiry(c, statistics_node, evaluation_node, statistics, evaluation)
    optimizer = optimizer_section(c, _sub(c, top, "optimizer", OPTIMIZER_KEYS))
    return Config(
        version=CONFIG_VERSION,
        statistics=statistics,
        evaluation=evaluation,
        metrics=metrics_section(
            c, _sub(c, top, "metrics", None), statistics, evaluation
        ),
        knobs=knobs_section(c, _sub(c, top, "knobs", None)),
        optimizer=optimizer,
        processes=processes_section(c, c.items(top.node("processes"), "processes")),
        plugins=plugins_section(
            c, _sub(c, top, "plugins", None), optimizer.plugin_timeout
        ),
        control=control_section(c, _sub(c, top, "control", CONTROL_KEYS)),
        sockets=sockets_section(c, _sub(c, top, "sockets", SOCKETS_KEYS)),
        ingest=ingest_section(c, _sub(c, top, "ingest", INGEST_KEYS)),
        state=state_section(c, _sub(c, top, "state", STATE_KEYS)),
        http=http_section(c, _sub(c, top, "http", HTTP_KEYS)),
        recording=recording_section(c, _sub(c, top, "recording", RECORDING_KEYS)),
        alertmanager=alertmanager_section(
            c, _sub(c, top, "alertmanager", ALERTMANAGER_KEYS)
        ),
        logging=_logging(c, _sub(c, top, "logging", ("level",))),
    )


def _logging(c: Checker, s: Section) -> LoggingConfig:
    level = c.choice(s, "level", LogLevel)
    return LoggingConfig() if level is None else LoggingConfig(level=level)


def _sub(c: Checker, top: Section, name: str, keys: Iterable[str] | None) -> Section:
    """Section *name* of *top*; empty when absent, null or not a mapping."""
    line = top.key_line(name)
    return c.section(top.node(name), name, line, keys) or Section(name, line)
