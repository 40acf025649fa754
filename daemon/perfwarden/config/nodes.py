"""Read composed YAML nodes into checked Python values, recording every problem.

One job: the schema-independent half of configuration validation.  :class:`Checker`
offers typed readers (number, integer, string, duration, enum, lists, frozen plugin
options) that record a :class:`ConfigProblem` and carry on instead of raising, so
that a file's problems are all reported at once.  It builds on
:class:`~perfwarden.config.yaml_tree.StructureChecker`, which composes the text so that
every node keeps its line and checks mappings and lists (:class:`Section` is one
checked mapping); the value checks the readers apply (``is_number``, ``positive``,
``name_problem`` ...) are in :mod:`perfwarden.config.checks`.  This module
re-exports both, so that the schema modules import every reading name from here.

Internal to the configuration: :mod:`perfwarden.config.load` (the public API) and the
schema modules it composes (``config_knobs``, ``config_runtime``, ``config_plugins``).
"""

from __future__ import annotations

import difflib
import math
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from perfwarden.config.checks import (
    Check,
    at_least,
    is_bool,
    is_duration,
    is_int,
    is_number,
    is_str,
    name_problem,
    non_empty,
    non_negative,
    open_unit,
    or_default,
    positive,
    regex,
    tag_key,
)
from perfwarden.config.durations import parse_duration
from perfwarden.config.yaml_tree import (
    INVALID,
    Section,
    StructureChecker,
    describe_node,
    is_null,
    join_key,
    line_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Check",
    "Checker",
    "Section",
    "at_least",
    "is_bool",
    "is_duration",
    "is_int",
    "is_null",
    "is_number",
    "is_str",
    "line_of",
    "name_problem",
    "non_empty",
    "non_negative",
    "open_unit",
    "or_default",
    "positive",
    "regex",
    "tag_key",
]

_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


class Checker(StructureChecker):
    """Collects problems while it turns YAML nodes into checked Python values.

    Readers return None (or the given default) for absent or invalid values; an
    invalid one has its problem recorded in :attr:`problems`.
    """

    # -- typed values ------------------------------------------------------------

    def typed(
        self, node: Node | None, key: str, kind: str, accept: Callable[[object], bool]
    ) -> object:
        """*node*'s value if *accept* takes it; None if absent; else ``INVALID``."""
        if node is None:
            return None
        value = self.scalar(node, key) if isinstance(node, ScalarNode) else INVALID
        if value is INVALID and isinstance(node, ScalarNode):
            return INVALID  # a bad tag, already recorded
        if value is INVALID or not accept(value):
            self.add(
                line_of(node), key, f"must be {kind}, got {describe_node(node, value)}"
            )
            return INVALID
        return value

    def checked(
        self, section: Section, name: str, value: _T, check: Check[_T] | None
    ) -> _T | None:
        """*value* if *check* passes it, else None (recorded at *name*)."""
        if check is not None and (message := check(value)) is not None:
            self.add(section.value_line(name), section.dotted(name), message)
            return None
        return value

    def number(
        self, section: Section, name: str, check: Check[float] | None = None
    ) -> float | None:
        """A finite number (a bool is not one); an int stays an int."""
        value = self.typed(
            section.node(name), section.dotted(name), "a number", is_number
        )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return self.checked(
                section, name, value, lambda _: "must be a finite number"
            )
        return self.checked(section, name, value, check)

    def integer(self, section: Section, name: str, check: Check[int]) -> int | None:
        """An int (a bool is not one) that passes *check*."""
        value = self.typed(
            section.node(name), section.dotted(name), "an integer", is_int
        )
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return self.checked(section, name, value, check)

    def boolean(self, section: Section, name: str, *, default: bool) -> bool:
        """``true`` or ``false``; *default* when absent or invalid."""
        value = self.typed(
            section.node(name), section.dotted(name), "true or false", is_bool
        )
        return value if isinstance(value, bool) else default

    def string(
        self,
        section: Section,
        name: str,
        check: Check[str] | None = None,
        *,
        nullable: bool = True,
    ) -> str | None:
        """A string that passes *check*; None also for null when *nullable*."""
        node = section.node(name)
        if node is not None and nullable and is_null(node):
            return None
        value = self.typed(node, section.dotted(name), "a string", is_str)
        return (
            self.checked(section, name, value, check)
            if isinstance(value, str)
            else None
        )

    def duration(
        self, section: Section, name: str, check: Check[float]
    ) -> float | None:
        """A duration ("5s", "250ms", a number of seconds) that passes *check*."""
        key, node = section.dotted(name), section.node(name)
        value = self.typed(node, key, 'a duration such as "5s"', is_duration)
        if node is None or not isinstance(value, str | int | float):
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.add(line_of(node), key, str(exc))
            return None
        return self.checked(section, name, seconds, check)

    def choice(self, section: Section, name: str, enum: type[_E]) -> _E | None:
        """One of *enum*'s values, with a "did you mean" hint when it is not."""
        allowed = [member.value for member in enum]
        kind = f"one of {', '.join(allowed)}"
        value = self.typed(section.node(name), section.dotted(name), kind, is_str)
        if not isinstance(value, str):
            return None
        if value not in allowed:
            close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = f"must be {kind}, got {value!r}{hint}"
            self.add(section.value_line(name), section.dotted(name), message)
            return None
        return enum(value)

    def strings(
        self, section: Section, name: str, check: Check[str]
    ) -> tuple[str, ...]:
        """A list of distinct strings, each passing *check*."""
        key = section.dotted(name)
        result: list[str] = []
        for index, item in enumerate(self.items(section.node(name), key)):
            value = self.typed(item, f"{key}[{index}]", "a string", is_str)
            if not isinstance(value, str):
                continue
            message = check(value)
            if message is None and value in result:
                message = f"{value!r} is listed twice"
            if message is not None:
                self.add(line_of(item), f"{key}[{index}]", message)
            else:
                result.append(value)
        return tuple(result)

    def frozen(
        self, node: Node, key: str, memo: dict[int, object] | None = None
    ) -> object:
        """Plugin option *node* as an immutable value (read-only mappings, tuples).

        Aliases are converted once (*memo*), so an alias bomb costs nothing; an alias
        inside its own anchor is rejected.
        """
        memo = {} if memo is None else memo
        if isinstance(node, ScalarNode):
            value = self.scalar(node, key)
            return None if value is INVALID else value
        if id(node) in memo:
            if memo[id(node)] is INVALID:
                self.add(
                    line_of(node), key, "an alias refers to the value that holds it"
                )
                return None
            return memo[id(node)]
        memo[id(node)] = INVALID  # in progress
        result: object = None
        if isinstance(node, SequenceNode):
            items = enumerate(node.value)
            result = tuple(
                self.frozen(item, f"{key}[{index}]", memo) for index, item in items
            )
        elif isinstance(node, MappingNode):
            entries = self.pairs(node, key).items()
            result = MappingProxyType(
                {
                    name: self.frozen(value, join_key(key, name), memo)
                    for name, (_, value) in entries
                }
            )
        memo[id(node)] = result
        return result
