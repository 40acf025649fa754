"""Read composed YAML nodes into checked Python values, recording every problem.

One job: the schema-independent half of configuration validation.  :class:`Checker`
composes the text (``yaml.CSafeLoader`` when available) so that every node keeps its
line, and offers typed readers (number, integer, string, duration, enum, lists,
frozen plugin options) that record a :class:`ConfigProblem` and carry on instead of
raising, so that a file's problems are all reported at once.  :class:`Section` is
one checked mapping: its known keys and where they came from.

Internal to :mod:`perfwarden.config`, which holds the schema and the public API.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TypeAlias, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from perfwarden.config_model import ConfigProblem
from perfwarden.durations import parse_duration

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

_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)
_STR_TAG: Final = "tag:yaml.org,2002:str"
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_MAX_MERGE_DEPTH: Final = 16
#: Characters that cannot appear in a DogStatsD metric name or tag key.
_UNSAFE_NAME: Final = re.compile(r"[:|@#,\s]")

_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)
#: A range check: returns what is wrong with a value, or None when it is fine.
Check: TypeAlias = Callable[[_T], str | None]
_Entries: TypeAlias = dict[str, tuple[Node, Node]]


class _Invalid:
    """Marks a value that was present but wrong (its problem is already recorded)."""


_INVALID: Final = _Invalid()


def is_null(node: Node) -> bool:
    """Whether *node* is YAML ``null`` (``~``, ``null`` or nothing)."""
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def line_of(node: Node) -> int:
    """The 1-based line where *node* starts."""
    mark = node.start_mark
    return 1 if mark is None else mark.line + 1


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _describe(node: Node, value: object = _INVALID) -> str:
    """Say what a node holds, for "must be X, got Y" messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value if len(value) <= 40 else value[:40] + '...'!r})"
    return f"{type(value).__name__} ({node.value!r})"


def _hint(key: str, allowed: Iterable[str]) -> str:
    choices = list(allowed)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6) or [
        choice for choice in choices if len(key) >= 4 and key.lower() in choice
    ]
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; expected one of: {', '.join(choices)}"


class Section:
    """The checked entries of one YAML mapping, with where they came from.

    ``key`` is the mapping's dotted path and ``line`` the line of the key that
    introduced it (where problems about missing keys are reported).
    """

    __slots__ = ("entries", "key", "line")

    def __init__(self, key: str, line: int, entries: _Entries | None = None) -> None:
        self.key = key
        self.line = line
        self.entries: _Entries = {} if entries is None else entries

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def node(self, name: str) -> Node | None:
        """The value node of *name*, or None when absent."""
        entry = self.entries.get(name)
        return None if entry is None else entry[1]

    def key_line(self, name: str) -> int:
        """The line of key *name*, or of this mapping when it is absent."""
        entry = self.entries.get(name)
        return self.line if entry is None else line_of(entry[0])

    def value_line(self, name: str) -> int:
        """The line of the value of *name*, or of this mapping when it is absent."""
        node = self.node(name)
        return self.line if node is None else line_of(node)

    def dotted(self, name: str) -> str:
        """The dotted path of key *name*, for messages."""
        return _join(self.key, name)


class Checker:
    """Collects problems while it turns YAML nodes into checked Python values.

    Readers return None (or the given default) for absent or invalid values; an
    invalid one has its problem recorded in :attr:`problems`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[ConfigProblem] = []
        self._constructor = SafeConstructor()

    def add(self, line: int, key: str, message: str) -> None:
        """Record a problem at *line* about dotted *key*."""
        self.problems.append(ConfigProblem(self.path, line, key, message))

    # -- structure ---------------------------------------------------------------

    def compose(self, text: str | bytes) -> Node | None:
        """Compose *text* into a node tree, or record why it is not a config."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = exc.object[: exc.start].count(b"\n") + 1
                self.add(line, "", f"not UTF-8 (byte {exc.object[exc.start]:#x})")
                return None
        text = text.removeprefix("\ufeff")
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = exc.problem or "syntax error"
            if exc.context and exc.context_mark is not None:
                started = exc.context_mark.line + 1
                message = f"{message} ({exc.context} started on line {started})"
            self.add(
                1 if mark is None else mark.line + 1, "", f"invalid YAML: {message}"
            )
            return None
        except yaml.reader.ReaderError as exc:
            line = text[: int(exc.position)].count("\n") + 1
            self.add(line, "", f"invalid YAML: {exc.reason} (#x{exc.character:04x})")
            return None
        except (yaml.YAMLError, RecursionError) as exc:
            self.add(1, "", f"invalid YAML: {exc}")
            return None
        if root is None or is_null(root):
            self.add(1 if root is None else line_of(root), "", "empty config")
            return None
        return root

    def scalar(self, node: Node, key: str) -> object:
        """Construct a scalar's value; ``_INVALID`` (recorded) for a bad tag."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            self.add(line_of(node), key, f"invalid value: {exc.problem}")
            return _INVALID

    def describe(self, node: Node, key: str) -> str:
        """Say what *node* holds, for "must be X, got Y" messages."""
        value = self.scalar(node, key) if isinstance(node, ScalarNode) else _INVALID
        return _describe(node, value)

    def pairs(self, node: MappingNode, key: str) -> _Entries:
        """A mapping's entries by key, ``<<`` merges resolved.

        Records non-string and duplicate keys.
        """
        entries: _Entries = {}
        self._collect(node, key, entries, depth=0)
        return entries

    def _collect(
        self, node: MappingNode, key: str, entries: _Entries, depth: int
    ) -> None:
        merged: list[MappingNode] = []
        own: _Entries = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                many = isinstance(value_node, SequenceNode)
                for source in value_node.value if many else [value_node]:
                    if isinstance(source, MappingNode):
                        merged.append(source)
                    else:
                        self.add(line_of(source), key, "<< merges only mappings")
            elif not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                got = self.describe(key_node, key)
                self.add(
                    line_of(key_node),
                    key,
                    f"keys must be strings (quote it), got {got}",
                )
            elif (name := str(key_node.value)) in own:
                first = line_of(own[name][0])
                message = f"duplicate key (first given on line {first})"
                self.add(line_of(key_node), _join(key, name), message)
            else:
                own[name] = (key_node, value_node)
        for name, entry in own.items():
            entries.setdefault(name, entry)
        if merged and depth >= _MAX_MERGE_DEPTH:
            self.add(line_of(node), key, "<< merges nest too deeply")
            return
        for source in merged:
            self._collect(source, key, entries, depth + 1)

    def section(
        self, node: Node | None, key: str, line: int, allowed: Iterable[str] | None
    ) -> Section | None:
        """Check that *node* is a mapping (null counts as empty) with known keys.

        *line* is the line of the key that introduced it.  ``allowed=None`` accepts
        any key.  Returns None (recorded) when *node* is not a mapping.
        """
        if node is None or is_null(node):
            return Section(key, line)
        if not isinstance(node, MappingNode):
            got = self.describe(node, key)
            self.add(line_of(node), key, f"must be a mapping, got {got}")
            return None
        entries = self.pairs(node, key)
        if allowed is not None:
            known = tuple(allowed)
            for name in [name for name in entries if name not in known]:
                key_node = entries.pop(name)[0]
                self.add(line_of(key_node), _join(key, name), _hint(name, known))
        return Section(key, line, entries)

    def items(self, node: Node | None, key: str) -> list[Node]:
        """The items of a list node (null counts as empty)."""
        if node is None or is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.add(
                line_of(node), key, f"must be a list, got {self.describe(node, key)}"
            )
            return []
        return list(node.value)

    def missing(self, section: Section, name: str, hint: str = "") -> None:
        """Record that required key *name* is absent from *section*."""
        self.add(section.line, section.dotted(name), f"required key is missing{hint}")

    # -- typed values ------------------------------------------------------------

    def typed(
        self, node: Node | None, key: str, kind: str, accept: Callable[[object], bool]
    ) -> object:
        """*node*'s value if *accept* takes it; None if absent; else ``_INVALID``."""
        if node is None:
            return None
        value = self.scalar(node, key) if isinstance(node, ScalarNode) else _INVALID
        if value is _INVALID and isinstance(node, ScalarNode):
            return _INVALID  # a bad tag, already recorded
        if value is _INVALID or not accept(value):
            self.add(
                line_of(node), key, f"must be {kind}, got {_describe(node, value)}"
            )
            return _INVALID
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
            return None if value is _INVALID else value
        if id(node) in memo:
            if memo[id(node)] is _INVALID:
                self.add(
                    line_of(node), key, "an alias refers to the value that holds it"
                )
                return None
            return memo[id(node)]
        memo[id(node)] = _INVALID  # in progress
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
                    name: self.frozen(value, _join(key, name), memo)
                    for name, (_, value) in entries
                }
            )
        memo[id(node)] = result
        return result


def is_number(value: object) -> bool:
    """Whether *value* is an int or float (a bool is not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: object) -> bool:
    """Whether *value* is an int (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_bool(value: object) -> bool:
    """Whether *value* is a bool."""
    return isinstance(value, bool)


def is_str(value: object) -> bool:
    """Whether *value* is a string."""
    return isinstance(value, str)


def is_duration(value: object) -> bool:
    """Whether *value* may be given to :func:`parse_duration`."""
    return isinstance(value, str) or is_number(value)


# -- range checks: each returns what is wrong with a value, or None ------------------


def at_least(minimum: int) -> Check[int]:
    """A check that an integer is at least *minimum*."""
    return lambda value: None if value >= minimum else f"must be at least {minimum}"


def open_unit(value: float) -> str | None:
    """Check that *value* lies strictly between 0 and 1."""
    return None if 0 < value < 1 else "must be between 0 and 1 (exclusive)"


def positive(value: float) -> str | None:
    """Check that *value* is greater than 0."""
    return None if value > 0 else "must be greater than 0"


def non_negative(value: float) -> str | None:
    """Check that *value* is not negative."""
    return None if value >= 0 else "must not be negative"


def non_empty(value: str) -> str | None:
    """Check that a string is not empty."""
    return None if value else "must not be empty"


def name_problem(value: str) -> str | None:
    """Check that *value* is a DogStatsD-safe name: non-empty, no ``:|@#,`` or space."""
    if not value:
        return "name must not be empty"
    if _UNSAFE_NAME.search(value):
        return "name must not contain whitespace or any of : | @ # ,"
    return None


def tag_key(value: str) -> str | None:
    """Check that *value* can be a DogStatsD tag key."""
    problem = name_problem(value)
    return None if problem is None else problem.replace("name", "tag key", 1)


def regex(value: str) -> str | None:
    """Check that *value* is a non-empty, valid regular expression."""
    if not value:
        return "must not be empty"
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return None


def or_default(value: _T | None, default: _T) -> _T:
    """*value*, or *default* when it is None."""
    return default if value is None else value
