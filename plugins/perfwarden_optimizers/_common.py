"""Shared helpers of the built-in optimizers: option parsing, knob steps, JSON.

Nothing here is part of the plugin contract (that is :mod:`perfwarden.plugin_api`);
a third-party plugin should not import this module. It exists so the seven
built-ins parse their options, step their knobs and serialise violations the same
way.

Options arrive as the frozen mapping the config produced: lists are tuples, nested
mappings are read-only mappings. Every helper raises :class:`OptionError` (a
``ValueError`` naming the plugin and the option) on a bad value, so a mistyped
option fails the plugin at load time (``plugin.failed``) instead of at the first
violation.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final, overload

from perfwarden.config.durations import parse_duration
from perfwarden.plugin_api import PluginNotConfigured

if TYPE_CHECKING:
    from perfwarden.plugin_api import (
        KnobSpec,
        KnobValue,
        OptimizerContext,
        Violation,
    )

__all__ = [
    "COMMON_OPTIONS",
    "OptionError",
    "bounded",
    "call_limit",
    "check_known",
    "current_number",
    "opt_argv",
    "opt_float",
    "opt_int",
    "opt_metrics",
    "opt_seconds",
    "opt_str",
    "opt_str_mapping",
    "propose_value",
    "relative_change",
    "violation_json",
    "violation_payload",
]

#: Options every knob-turning built-in accepts.
COMMON_OPTIONS: Final = frozenset({"knob", "metrics", "step", "max_estimate"})


class OptionError(ValueError):
    """A plugin option is missing, unknown or of the wrong type."""

    def __init__(self, plugin: str, option: str, message: str) -> None:
        super().__init__(f"{plugin}: option {option!r}: {message}")
        self.plugin = plugin
        self.option = option


class MissingOption(OptionError, PluginNotConfigured):
    """A required option is absent: the plugin is installed but not configured."""


def check_known(plugin: str, options: Mapping[str, object], known: set[str]) -> None:
    """Reject option keys the plugin does not know (a typo must not pass silently)."""
    for key in options:
        if key not in known:
            allowed = ", ".join(sorted(known))
            raise OptionError(plugin, key, f"unknown option (known: {allowed})")


def opt_str(
    plugin: str, options: Mapping[str, object], key: str, default: str | None
) -> str:
    """A non-empty string option; required when ``default`` is ``None``."""
    value = options.get(key, default)
    if value is None:
        raise MissingOption(plugin, key, "is required")
    if not isinstance(value, str) or not value:
        raise OptionError(plugin, key, f"must be a non-empty string, not {value!r}")
    return value


def opt_float(
    plugin: str,
    options: Mapping[str, object],
    key: str,
    default: float,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_inclusive: bool = True,
) -> float:
    """A finite number option within ``[low, high]`` (or ``(low, high]``)."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(plugin, key, f"must be a number, not {value!r}")
    number = float(value)
    too_low = number < low if low_inclusive else number <= low
    if not math.isfinite(number) or too_low or number > high:
        opening = "[" if low_inclusive else "("
        raise OptionError(
            plugin, key, f"must lie in {opening}{low}, {high}]: {value!r}"
        )
    return number


@overload
def opt_seconds(
    plugin: str,
    options: Mapping[str, object],
    key: str,
    default: float,
    *,
    zero: bool = False,
) -> float: ...
@overload
def opt_seconds(
    plugin: str,
    options: Mapping[str, object],
    key: str,
    default: None,
    *,
    zero: bool = False,
) -> float | None: ...
def opt_seconds(
    plugin: str,
    options: Mapping[str, object],
    key: str,
    default: float | None,
    *,
    zero: bool = False,
) -> float | None:
    """A duration option: seconds as a number, or ``"250ms"``, ``"5s"``.

    Written as the config writes durations; greater than 0 unless ``zero``;
    ``default`` (possibly ``None``, for "no limit of its own") when absent.
    """
    if key not in options:
        return default
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise OptionError(plugin, key, f"must be a duration such as 5s, not {value!r}")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise OptionError(plugin, key, str(exc)) from None
    if seconds <= 0 and not zero:
        raise OptionError(plugin, key, f"must be greater than 0: {value!r}")
    return seconds


def call_limit(own: float | None, left: float) -> tuple[float | None, str]:
    """How long the next wait may take, and why: the plugin's own ``timeout``
    option or the call's deadline (``left``, from ``time_left()``), whichever is
    shorter. ``None`` when neither limits it (outside a daemon call, no option).
    """
    if own is not None and own <= left:
        return own, "its timeout option"
    if math.isinf(left):
        return None, "no limit"
    return left, "the call's deadline"


def opt_int(
    plugin: str, options: Mapping[str, object], key: str, default: int, *, low: int = 0
) -> int:
    """An integer option of at least ``low``."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise OptionError(plugin, key, f"must be an integer >= {low}, not {value!r}")
    return value


def _str_items(plugin: str, key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise OptionError(plugin, key, f"must be a list of strings, not {value!r}")
    items = tuple(value)
    if not all(isinstance(item, str) and item for item in items):
        raise OptionError(
            plugin, key, f"must be a list of non-empty strings: {value!r}"
        )
    return tuple(str(item) for item in items)


def opt_metrics(
    plugin: str,
    options: Mapping[str, object],
    default: frozenset[str],
    key: str = "metrics",
) -> frozenset[str]:
    """A set of metric names (by default the ``metrics`` option, the metrics
    ``handles()`` answers yes for)."""
    if key not in options:
        return default
    return frozenset(_str_items(plugin, key, options[key]))


def opt_argv(plugin: str, options: Mapping[str, object], key: str) -> tuple[str, ...]:
    """A required, non-empty argv list (never a shell string)."""
    if key not in options:
        raise MissingOption(plugin, key, "is required (an argv list)")
    argv = _str_items(plugin, key, options[key])
    if not argv:
        raise OptionError(plugin, key, "must not be empty")
    return argv


def opt_str_mapping(
    plugin: str, options: Mapping[str, object], key: str
) -> dict[str, str]:
    """A mapping of strings to strings (empty when absent)."""
    value = options.get(key, {})
    if not isinstance(value, Mapping):
        raise OptionError(plugin, key, f"must be a mapping, not {value!r}")
    result: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not isinstance(item, str):
            raise OptionError(plugin, key, f"{name!r}: keys and values must be strings")
        result[name] = item
    return result


def current_number(
    context: OptimizerContext, knob: str
) -> tuple[KnobSpec, float] | None:
    """The numeric knob's spec and current value, or ``None`` when the knob is not
    declared or is a choice knob (the built-ins only turn numeric knobs)."""
    spec = context.specs.get(knob)
    if spec is None or spec.choices is not None:
        return None
    value = context.knobs.get(knob, spec.initial)
    if isinstance(value, str | bool):
        return None
    return spec, float(value)


def propose_value(spec: KnobSpec, current: float, wanted: float) -> KnobValue | None:
    """``wanted`` clamped to the spec, or ``None`` when that would not move the knob
    (it is already at its bound, or the step rounds the change away)."""
    value = spec.clamp(wanted)
    if isinstance(value, str) or math.isclose(float(value), current, abs_tol=1e-12):
        return None
    return value


def relative_change(old: float, new: float) -> float:
    """``|new - old| / |old|``; when ``old`` is 0 the change counts as whole (1)."""
    if old == 0:
        return 1.0 if new != old else 0.0
    return abs(new - old) / abs(old)


def bounded(estimate: float, cap: float) -> float:
    """An estimate forced into ``[0, cap]`` (and so into the contract's ``[0, 1]``)."""
    if not math.isfinite(estimate):
        return 0.0
    return min(max(estimate, 0.0), cap, 1.0)


def _finite(value: object) -> object:
    """JSON has no NaN or infinity: such floats become ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def violation_payload(violation: Violation) -> dict[str, object]:
    """The violation as plain JSON-ready data (tags as a dict, stats as a dict,
    ``observed`` as a list, non-finite floats as ``None``, plus the ``gap``)."""
    data: dict[str, object] = {}
    for field in dataclasses.fields(violation):
        value = getattr(violation, field.name)
        if field.name == "tags":
            value = dict(value)
        elif field.name == "stats":
            value = {k: _finite(v) for k, v in dataclasses.asdict(value).items()}
        elif field.name == "observed":
            value = [_finite(v) for v in value]
        data[field.name] = _finite(value)
    data["gap"] = _finite(violation.gap)
    return data


def violation_json(violation: Violation) -> str:
    """:func:`violation_payload` encoded as compact JSON."""
    return json.dumps(
        violation_payload(violation), separators=(",", ":"), allow_nan=False
    )
