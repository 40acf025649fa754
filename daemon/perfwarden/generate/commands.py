"""The CLI as data: commands, their options and positionals, read from argparse.

One job: turn the :class:`argparse.ArgumentParser` of :func:`perfwarden.cli.
build_parser` into frozen :class:`Command` records that the completion and man page
writers walk, so that they never touch argparse's private attributes themselves.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Final

from perfwarden.cli import build_parser

__all__ = ["Command", "Option", "Positional", "read_cli"]

#: Metavars (and dests) whose values are paths, completed with file names.
_FILE_WORDS: Final = frozenset({"PATH", "FILE", "CONFIG", "path", "config"})
_DIR_WORDS: Final = frozenset({"DIR", "socket_dir", "state_dir"})


@dataclass(frozen=True, slots=True)
class Option:
    """``--name VALUE`` (or a flag when ``takes_value`` is false)."""

    flags: tuple[str, ...]
    help: str
    takes_value: bool
    metavar: str
    choices: tuple[str, ...]
    completes: str  # "file", "dir", "choices" or "" (nothing to offer)


@dataclass(frozen=True, slots=True)
class Positional:
    """A positional argument; ``many`` for ``nargs`` ``*``/``+``/REMAINDER."""

    name: str
    help: str
    optional: bool
    many: bool
    completes: str  # "file", "command" (REMAINDER: a program) or ""


@dataclass(frozen=True, slots=True)
class Command:
    """One (sub)command: its path from the top (``("knobs", "set")``), help,
    options, positionals and subcommands."""

    path: tuple[str, ...]
    help: str
    description: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    subcommands: tuple[Command, ...]

    @property
    def name(self) -> str:
        """The last word of the path ("perfwarden" for the top)."""
        return self.path[-1] if self.path else "perfwarden"

    def walk(self) -> list[Command]:
        """This command and every command below it, depth first."""
        found = [self]
        for sub in self.subcommands:
            found.extend(sub.walk())
        return found


def read_cli() -> Command:
    """The ``perfwarden`` command tree."""
    parser = build_parser()
    return _command(parser, (), "", parser.description or "")


def _command(
    parser: argparse.ArgumentParser, path: tuple[str, ...], help_text: str, desc: str
) -> Command:
    options: list[Option] = []
    positionals: list[Positional] = []
    subcommands: list[Command] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {
                choice.dest: choice.help or "" for choice in action._choices_actions
            }
            for name, sub in action.choices.items():
                subcommands.append(
                    _command(
                        sub, (*path, name), helps.get(name, ""), sub.description or ""
                    )
                )
        elif action.option_strings:
            options.append(_option(action))
        else:
            positionals.append(_positional(action))
    return Command(
        path,
        help_text,
        desc,
        tuple(options),
        tuple(positionals),
        tuple(subcommands),
    )


def _option(action: argparse.Action) -> Option:
    takes_value = action.nargs != 0
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if takes_value and not metavar:
        metavar = action.dest.upper()
    choices = tuple(str(c) for c in action.choices) if action.choices else ()
    if choices:
        completes = "choices"
    elif metavar in _FILE_WORDS or action.dest in _FILE_WORDS:
        completes = "file"
    elif metavar in _DIR_WORDS or action.dest in _DIR_WORDS:
        completes = "dir"
    else:
        completes = ""
    return Option(
        tuple(action.option_strings),
        _help(action),
        takes_value,
        metavar if takes_value else "",
        choices,
        completes if takes_value else "",
    )


def _positional(action: argparse.Action) -> Positional:
    name = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    if action.nargs == argparse.REMAINDER:
        completes = "command"
    elif name in _FILE_WORDS or action.dest in _FILE_WORDS:
        completes = "file"
    else:
        completes = ""
    return Positional(
        name,
        _help(action),
        optional=action.nargs in {"?", "*", argparse.REMAINDER},
        many=action.nargs in {"*", "+", argparse.REMAINDER},
        completes=completes,
    )


def _help(action: argparse.Action) -> str:
    if action.help in (None, argparse.SUPPRESS):
        return ""
    return " ".join(str(action.help).split())
