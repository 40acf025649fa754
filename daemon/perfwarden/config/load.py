"""Load and validate ``perfwarden.yaml`` into the frozen model of :mod:`.config_model`.

One job: turn configuration bytes into a :class:`Config`, or into a :class:`ConfigError`
that lists *every* problem as ``PATH:LINE: key.path: message``.  Parsing is a pure
function (:func:`parse_config`); :func:`load_config` only adds reading the file and
its ``conf.d/*.yaml`` drop-ins once (merged in name order, :mod:`.dropins`), and
:func:`resolve_config_path` picks the file (``--config``, ``$PERFWARDEN_CONFIG``,
systemd's ``$CONFIGURATION_DIRECTORY``, ``/etc/perfwarden``, XDG's config home, the
packaged default).

The YAML is *composed*, not loaded, so every value keeps the line it came from
(:mod:`.config_nodes` reads the nodes); this module holds the schema of the
statistics, metrics, optimizer and plugins sections and composes the others
(:mod:`perfwarden.config.evaluation` for evaluation and a metric's ``for``,
:mod:`.config_knobs`; processes, control, sockets, ingest, state and http in
:mod:`.config_runtime`): the known keys, their types and ranges, and the cross-field
rules (threshold order by bound, a series reported ``no_data`` before it expires;
the built-in ``exec``/``webhook`` timings against ``plugin_timeout`` are in
:mod:`.config_plugins`). Every record type is re-exported here: import
configuration names from this module.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from yaml.nodes import MappingNode, ScalarNode

from perfwarden.config.dropins import digest_of, drop_in_paths, mark_file, merge
from perfwarden.config.evaluation import (
    EVALUATION_KEYS,
    check_reference,
    evaluation_section_of,
    hold,
)
from perfwarden.config.knobs import knobs_section
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
    Isolation,
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
    at_least,
    is_int,
    line_of,
    name_problem,
    non_empty,
    non_negative,
    open_unit,
    or_default,
    positive,
    tag_key,
)
from perfwarden.config.plugins import check_plugin_timing
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

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

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
CONFIG_ENV: Final = "PERFWARDEN_CONFIG"
_SYSTEMD_CONFIG_ENV: Final = "CONFIGURATION_DIRECTORY"
_CONFIG_NAME: Final = "perfwarden.yaml"
#: The system-wide configuration file, used when it exists.
SYSTEM_CONFIG: Final = pathlib.Path("/etc/perfwarden") / _CONFIG_NAME

_SECTIONS: Final = (
    "version", "statistics", "evaluation", "metrics", "knobs", "optimizer",
    "processes", "plugins", "control", "sockets", "ingest", "state", "http",
    "recording",
    "alertmanager",
    "logging",
)  # fmt: skip
_METRIC_KEYS: Final = (
    "unit", "description", "bound", "target", "warning", "critical", "for",
    "window", "optimizers", "guard", "group_by", "expire_after",
)  # fmt: skip
_THRESHOLDS: Final = ("target", "warning", "critical")
_STATISTICS_KEYS: Final = (
    "confidence_level", "window", "min_samples", "max_series", "expire_after",
    "max_memory_mb",
)  # fmt: skip
_OPTIMIZER_KEYS: Final = (
    "validation_samples", "significance", "cooldown", "plugin_timeout", "max_failures",
    "mode", "max_actions_per_hour", "validation_timeout", "concurrent_actions",
)  # fmt: skip
_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_EMPTY: Final = "empty config"  # StructureChecker.compose's problem for no document


# --------------------------------------------------------------------------- public


def default_config_path() -> pathlib.Path:
    """Return the packaged default configuration file.

    Installed from a wheel it is ``perfwarden/_data/perfwarden.yaml``; in a source
    checkout it is the repository's ``config/perfwarden.yaml`` (the same file).
    """
    try:
        packaged = resources.files("perfwarden") / "_data" / _CONFIG_NAME
    except (OSError, ValueError):  # a namespace package without _data/ may refuse
        packaged = None
    if isinstance(packaged, pathlib.Path) and packaged.is_file():
        return packaged
    return pathlib.Path(__file__).resolve().parents[3] / "config" / _CONFIG_NAME


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
        pathlib.Path(directory) / _CONFIG_NAME
        for directory in environ.get(_SYSTEMD_CONFIG_ENV, "").split(":")
        if directory
    ]
    candidates.append(system_config)
    config_home = environ.get("XDG_CONFIG_HOME") or _home_config(environ)
    if config_home:
        candidates.append(pathlib.Path(config_home) / "perfwarden" / _CONFIG_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return default_config_path()


def _home_config(environ: Mapping[str, str]) -> str | None:
    home = environ.get("HOME")
    return os.path.join(home, ".config") if home else None


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
    statistics_section = _sub(c, top, "statistics", _STATISTICS_KEYS)
    statistics = _statistics(c, statistics_section)
    evaluation_section = _sub(c, top, "evaluation", EVALUATION_KEYS)
    evaluation = evaluation_section_of(c, evaluation_section, statistics)
    _check_expiry(c, statistics_section, evaluation_section, statistics, evaluation)
    optimizer = _optimizer(c, _sub(c, top, "optimizer", _OPTIMIZER_KEYS))
    return Config(
        version=CONFIG_VERSION,
        statistics=statistics,
        evaluation=evaluation,
        metrics=_metrics(c, _sub(c, top, "metrics", None), statistics, evaluation),
        knobs=knobs_section(c, _sub(c, top, "knobs", None)),
        optimizer=optimizer,
        processes=processes_section(c, c.items(top.node("processes"), "processes")),
        plugins=_plugins(c, _sub(c, top, "plugins", None), optimizer.plugin_timeout),
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


def _statistics(c: Checker, s: Section) -> StatisticsConfig:
    d = StatisticsConfig()
    memory_mb = c.integer(s, "max_memory_mb", at_least(0))
    window = or_default(c.integer(s, "window", at_least(2)), d.window)
    min_samples = or_default(c.integer(s, "min_samples", at_least(2)), d.min_samples)
    if min_samples > window and "min_samples" in s:
        c.add(
            s.value_line("min_samples"),
            s.dotted("min_samples"),
            f"must not exceed window ({window})",
        )
    elif min_samples > window:
        c.add(
            s.value_line("window"),
            s.dotted("window"),
            f"must be at least min_samples ({min_samples})",
        )
    return StatisticsConfig(
        confidence_level=or_default(
            c.number(s, "confidence_level", open_unit), d.confidence_level
        ),
        window=window,
        min_samples=min_samples,
        max_series=or_default(c.integer(s, "max_series", at_least(1)), d.max_series),
        expire_after=or_default(_expiry(c, s, "expire_after"), d.expire_after),
        max_memory_mb=or_default(memory_mb, d.max_memory_mb),
    )


def _expiry(c: Checker, s: Section, name: str) -> float | None:
    """A duration; ``0``, ``off`` (quoted or not) or ``false`` mean never."""
    node = s.node(name)
    if isinstance(node, ScalarNode) and (
        (node.tag == _BOOL_TAG and c.scalar(node, s.dotted(name)) is False)
        or (node.style in {"'", '"'} and node.value.strip().lower() == "off")
    ):
        return 0.0
    return c.duration(s, name, non_negative)


def _check_expiry(
    c: Checker,
    statistics_section: Section,
    evaluation_section: Section,
    statistics: StatisticsConfig,
    evaluation: EvaluationConfig,
) -> None:
    """A silent series is reported ``no_data`` before it is forgotten."""
    expire_after, missing_after = statistics.expire_after, evaluation.missing_after
    if not 0 < expire_after < missing_after:
        return
    if "expire_after" in statistics_section:
        c.add(
            statistics_section.value_line("expire_after"),
            statistics_section.dotted("expire_after"),
            _expiry_problem(missing_after),
        )
    else:
        c.add(
            evaluation_section.value_line("missing_after"),
            evaluation_section.dotted("missing_after"),
            f"must not exceed statistics.expire_after ({expire_after:g}s):"
            " a silent series is reported no_data before it is forgotten",
        )


def _expiry_problem(missing_after: float) -> str:
    return (
        f"must be 0 (never) or at least evaluation.missing_after"
        f" ({missing_after:g}s): a silent series is reported no_data before it is"
        " forgotten"
    )


def _metrics(
    c: Checker,
    section: Section,
    statistics: StatisticsConfig,
    evaluation: EvaluationConfig,
) -> Mapping[str, MetricConfig]:
    def window_check(value: int) -> str | None:
        if value < statistics.min_samples:
            return f"must be at least statistics.min_samples ({statistics.min_samples})"
        return at_least(2)(value)

    metrics: dict[str, MetricConfig] = {}
    for name, (key_node, value_node) in section.entries.items():
        key = section.dotted(name)
        if (message := name_problem(name)) is not None:
            c.add(line_of(key_node), key, message)
        m = c.section(value_node, key, line_of(key_node), _METRIC_KEYS)
        if m is None:
            continue
        bound = c.choice(m, "bound", Bound)
        if "bound" not in m:
            c.missing(m, "bound", " (upper: lower is better; lower: higher is better)")
        levels = {level: c.number(m, level) for level in _THRESHOLDS}
        if bound is not None:
            _check_order(c, m, bound, levels)
        target, warning, critical = (_float(levels[level]) for level in _THRESHOLDS)
        expire_after = _expiry(c, m, "expire_after")
        hold_time, hold_samples = hold(c, m)
        window = c.integer(m, "window", window_check)
        has_levels = warning is not None or critical is not None
        if has_levels:
            check_reference(c, m, window, evaluation, statistics)
        if has_levels and expire_after and expire_after < evaluation.missing_after:
            message = _expiry_problem(evaluation.missing_after)
            c.add(m.value_line("expire_after"), m.dotted("expire_after"), message)
        metrics[name] = MetricConfig(
            name=name,
            bound=or_default(bound, Bound.UPPER),
            unit=c.string(m, "unit", non_empty),
            description=c.string(m, "description"),
            target=target,
            warning=warning,
            critical=critical,
            for_=hold_time,
            for_samples=hold_samples,
            window=window,
            optimizers=c.strings(m, "optimizers", non_empty),
            guard=c.boolean(m, "guard", default=False),
            group_by=c.string(m, "group_by", tag_key),
            expire_after=expire_after,
        )
    return MappingProxyType(metrics)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _check_order(
    c: Checker, m: Section, bound: Bound, levels: Mapping[str, float | None]
) -> None:
    """target < warning < critical for an upper bound, reversed for a lower one."""
    present = [(level, value) for level, value in levels.items() if value is not None]
    for (low_name, low), (high_name, high) in itertools.pairwise(present):
        if (high > low) if bound is Bound.UPPER else (high < low):
            continue
        if bound is Bound.UPPER:
            rule = f"must be above {low_name} ({low}) for an upper bound"
        else:
            rule = f"must be below {low_name} ({low}) for a lower bound"
        message = f"{rule}, got {high}"
        c.add(m.value_line(high_name), m.dotted(high_name), message)


def _optimizer(c: Checker, s: Section) -> OptimizerConfig:
    d = OptimizerConfig()
    samples = c.integer(s, "validation_samples", at_least(1))
    return OptimizerConfig(
        validation_samples=or_default(samples, d.validation_samples),
        significance=or_default(c.number(s, "significance", open_unit), d.significance),
        cooldown=or_default(c.duration(s, "cooldown", non_negative), d.cooldown),
        plugin_timeout=or_default(
            c.duration(s, "plugin_timeout", positive), d.plugin_timeout
        ),
        max_failures=or_default(
            c.integer(s, "max_failures", at_least(1)), d.max_failures
        ),
        mode=or_default(c.choice(s, "mode", OptimizerMode), d.mode),
        max_actions_per_hour=or_default(
            c.integer(s, "max_actions_per_hour", at_least(0)), d.max_actions_per_hour
        ),
        validation_timeout=or_default(
            c.duration(s, "validation_timeout", positive), d.validation_timeout
        ),
        concurrent_actions=or_default(
            c.integer(s, "concurrent_actions", at_least(1)), d.concurrent_actions
        ),
    )


#: Keys of ``plugins.NAME`` that are the daemon's, not the plugin's options.
PLUGIN_SETTINGS: Final = frozenset(
    {"enabled", "isolation", "memory_limit_mb", "cpu_limit"}
)


def _plugins(
    c: Checker, section: Section, plugin_timeout: float
) -> Mapping[str, PluginConfig]:
    plugins: dict[str, PluginConfig] = {}
    for name, (key_node, value_node) in section.entries.items():
        key = section.dotted(name)
        if not name:
            c.add(line_of(key_node), key, "name must not be empty")
        p = c.section(value_node, key, line_of(key_node), None)
        if p is None:
            continue
        memo: dict[int, object] = {}  # aliases shared across the plugin's options
        options = {
            option: c.frozen(node, p.dotted(option), memo)
            for option, (_, node) in p.entries.items()
            if option not in PLUGIN_SETTINGS
        }
        enabled = c.boolean(p, "enabled", default=True)
        if enabled:
            check_plugin_timing(c, p, name, options, plugin_timeout)
        d = PluginConfig(name)
        plugins[name] = PluginConfig(
            name,
            enabled,
            MappingProxyType(options),
            line=line_of(key_node),
            isolation=c.choice(p, "isolation", Isolation),
            memory_limit_mb=or_default(
                c.integer(p, "memory_limit_mb", at_least(0)), d.memory_limit_mb
            ),
            cpu_limit=or_default(c.duration(p, "cpu_limit", non_negative), d.cpu_limit),
        )
    return MappingProxyType(plugins)
