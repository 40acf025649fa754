"""Load and validate ``perfwarden.yaml`` into the frozen model of :mod:`.config_model`.

One job: turn configuration bytes into a :class:`Config`, or into a :class:`ConfigError`
that lists *every* problem as ``PATH:LINE: key.path: message``.  Parsing is a pure
function (:func:`parse_config`); :func:`load_config` only adds reading the file once,
and :func:`resolve_config_path` picks the file (``--config``, ``$PERFWARDEN_CONFIG``,
systemd's ``$CONFIGURATION_DIRECTORY``, the packaged default).

The YAML is *composed*, not loaded, so every value keeps the line it came from
(:mod:`.config_nodes` reads the nodes); this module holds the schema: the known keys
of every section, their types and ranges, and the cross-field rules (threshold order
by bound, knob ranges, one process matcher, group access needs a group, a series
reported ``no_data`` before it expires; the built-in ``exec``/``webhook`` timings
against ``plugin_timeout`` are in :mod:`.config_plugins`). Every record type is
re-exported here: import configuration names from this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import os
import pathlib
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from yaml.nodes import MappingNode, ScalarNode

from perfwarden.config_model import (
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
    MetricConfig,
    MetricsAccess,
    OptimizerConfig,
    OptimizerMode,
    PluginConfig,
    ProcessConfig,
    SocketsConfig,
    StateConfig,
    StatisticsConfig,
)
from perfwarden.config_nodes import (
    Checker,
    Section,
    at_least,
    is_int,
    is_null,
    line_of,
    name_problem,
    non_empty,
    non_negative,
    open_unit,
    or_default,
    positive,
    regex,
    tag_key,
)
from perfwarden.config_plugins import check_plugin_timing

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from yaml.nodes import Node

__all__ = [
    "CONFIG_ENV",
    "CONFIG_VERSION",
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
    "MetricConfig",
    "MetricsAccess",
    "OptimizerConfig",
    "OptimizerMode",
    "PluginConfig",
    "ProcessConfig",
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

_SECTIONS: Final = (
    "version", "statistics", "evaluation", "metrics", "knobs", "optimizer",
    "processes", "plugins", "control", "sockets", "ingest", "state", "http",
)  # fmt: skip
_METRIC_KEYS: Final = (
    "unit", "description", "bound", "target", "warning", "critical", "for",
    "window", "optimizers", "guard", "group_by", "expire_after",
)  # fmt: skip
_THRESHOLDS: Final = ("target", "warning", "critical")
_STATISTICS_KEYS: Final = (
    "confidence_level", "window", "min_samples", "max_series", "expire_after",
)  # fmt: skip
_EVALUATION_KEYS: Final = (
    "interval", "basis", "for", "window", "hysteresis", "missing_after",
)  # fmt: skip
_OPTIMIZER_KEYS: Final = (
    "validation_samples", "significance", "cooldown", "plugin_timeout", "max_failures",
    "mode", "max_actions_per_hour", "validation_timeout", "concurrent_actions",
)  # fmt: skip
_PROCESS_KEYS: Final = ("name", "match", "interval", "children")
_CONTROL_KEYS: Final = ("allow_uids", "allow_groups")
_SOCKETS_KEYS: Final = ("metrics_access", "group")
_INGEST_KEYS: Final = ("max_line_bytes", "max_connections", "max_datagram_bytes")
_STATE_KEYS: Final = ("checkpoint_interval",)
_HTTP_KEYS: Final = ("listen",)
_KNOB_KEYS: Final = ("min", "max", "step", "initial", "choices")
_MATCH_KEYS: Final = ("pid", "pidfile", "name", "cmdline", "unit")
_BOOL_TAG: Final = "tag:yaml.org,2002:bool"


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
    return pathlib.Path(__file__).resolve().parents[2] / "config" / _CONFIG_NAME


def resolve_config_path(
    cli_value: str | None, environ: Mapping[str, str]
) -> pathlib.Path:
    """Return the configuration file to use.

    In order: *cli_value* (``--config``), ``$PERFWARDEN_CONFIG``,
    ``$CONFIGURATION_DIRECTORY/perfwarden.yaml`` when that file exists (systemd's
    ``ConfigurationDirectory=``; the first of several ``:``-separated directories that
    holds one), else :func:`default_config_path`.  Empty values count as unset.
    """
    if cli_value:
        return pathlib.Path(cli_value)
    if env_value := environ.get(CONFIG_ENV):
        return pathlib.Path(env_value)
    for directory in environ.get(_SYSTEMD_CONFIG_ENV, "").split(":"):
        if (
            directory
            and (candidate := pathlib.Path(directory) / _CONFIG_NAME).is_file()
        ):
            return candidate
    return default_config_path()


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read *path* once and return its validated :class:`Config`.

    Raises :class:`ConfigError` with every problem; a file that cannot be read gives
    one problem on line 0.  ``Config.source`` is the path as given, or
    ``"<default>"`` for the packaged default; problems always name the real path.
    """
    shown = os.fspath(path)
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = ConfigProblem(shown, 0, "", f"cannot read the config file: {reason}")
        raise ConfigError([problem]) from None
    source = "<default>" if _is_default(pathlib.Path(path)) else shown
    return _parse(data, source=source, shown=shown)


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


def _parse(text: str | bytes, *, source: str, shown: str) -> Config:
    data = text.encode("utf-8") if isinstance(text, str) else text
    checker = Checker(shown)
    root = checker.compose(text)
    config = None if root is None else _build(checker, root)
    if checker.problems or config is None:
        raise ConfigError(sorted(checker.problems, key=lambda problem: problem.line))
    digest = hashlib.sha256(data).hexdigest()
    return dataclasses.replace(config, source=source, sha256=digest)


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
    evaluation_section = _sub(c, top, "evaluation", _EVALUATION_KEYS)
    evaluation = _evaluation(c, evaluation_section, statistics)
    _check_expiry(c, statistics_section, evaluation_section, statistics, evaluation)
    optimizer = _optimizer(c, _sub(c, top, "optimizer", _OPTIMIZER_KEYS))
    return Config(
        version=CONFIG_VERSION,
        statistics=statistics,
        evaluation=evaluation,
        metrics=_metrics(c, _sub(c, top, "metrics", None), statistics, evaluation),
        knobs=_knobs(c, _sub(c, top, "knobs", None)),
        optimizer=optimizer,
        processes=_processes(c, c.items(top.node("processes"), "processes")),
        plugins=_plugins(c, _sub(c, top, "plugins", None), optimizer.plugin_timeout),
        control=_control(c, _sub(c, top, "control", _CONTROL_KEYS)),
        sockets=_sockets(c, _sub(c, top, "sockets", _SOCKETS_KEYS)),
        ingest=_ingest(c, _sub(c, top, "ingest", _INGEST_KEYS)),
        state=_state(c, _sub(c, top, "state", _STATE_KEYS)),
        http=_http(c, _sub(c, top, "http", _HTTP_KEYS)),
    )


def _sub(c: Checker, top: Section, name: str, keys: Iterable[str] | None) -> Section:
    """Section *name* of *top*; empty when absent, null or not a mapping."""
    line = top.key_line(name)
    return c.section(top.node(name), name, line, keys) or Section(name, line)


def _statistics(c: Checker, s: Section) -> StatisticsConfig:
    d = StatisticsConfig()
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
    )


def _expiry(c: Checker, s: Section, name: str) -> float | None:
    """A duration; ``0``, ``off`` or ``false`` (YAML's false) mean never."""
    node = s.node(name)
    if (
        isinstance(node, ScalarNode)
        and node.tag == _BOOL_TAG
        and c.scalar(node, s.dotted(name)) is False
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


def _evaluation(
    c: Checker, s: Section, statistics: StatisticsConfig
) -> EvaluationConfig:
    d = EvaluationConfig()
    window = or_default(c.integer(s, "window", at_least(2)), d.window)
    if window < statistics.min_samples:
        # mean and ci are only judged from min_samples values on: a smaller
        # evaluation window would never alert.
        c.add(
            s.value_line("window") if "window" in s else s.line,
            s.dotted("window"),
            f"must be at least statistics.min_samples ({statistics.min_samples})",
        )
    return EvaluationConfig(
        interval=or_default(c.duration(s, "interval", positive), d.interval),
        basis=or_default(c.choice(s, "basis", Basis), d.basis),
        for_=or_default(c.duration(s, "for", non_negative), d.for_),
        window=window,
        hysteresis=or_default(c.number(s, "hysteresis", _fraction), d.hysteresis),
        missing_after=or_default(
            c.duration(s, "missing_after", positive), d.missing_after
        ),
    )


def _fraction(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be at least 0 and below 1"


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
        has_levels = warning is not None or critical is not None
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
            for_=c.duration(m, "for", non_negative),
            window=c.integer(m, "window", window_check),
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


def _knobs(c: Checker, section: Section) -> Mapping[str, KnobConfig]:
    knobs: dict[str, KnobConfig] = {}
    for name, (key_node, value_node) in section.entries.items():
        key = section.dotted(name)
        if (message := name_problem(name)) is not None:
            c.add(line_of(key_node), key, message)
        k = c.section(value_node, key, line_of(key_node), _KNOB_KEYS)
        if k is not None:
            knobs[name] = (
                _choice_knob(c, name, k)
                if "choices" in k
                else _numeric_knob(c, name, k)
            )
    return MappingProxyType(knobs)


def _numeric_knob(c: Checker, name: str, k: Section) -> KnobConfig:
    low, high = c.number(k, "min"), c.number(k, "max")
    step, initial = c.number(k, "step", positive), c.number(k, "initial")
    for key in ("min", "max", "initial"):
        if key not in k:
            c.missing(
                k, key, " (a knob needs min, max and initial, or choices and initial)"
            )
    if low is not None and high is not None and not low < high:
        c.add(k.value_line("max"), k.dotted("max"), f"must be greater than min ({low})")
    elif (
        low is not None
        and high is not None
        and initial is not None
        and not low <= initial <= high
    ):
        message = f"must be within min..max ({low}..{high}), got {initial}"
        c.add(k.value_line("initial"), k.dotted("initial"), message)
    return KnobConfig(name, low, high, step, or_default(initial, 0.0), None)


def _choice_knob(c: Checker, name: str, k: Section) -> KnobConfig:
    for other in ("min", "max", "step"):
        if other in k:
            message = "a knob has either choices or min/max/step, not both"
            c.add(k.key_line(other), k.dotted(other), message)
    choices: list[str | float] = []
    key = k.dotted("choices")
    for index, item in enumerate(c.items(k.node("choices"), key)):
        value = c.typed(
            item, f"{key}[{index}]", "a string or a finite number", _is_choice
        )
        if isinstance(value, str | int | float) and value in choices:
            c.add(line_of(item), f"{key}[{index}]", f"{value!r} is listed twice")
        elif isinstance(value, str | int | float):
            choices.append(value)
    if not choices and not c.items(k.node("choices"), key):
        c.add(k.value_line("choices"), key, "must list at least one choice")
    initial = c.typed(
        k.node("initial"), k.dotted("initial"), "one of the choices", _is_choice
    )
    if "initial" not in k:
        c.missing(k, "initial", " (one of the choices)")
    elif isinstance(initial, str | int | float) and choices and initial not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        message = f"must be one of the choices ({listed}), got {initial!r}"
        c.add(k.value_line("initial"), k.dotted("initial"), message)
    if not isinstance(initial, str | int | float):
        initial = ""
    return KnobConfig(name, None, None, None, initial, tuple(choices))


def _is_choice(value: object) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.isfinite(value)
    return isinstance(value, str)


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


def _processes(c: Checker, items: list[Node]) -> tuple[ProcessConfig, ...]:
    processes: list[ProcessConfig] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(items):
        p = c.section(item, f"processes[{index}]", line_of(item), _PROCESS_KEYS)
        if p is None:
            continue
        name = c.string(p, "name", non_empty, nullable=False)
        if "name" not in p:
            c.missing(p, "name")
        elif name is not None and name in first_line:
            message = f"duplicate process name (first given on line {first_line[name]})"
            c.add(p.value_line("name"), p.dotted("name"), message)
        elif name is not None:
            first_line[name] = p.value_line("name")
        processes.append(
            ProcessConfig(
                name=or_default(name, ""),
                match=_match(c, p),
                interval=or_default(c.duration(p, "interval", positive), 1.0),
                children=c.boolean(p, "children", default=False),
            )
        )
    return tuple(processes)


def _match(c: Checker, p: Section) -> Mapping[str, str | int]:
    kinds = ", ".join(_MATCH_KEYS)
    m = c.section(p.node("match"), p.dotted("match"), p.key_line("match"), _MATCH_KEYS)
    given = [] if m is None else [kind for kind in _MATCH_KEYS if kind in m]
    if "match" not in p:
        c.missing(p, "match", f" (one of {kinds})")
    elif m is not None and len(given) != 1:
        got = f", got {', '.join(given)}" if given else ""
        c.add(
            p.key_line("match"), p.dotted("match"), f"needs exactly one of {kinds}{got}"
        )
    match: dict[str, str | int] = {}
    for kind in given:
        assert m is not None  # noqa: S101 (given is empty when m is None)
        value: str | int | None
        if kind == "pid":
            value = c.integer(m, kind, at_least(1))
        else:
            value = c.string(
                m, kind, regex if kind == "cmdline" else non_empty, nullable=False
            )
        if value is not None:
            match[kind] = value
    return MappingProxyType(match)


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
            if option != "enabled"
        }
        enabled = c.boolean(p, "enabled", default=True)
        if enabled:
            check_plugin_timing(c, p, name, options, plugin_timeout)
        plugins[name] = PluginConfig(name, enabled, MappingProxyType(options))
    return MappingProxyType(plugins)


def _control(c: Checker, s: Section) -> ControlConfig:
    uids: list[int] = []
    key = s.dotted("allow_uids")
    for index, item in enumerate(c.items(s.node("allow_uids"), key)):
        uid = c.typed(item, f"{key}[{index}]", "a uid (an integer)", is_int)
        if isinstance(uid, int) and uid < 0:
            c.add(line_of(item), f"{key}[{index}]", "must not be negative")
        elif isinstance(uid, int):
            uids.append(uid)
    groups = c.strings(s, "allow_groups", non_empty)
    return ControlConfig(allow_uids=tuple(uids), allow_groups=groups)


def _sockets(c: Checker, s: Section) -> SocketsConfig:
    access = or_default(
        c.choice(s, "metrics_access", MetricsAccess), MetricsAccess.PRIVATE
    )
    group = c.string(s, "group", non_empty)
    group_node = s.node("group")
    if access is MetricsAccess.GROUP and (group_node is None or is_null(group_node)):
        message = "group access needs sockets.group (the group that owns the sockets)"
        c.add(s.value_line("metrics_access"), s.dotted("metrics_access"), message)
    return SocketsConfig(metrics_access=access, group=group)


def _ingest(c: Checker, s: Section) -> IngestConfig:
    d = IngestConfig()
    one = at_least(1)
    return IngestConfig(
        max_line_bytes=or_default(
            c.integer(s, "max_line_bytes", one), d.max_line_bytes
        ),
        max_connections=or_default(
            c.integer(s, "max_connections", one), d.max_connections
        ),
        max_datagram_bytes=or_default(
            c.integer(s, "max_datagram_bytes", one), d.max_datagram_bytes
        ),
    )


def _state(c: Checker, s: Section) -> StateConfig:
    d = StateConfig()
    interval = c.duration(s, "checkpoint_interval", non_negative)
    return StateConfig(checkpoint_interval=or_default(interval, d.checkpoint_interval))


def _http(c: Checker, s: Section) -> HttpConfig:
    listen = c.string(s, "listen", _listen_problem)
    return HttpConfig(listen=None if listen is None else _split_listen(listen))


def _split_listen(value: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` as ``(host, port)``; ValueError if not."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        msg = 'write an IPv6 address in brackets, as "[::1]:9464"'
        raise ValueError(msg)
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        msg = f'must be "host:port" (port 0-65535), got {value!r}'
        raise ValueError(msg)
    return host, int(port)


def _listen_problem(value: str) -> str | None:
    try:
        _split_listen(value)
    except ValueError as exc:
        return str(exc)
    return None
