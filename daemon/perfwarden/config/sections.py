"""The schema of the statistics, metrics, optimizer and plugins sections.

Each function reads one section through a :class:`~perfwarden.config.nodes.Checker`,
which records every problem with its line, and returns the section's record (or the
default where a value was wrong). The cross-field rules live here too: threshold
order by bound, a series reported ``no_data`` before it expires, and the built-in
``exec``/``webhook`` timings against ``plugin_timeout``
(:mod:`perfwarden.config.plugins`).
"""

from __future__ import annotations

import itertools
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from yaml.nodes import ScalarNode

from perfwarden.config.evaluation import (
    check_reference,
    hold,
)
from perfwarden.config.model import (
    Bound,
    EvaluationConfig,
    Isolation,
    MetricConfig,
    OptimizerConfig,
    OptimizerMode,
    PluginConfig,
    StatisticsConfig,
)
from perfwarden.config.nodes import (
    Checker,
    Section,
    at_least,
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

if TYPE_CHECKING:
    from collections.abc import Mapping


__all__ = [
    "OPTIMIZER_KEYS",
    "PLUGIN_SETTINGS",
    "STATISTICS_KEYS",
    "check_expiry",
    "metrics_section",
    "optimizer_section",
    "plugins_section",
    "statistics_section",
]

_METRIC_KEYS: Final = (
    "unit", "description", "bound", "target", "warning", "critical", "for",
    "window", "optimizers", "guard", "group_by", "expire_after",
)  # fmt: skip
_THRESHOLDS: Final = ("target", "warning", "critical")
STATISTICS_KEYS: Final = (
    "confidence_level", "window", "min_samples", "max_series", "expire_after",
    "max_memory_mb",
)  # fmt: skip
OPTIMIZER_KEYS: Final = (
    "validation_samples", "significance", "cooldown", "plugin_timeout", "max_failures",
    "mode", "max_actions_per_hour", "validation_timeout", "concurrent_actions",
    "fleet_prior_weight",
)  # fmt: skip
_BOOL_TAG: Final = "tag:yaml.org,2002:bool"


def statistics_section(c: Checker, s: Section) -> StatisticsConfig:
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


def check_expiry(
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


def metrics_section(
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


def optimizer_section(c: Checker, s: Section) -> OptimizerConfig:
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
        fleet_prior_weight=or_default(
            c.number(s, "fleet_prior_weight", _prior_weight), d.fleet_prior_weight
        ),
    )


def _prior_weight(value: float) -> str | None:
    """Check a fleet prior's weight: above 0, at most 10 of this host's trials."""
    return None if 0 < value <= 10 else "must be greater than 0 and at most 10"


#: Keys of ``plugins.NAME`` that are the daemon's, not the plugin's options.
PLUGIN_SETTINGS: Final = frozenset(
    {"enabled", "isolation", "memory_limit_mb", "cpu_limit"}
)


def plugins_section(
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
