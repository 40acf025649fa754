"""Shell completion scripts for bash, zsh and fish, written from the command tree.

Each script completes subcommand names (with their help in zsh and fish), the
options of the command typed so far, the values of options with choices
(``--log-level``, ``--format``, ``send --type``), file names for paths and
directory names for directories, and a program name after ``time --``. Nothing
calls back into perfwarden at completion time: the scripts are plain text,
generated once (``python -m perfwarden.generate share``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.generate.commands import Command, Option

__all__ = ["SHELLS", "bash", "fish", "zsh"]


def _header(name: str) -> list[str]:
    return [
        f"# perfwarden {name} completion, generated from the argparse parser by",
        "# `python -m perfwarden.generate share`; do not edit.",
    ]


def bash(top: Command) -> str:
    """A bash completion script: ``complete -F _perfwarden perfwarden``."""
    commands = top.walk()
    value_options = [
        f'            "{" ".join(c.path)}|{flag}") skip=1 ;;'
        for c in commands
        for option in c.options
        if option.takes_value
        for flag in option.flags
    ]
    descend = [
        f'            "{" ".join(c.path)}|{sub.name}") path="{" ".join(sub.path)}" ;;'
        for c in commands
        for sub in c.subcommands
    ]
    values: list[str] = []
    for c in commands:
        for option in c.options:
            if not option.takes_value:
                continue
            reply = {
                "choices": f'compgen -W "{" ".join(option.choices)}" -- "$cur"',
                "file": 'compgen -f -- "$cur"',
                "dir": 'compgen -d -- "$cur"',
            }.get(option.completes, "")
            line = f"COMPREPLY=($({reply}))" if reply else "COMPREPLY=()"
            path = " ".join(c.path)
            values.extend(
                f'        "{path}|{flag}") {line}; return ;;' for flag in option.flags
            )
    words: list[str] = []
    for c in commands:
        listed = [flag for option in c.options for flag in option.flags]
        listed += [sub.name for sub in c.subcommands]
        extra = ""
        if any(p.completes == "file" for p in c.positionals):
            extra = ' $(compgen -f -- "$cur")'
        if any(p.completes == "command" for p in c.positionals):
            extra = ' $(compgen -c -- "$cur")'
        words.append(
            f'        "{" ".join(c.path)}") COMPREPLY=($(compgen -W '
            f'"{" ".join(listed)}" -- "$cur"){extra}) ;;'
        )
    lines = [
        *_header("bash"),
        "_perfwarden() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local path="" word skip=0 i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        word="${COMP_WORDS[i]}"',
        "        if ((skip)); then skip=0; continue; fi",
        "        [[ $word == -- ]] && break",
        '        case "$path|$word" in',
        *value_options,
        *descend,
        "        esac",
        "    done",
        '    case "$path|$prev" in',
        *values,
        "    esac",
        '    case "$path" in',
        *words,
        "    esac",
        "}",
        "complete -F _perfwarden perfwarden",
        "",
    ]
    return "\n".join(lines)


def zsh(top: Command) -> str:
    """A zsh completion function (``#compdef perfwarden``), one per command."""
    lines = [
        "#compdef perfwarden",
        *_header("zsh"),
        "",
    ]
    for command in reversed(top.walk()):
        lines.extend(_zsh_function(command))
        lines.append("")
    lines.append('_perfwarden "$@"')
    lines.append("")
    return "\n".join(lines)


def _zsh_name(command: Command) -> str:
    return "_perfwarden" + "".join(
        f"_{part.replace('-', '_')}" for part in command.path
    )


def _zsh_function(command: Command) -> list[str]:
    specs = [_zsh_option(option) for option in command.options]
    for index, positional in enumerate(command.positionals, start=1):
        action = {"file": "_files", "command": "_command_names -e"}.get(
            positional.completes, " "
        )
        position = "*" if positional.many else str(index)
        optional = ":" if positional.optional and not positional.many else ""
        label = _zsh_escape(positional.help or positional.name)
        specs.append(f"'{position}:{optional}{label}:{action}'")
    body = [f"{_zsh_name(command)}() {{"]
    if command.subcommands:
        body.append("    local curcontext=$curcontext state line")
        specs += ["'1:command:->command'", "'*::argument:->argument'"]
    body.append("    _arguments -C \\")
    body.extend(f"        {spec} \\" for spec in specs)
    body.append("        && return")
    if command.subcommands:
        described = " ".join(
            f"'{sub.name}:{_zsh_escape(sub.help)}'" for sub in command.subcommands
        )
        body += [
            "    case $state in",
            "        command)",
            f"            local -a commands=({described})",
            "            _describe command commands ;;",
            "        argument)",
            f'            local function="{_zsh_name(command)}_${{line[1]//-/_}}"',
            "            (( $+functions[$function] )) && $function ;;",
            "    esac",
        ]
    body.append("}")
    return body


def _zsh_option(option: Option) -> str:
    text = _zsh_escape(option.help)
    if len(option.flags) > 1:
        names = "{" + ",".join(option.flags) + "}"
        exclusive = "'(" + " ".join(option.flags) + ")'"
    else:
        names, exclusive = option.flags[0], ""
    if not option.takes_value:
        return f"{exclusive}{names}'[{text}]'"
    action = {
        "choices": "(" + " ".join(option.choices) + ")",
        "file": "_files",
        "dir": "_files -/",
    }.get(option.completes, " ")
    return f"{exclusive}{names}'[{text}]:{_zsh_escape(option.metavar)}:{action}'"


def _zsh_escape(text: str) -> str:
    out = text.replace("\\", "\\\\").replace("'", "'\\''")
    for char in "[]:":
        out = out.replace(char, "\\" + char)
    return out


def fish(top: Command) -> str:
    """A fish completion file (``complete -c perfwarden ...`` lines)."""
    lines = [
        *_header("fish"),
        "complete -c perfwarden -f",
    ]
    for command in top.walk():
        when = f"complete -c perfwarden -n {_fish_quote(_fish_condition(command))}"
        lines.extend(
            f"{when} -a {sub.name} -d {_fish_quote(sub.help)}"
            for sub in command.subcommands
        )
        lines.extend(f"{when} {_fish_option(option)}" for option in command.options)
        for positional in command.positionals:
            if positional.completes == "file":
                lines.append(f"{when} -F")
            elif positional.completes == "command":
                lines.append(f"{when} -a '(__fish_complete_command)'")
    lines.append("")
    return "\n".join(lines)


def _fish_condition(command: Command) -> str:
    if not command.path:
        return "__fish_use_subcommand"
    seen = " && ".join(f"__fish_seen_subcommand_from {part}" for part in command.path)
    deeper = [sub.name for sub in command.subcommands]
    if deeper:
        seen += f" && not __fish_seen_subcommand_from {' '.join(deeper)}"
    return seen


def _fish_option(option: Option) -> str:
    parts = []
    for flag in option.flags:
        if flag.startswith("--"):
            parts.append(f"-l {flag[2:]}")
        else:
            parts.append(f"-s {flag[1:]}")
    if option.takes_value:
        if option.completes == "choices":
            parts.append(f"-x -a {_fish_quote(' '.join(option.choices))}")
        elif option.completes == "file":
            parts.append("-r -F")
        elif option.completes == "dir":
            parts.append("-x -a '(__fish_complete_directories)'")
        else:
            parts.append("-x")
    if option.help:
        parts.append(f"-d {_fish_quote(option.help)}")
    return " ".join(parts)


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


SHELLS: Final[dict[str, Callable[[Command], str]]] = {
    "bash": bash,
    "zsh": zsh,
    "fish": fish,
}
