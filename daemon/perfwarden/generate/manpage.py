"""The ``perfwarden(1)`` man page, in roff (man macros), written from the command tree.

The page lists every command with its synopsis, help and options, then the
environment variables, files and exit status that the README and docs/ describe.
No date in the header, so that the output depends on the parser and the version
only (the test that keeps the checked-in page current would otherwise fail daily).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from perfwarden import __version__

if TYPE_CHECKING:
    from perfwarden.generate.commands import Command, Option, Positional

__all__ = ["manpage"]

_ENVIRONMENT: Final = (
    (
        "PERFWARDEN_SOCKET_DIR",
        "The socket directory, for the daemon and its clients (before "
        "/run/perfwarden and the per-user default).",
    ),
    ("PERFWARDEN_STATE_DIR", "The state directory (state.db, knobs.json)."),
    ("PERFWARDEN_CONFIG", "The configuration file, when --config is not given."),
    (
        "RUNTIME_DIRECTORY, STATE_DIRECTORY, CONFIGURATION_DIRECTORY",
        "Set by systemd for the service: the daemon's own directories. Clients "
        "never read RUNTIME_DIRECTORY or STATE_DIRECTORY (in an application that is "
        "a service they name the application's directories).",
    ),
    (
        "XDG_RUNTIME_DIR, XDG_STATE_HOME, XDG_CONFIG_HOME",
        "The per-user defaults: sockets, state and configuration.",
    ),
    (
        "JOURNAL_STREAM",
        "When it names the stream stdout is, log lines carry syslog priorities "
        "for journald.",
    ),
    ("PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD", "1: load no optimizer plugin."),
)
_FILES: Final = (
    (
        "/etc/perfwarden/perfwarden.yaml",
        "The system configuration (then $XDG_CONFIG_HOME/perfwarden/perfwarden.yaml, "
        "then the packaged default).",
    ),
    (
        "/etc/perfwarden/conf.d/*.yaml",
        "Drop-ins beside the configuration file, merged in name order.",
    ),
    (
        "/run/perfwarden/",
        "The system daemon's sockets: metrics.sock, metrics.stream.sock, control.sock.",
    ),
    ("/var/lib/perfwarden/", "The system daemon's state: state.db, knobs.json."),
)
_EXIT_STATUS: Final = (
    ("0", "Success."),
    ("1", "Failure; a message says why (an invalid config lists every problem)."),
    ("2", "Usage error."),
    ("3", "The daemon did not answer."),
)


def manpage(top: Command) -> str:
    """The whole page."""
    lines = [
        '.TH PERFWARDEN 1 "" "perfwarden ' + __version__ + '" "User Commands"',
        ".SH NAME",
        "perfwarden \\- " + _text(top.description.rstrip(".")),
        ".SH SYNOPSIS",
        ".B perfwarden",
        "[\\fB\\-\\-version\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        _text(
            "perfwarden is a sidecar daemon: applications send DogStatsD lines to its "
            "Unix sockets; it keeps rolling windows with confidence intervals per "
            "series, judges them against YAML thresholds, raises alerts and hands "
            "violations to optimizer plugins. The commands below run the daemon, "
            "check a configuration, and read or change a running daemon over its "
            "control socket."
        ),
        ".SH COMMANDS",
    ]
    for command in top.walk()[1:]:
        lines.extend(_command(command))
    for title, entries in (
        ("ENVIRONMENT", _ENVIRONMENT),
        ("FILES", _FILES),
        ("EXIT STATUS", _EXIT_STATUS),
    ):
        lines.append(f".SH {title}")
        for name, text in entries:
            lines += [".TP", f".B {_text(name)}", _text(text)]
    lines += [
        ".SH SEE ALSO",
        ".BR systemctl (1),",
        ".BR journalctl (1),",
        ".BR prometheus (1)",
        "",
    ]
    return "\n".join(lines)


def _command(command: Command) -> list[str]:
    words = ["perfwarden", *command.path]
    synopsis = " ".join(f"\\fB{_text(word)}\\fR" for word in words)
    parts = [_option_usage(o) for o in command.options if o.flags[0] != "-h"]
    parts += [_positional_usage(p) for p in command.positionals]
    if command.subcommands:
        parts.append("\\fIACTION\\fR")
    lines = [f'.SS "{" ".join(words)}"', " ".join([synopsis, *parts])]
    if command.help:
        lines += [".PP", _text(_sentence(command.help))]
    if command.description and command.description != command.help:
        lines += [".PP", _text(command.description)]
    for option in command.options:
        if option.flags[0] == "-h":
            continue
        label = ", ".join(f"\\fB{_text(flag)}\\fR" for flag in option.flags)
        if option.takes_value:
            label += f" \\fI{_text(option.metavar)}\\fR"
        lines += [".TP", label]
        described = option.help
        if option.choices:
            described = f"{described} (one of: {', '.join(option.choices)})".strip()
        lines.append(_text(_sentence(described)) if described else "")
    for positional in command.positionals:
        if positional.help:
            lines += [".TP", f"\\fI{_text(positional.name)}\\fR"]
            lines.append(_text(_sentence(positional.help)))
    return lines


def _option_usage(option: Option) -> str:
    flag = f"\\fB{_text(option.flags[-1])}\\fR"
    if option.takes_value:
        flag += f" \\fI{_text(option.metavar)}\\fR"
    return f"[{flag}]"


def _positional_usage(positional: Positional) -> str:
    shown = f"\\fI{_text(positional.name)}\\fR"
    if positional.many:
        shown += "..."
    return f"[{shown}]" if positional.optional else shown


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", ")", ":")) else text + "."


def _text(text: str) -> str:
    """Escape roff: backslashes, hyphens in options, a leading dot or quote."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    if out.startswith((".", "'")):
        out = "\\&" + out
    return out
