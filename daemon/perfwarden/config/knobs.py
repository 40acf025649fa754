"""The schema of the ``knobs`` section: the values the application reads back and
the optimizer plugins turn, each numeric (``min``, ``max``, ``step``, ``initial``)
or a choice (``choices``, ``initial``).

:func:`knobs_section` reads the section through a
:class:`~perfwarden.config.nodes.Checker`, which collects every problem with its
line; :mod:`perfwarden.config.load` composes it with the other sections.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from perfwarden.config.model import KnobConfig
from perfwarden.config.nodes import (
    Checker,
    Section,
    line_of,
    name_problem,
    or_default,
    positive,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["KNOB_KEYS", "knobs_section"]

KNOB_KEYS: Final = ("min", "max", "step", "initial", "choices")


def knobs_section(c: Checker, section: Section) -> Mapping[str, KnobConfig]:
    knobs: dict[str, KnobConfig] = {}
    for name, (key_node, value_node) in section.entries.items():
        key = section.dotted(name)
        if (message := name_problem(name)) is not None:
            c.add(line_of(key_node), key, message)
        k = c.section(value_node, key, line_of(key_node), KNOB_KEYS)
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
