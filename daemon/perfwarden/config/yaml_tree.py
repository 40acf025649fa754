"""Compose configuration YAML into nodes that keep their lines, and walk them.

One job: the structure half of reading a config file.  :class:`StructureChecker`
composes the text (``yaml.CSafeLoader`` when available) so that every node keeps its
line, resolves ``<<`` merges, and checks mappings (string keys, no duplicates, only
known keys, with a "did you mean" hint) and lists, recording a
:class:`~perfwarden.config.model.ConfigProblem` and carrying on instead of raising.
:class:`Section` is one checked mapping: its known keys and where they came from.
The typed readers built on top are :class:`perfwarden.config.nodes.Checker`.

Internal to the configuration modules, which import these names from
:mod:`perfwarden.config.nodes`.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Final, TypeAlias

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from perfwarden.config.dropins import FileMark
from perfwarden.config.model import ConfigProblem

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "INVALID",
    "FileLine",
    "Invalid",
    "Section",
    "StructureChecker",
    "describe_node",
    "is_null",
    "join_key",
    "line_of",
]

_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)
_STR_TAG: Final = "tag:yaml.org,2002:str"
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_MAX_MERGE_DEPTH: Final = 16

_Entries: TypeAlias = dict[str, tuple[Node, Node]]


class Invalid:
    """Marks a value that was present but wrong (its problem is already recorded)."""


INVALID: Final = Invalid()


def is_null(node: Node) -> bool:
    """Whether *node* is YAML ``null`` (``~``, ``null`` or nothing)."""
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


class FileLine(int):
    """A line number of a drop-in file: :meth:`StructureChecker.add` reports the
    problem in ``path``, not in the main file."""

    path: str

    def __new__(cls, line: int, path: str) -> FileLine:
        self = super().__new__(cls, line)
        self.path = path
        return self


def line_of(node: Node) -> int:
    """The 1-based line where *node* starts (a :class:`FileLine` in a drop-in)."""
    mark = node.start_mark
    if mark is None:
        return 1
    if isinstance(mark, FileMark):
        return FileLine(mark.line + 1, mark.name)
    return mark.line + 1


def join_key(parent: str, key: str) -> str:
    """The dotted path of *key* inside *parent* (just *key* at the top level)."""
    return f"{parent}.{key}" if parent else key


def describe_node(node: Node, value: object = INVALID) -> str:
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
        return join_key(self.key, name)


class StructureChecker:
    """Collects problems while it composes YAML and walks its mappings and lists.

    The base of :class:`perfwarden.config.nodes.Checker`, which adds the typed
    readers; every problem goes to :attr:`problems` through :meth:`add`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[ConfigProblem] = []
        self._constructor = SafeConstructor()

    def add(self, line: int, key: str, message: str) -> None:
        """Record a problem at *line* (of a drop-in's file for a
        :class:`FileLine`) about dotted *key*."""
        path = line.path if isinstance(line, FileLine) else self.path
        self.problems.append(ConfigProblem(path, int(line), key, message))

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
        """Construct a scalar's value; ``INVALID`` (recorded) for a bad tag."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            self.add(line_of(node), key, f"invalid value: {exc.problem}")
            return INVALID

    def describe(self, node: Node, key: str) -> str:
        """Say what *node* holds, for "must be X, got Y" messages."""
        value = self.scalar(node, key) if isinstance(node, ScalarNode) else INVALID
        return describe_node(node, value)

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
                self.add(line_of(key_node), join_key(key, name), message)
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
                self.add(line_of(key_node), join_key(key, name), _hint(name, known))
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
