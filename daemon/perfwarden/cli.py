"""The ``perfwarden`` command line: builds the parser, dispatches, maps exit codes.

Exit status: 0 ok, 1 failed (a message says why), 2 usage, 3 daemon not reachable.
Each command lives in :mod:`perfwarden.commands` as ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import TYPE_CHECKING, Final

from perfwarden import __version__
from perfwarden.errors import ControlError, DaemonUnreachableError, PerfwardenError
from perfwarden.logs.writer import DEFAULT_MAX_QUEUED

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"must be a whole number of at least 1, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_socket_dir(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    # A nested subcommand must not reset what its parent parsed (argparse copies
    # sub-parser defaults over the namespace), hence SUPPRESS there.
    parser.add_argument(
        "--socket-dir",
        default=argparse.SUPPRESS if nested else None,
        metavar="DIR",
        help="where the daemon's sockets are (default: $PERFWARDEN_SOCKET_DIR, "
        "$XDG_RUNTIME_DIR/perfwarden, or /tmp/perfwarden-$UID)",
    )


def _add_json(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if nested else False,
        help="print JSON instead of text",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="perfwarden",
        description="Real-time performance monitoring sidecar with optimizer plugins.",
    )
    parser.add_argument(
        "--version", action="version", version=f"perfwarden {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="run the daemon in the foreground")
    p.add_argument("--config", metavar="PATH", help="config file (default: packaged)")
    _add_socket_dir(p)
    p.add_argument("--state-dir", metavar="DIR", help="where state is kept")
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    p.add_argument(
        "--log-format",
        default="auto",
        choices=["auto", "json", "console"],
        help="auto: JSON unless stdout is a terminal",
    )
    p.add_argument(
        "--log-buffer",
        type=_positive_int,
        default=DEFAULT_MAX_QUEUED,
        metavar="LINES",
        help="log lines held while stdout is not read; more are dropped, counted "
        f"and reported by a log.dropped event (default: {DEFAULT_MAX_QUEUED})",
    )
    p.set_defaults(command_module="run")

    p = sub.add_parser(
        "demo", help="a daemon tuning an example workload live, then a report"
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default: 60)")
    p.set_defaults(command_module="demo")

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument(
        "path", nargs="?", help="config file (default: the one run would use)"
    )
    p.set_defaults(command_module="check_config")

    p = sub.add_parser("status", help="uptime, config, ingest counters, memory")
    _add_socket_dir(p)
    _add_json(p)
    p.set_defaults(command_module="status")

    p = sub.add_parser("stats", help="per-series statistics and confidence intervals")
    p.add_argument("metrics", nargs="*", metavar="METRIC", help="only these metrics")
    _add_socket_dir(p)
    _add_json(p)
    p.set_defaults(command_module="stats")

    p = sub.add_parser("alerts", help="active alerts, the seed's report layout")
    _add_socket_dir(p)
    _add_json(p)
    p.set_defaults(command_module="alerts")

    p = sub.add_parser("report", help="the seed's dashboard documents from live data")
    p.add_argument("metrics", nargs="*", metavar="METRIC", help="only these metrics")
    p.add_argument("--format", choices=["yaml", "json"], default="yaml")
    _add_socket_dir(p)
    _add_json(p)
    p.set_defaults(command_module="report")

    p = sub.add_parser(
        "top",
        help="live dashboard: statistics, intervals, alerts, actions, knobs",
        description="A live terminal dashboard; q or Ctrl-C quits. Exits 3 if the "
        "daemon did not answer within --wait seconds; once it has answered, top "
        "keeps retrying while it is away.",
    )
    p.add_argument(
        "--interval", type=float, default=1.0, help="seconds between refreshes (1)"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for a first answer (default: 5, or 0 with --once)",
    )
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    _add_socket_dir(p)
    p.set_defaults(command_module="top")

    p = sub.add_parser("silence", help="mute a metric's alerts for a while")
    p.add_argument("metric", nargs="?", metavar="METRIC")
    p.add_argument("--for", dest="duration", default="1h", help="default: 1h")
    p.add_argument("--tag", action="append", default=[], metavar="K:V")
    p.add_argument("--comment", default="")
    p.add_argument("--remove", metavar="ID", help="lift the silence ID instead")
    _add_socket_dir(p)
    _add_json(p)
    p.set_defaults(command_module="silence")

    p = sub.add_parser("plugins", help="optimizer plugins: state and outcomes")
    _add_socket_dir(p)
    _add_json(p)
    p.set_defaults(command_module="plugins")

    p = sub.add_parser("knobs", help="knob values; `knobs set NAME VALUE` sets one")
    knob_sub = p.add_subparsers(dest="action", metavar="ACTION")
    _add_socket_dir(p)
    _add_json(p)
    p.set_defaults(command_module="knobs", action=None)
    q = knob_sub.add_parser("set", help="set a knob by hand")
    q.add_argument("name")
    q.add_argument("value")
    q.add_argument("--reason", default="set by hand")
    _add_socket_dir(q, nested=True)
    _add_json(q, nested=True)

    p = sub.add_parser("reload", help="re-read the config; exit 1 if it is rejected")
    _add_socket_dir(p)
    _add_json(p)
    p.set_defaults(command_module="reload")

    p = sub.add_parser("send", help="send one metric line to the daemon")
    p.add_argument("name")
    p.add_argument("value")
    p.add_argument(
        "--type",
        default="g",
        choices=["g", "c", "ms", "h", "d", "s"],
        help="default: g",
    )
    p.add_argument("--tag", action="append", default=[], metavar="K:V")
    p.add_argument("--sample-rate", type=float, metavar="RATE")
    _add_socket_dir(p)
    p.set_defaults(command_module="send")

    p = sub.add_parser(
        "time",
        help="run a command, send its wall time and peak memory, exit with its status",
        description="Run CMD, then send METRIC (wall time, ms) and "
        "METRIC.peak_memory_mb (largest resident set size of CMD or of a "
        "descendant it waited for, MiB, gauge: exact above perfwarden's own ~18 MB, "
        "sampled below, none for a command that ends within a millisecond), "
        "tagged command:<basename of CMD> plus --tag. "
        "Exits with CMD's status (128+N if signal N killed it, 127 if not found).",
    )
    p.add_argument(
        "--metric",
        default="command_execution_time",
        metavar="NAME",
        help="default: command_execution_time",
    )
    p.add_argument("--tag", action="append", default=[], metavar="K:V")
    _add_socket_dir(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS")
    p.set_defaults(command_module="time_command", usage=p.format_usage())
    return parser


#: Commands whose output is not text from the daemon: the daemon's own log (its
#: JSON renderer escapes), ``top`` (escapes what it draws) and ``time`` (passes the
#: command's own output through untouched).
_RAW_OUTPUT = frozenset({"run", "demo", "top", "time_command"})


def _escape_output() -> None:
    """Names and tags from the wire may hold terminal escapes: show, never obey."""
    from perfwarden.commands._printable import EscapingWriter  # noqa: PLC0415

    sys.stdout = EscapingWriter(sys.stdout)
    sys.stderr = EscapingWriter(sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # Commands are imported on demand so that a client command such as
        # ``status`` does not pay for numpy and the daemon's imports.
        module = importlib.import_module(f"perfwarden.commands.{args.command_module}")
        if args.command_module not in _RAW_OUTPUT:
            _escape_output()
        status_code: int = module.run(args)
    except DaemonUnreachableError as exc:
        print(f"perfwarden: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ControlError as exc:
        print(f"perfwarden: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except PerfwardenError as exc:
        print(f"perfwarden: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `perfwarden status | head`: the reader left; say nothing more.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stdout stays open until exit
        return 141
    return status_code
