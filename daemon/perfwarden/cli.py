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
from perfwarden.commands._args import (
    add_json,
    add_socket_dir,
    positive_float,
    positive_int,
    sample_rate,
)
from perfwarden.errors import ControlError, DaemonUnreachableError, PerfwardenError
from perfwarden.logs.writer import DEFAULT_MAX_QUEUED

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="perfwarden",
        description="Real-time performance monitoring sidecar with optimizer plugins.",
        epilog="Exit status: 0 ok, 1 failed, 2 usage, 3 daemon not reachable.",
    )
    parser.add_argument(
        "--version", action="version", version=f"perfwarden {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="run the daemon in the foreground")
    p.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $PERFWARDEN_CONFIG, "
        "/etc/perfwarden/perfwarden.yaml, $XDG_CONFIG_HOME/perfwarden/perfwarden.yaml, "
        "or the packaged one)",
    )
    add_socket_dir(p, daemon=True)
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where state is kept (default: $PERFWARDEN_STATE_DIR, "
        "$STATE_DIRECTORY, or ~/.local/state/perfwarden)",
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="pins the level (default: the config's logging.level, changed by reload)",
    )
    p.add_argument(
        "--log-format",
        default="auto",
        choices=["auto", "json", "console"],
        help="auto: JSON unless stdout is a terminal (default: auto)",
    )
    p.add_argument(
        "--log-buffer",
        type=positive_int,
        default=DEFAULT_MAX_QUEUED,
        metavar="LINES",
        help="log lines held while stdout is not read; more are dropped, counted "
        f"and reported by a log.dropped event (default: {DEFAULT_MAX_QUEUED})",
    )
    p.set_defaults(command_module="run")

    p = sub.add_parser(
        "demo", help="a daemon tuning an example workload live, then a report"
    )
    p.add_argument(
        "--duration",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long the workload runs (default: 60)",
    )
    p.set_defaults(command_module="demo")

    p = sub.add_parser(
        "check-config",
        help="validate a config file (--backtest: and show what it would change)",
    )
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="config file (default: the one run would use)",
    )
    p.add_argument(
        "--backtest",
        nargs="?",
        const="",
        metavar="INPUT",
        help="replay the recording (or INPUT) with this file and with the current "
        "config, and print the difference",
    )
    p.add_argument(
        "--against",
        metavar="CURRENT",
        help="the config to compare with (default: $PERFWARDEN_CONFIG or the "
        "packaged default, as run)",
    )
    p.add_argument("--state-dir", metavar="DIR", help="where the recording is")
    p.set_defaults(command_module="check_config")

    p = sub.add_parser(
        "backtest",
        help="replay history through a config: which alerts would have fired",
        description="Replay the recording (or --input files) through the daemon's "
        "own windows, statistics and alert code on a simulated clock; print each "
        "series' alert timeline and a summary, and with --against the difference "
        "between two configs. Writes nothing.",
    )
    p.add_argument(
        "--config", metavar="NEW", help="the config to try (default: the one run uses)"
    )
    p.add_argument("--against", metavar="CURRENT", help="a config to compare with")
    p.add_argument(
        "--input",
        action="append",
        metavar="PATH",
        help="a recording directory, a file of DogStatsD lines with |T stamps, or a "
        "CSV (timestamp,value or timestamp,metric,value); repeatable "
        "(default: the recording in the state directory)",
    )
    p.add_argument(
        "--from",
        dest="start",
        metavar="T",
        help="replay from T: unix seconds, ISO 8601 or e.g. '2h ago' "
        "(default: the start of the history)",
    )
    p.add_argument(
        "--to",
        dest="end",
        metavar="T",
        help="replay up to T, written as --from (default: its end)",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="M",
        help="only metric M; repeat for more (default: every metric)",
    )
    p.add_argument(
        "--csv-metric",
        metavar="NAME",
        help="metric of 2-column CSV (default: file name)",
    )
    p.add_argument(
        "--difference-only", action="store_true", help="no timelines, only totals"
    )
    p.add_argument("--state-dir", metavar="DIR", help="where the recording is")
    add_json(p)
    p.set_defaults(command_module="backtest")

    p = sub.add_parser(
        "status", help="uptime, config and last reload, ingest counters, memory"
    )
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="status")

    p = sub.add_parser("stats", help="per-series statistics and confidence intervals")
    p.add_argument(
        "metrics", nargs="*", metavar="METRIC", help="only these metrics (default: all)"
    )
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="stats")

    p = sub.add_parser(
        "alerts",
        help="firing alerts (level, value, threshold, action), then pending ones",
        description="The firing alerts, one block each: level, series, the value "
        "judged (with the interval the judgement used), the threshold and the "
        "action; then pending, no-data and silenced series, and the silences. "
        "With nothing firing, says how far each metric is from its target.",
    )
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="alerts")

    p = sub.add_parser(
        "report",
        help="dashboard, learned patterns and validation from live data (YAML)",
        description="Three YAML documents from live data: monitoring_dashboard "
        "(per metric: mean, target, 95%% interval, trend, status), learning_patterns "
        "(what the optimizer learned) and validation_results (intervals against "
        "targets, and a summary of the optimizer's actions). --verbose adds the "
        "raw list of recent actions; --json prints everything as JSON.",
    )
    p.add_argument(
        "metrics", nargs="*", metavar="METRIC", help="only these metrics (default: all)"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="add the raw recent_actions records (epoch times, p-values)",
    )
    # Before --json existed; kept so that old scripts keep working, not shown.
    p.add_argument("--format", choices=["yaml", "json"], help=argparse.SUPPRESS)
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="report")

    p = sub.add_parser(
        "top",
        help="live dashboard: statistics, intervals, alerts, actions, knobs",
        description="A live terminal dashboard; n (or space) and p page through "
        "the series, q or Ctrl-C quits. Exits 3 if the "
        "daemon did not answer within --wait seconds; once it has answered, top "
        "keeps retrying while it is away.",
    )
    p.add_argument(
        "--interval",
        type=positive_float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (default: 1)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for a first answer (default: 5, or 0 with --once)",
    )
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    add_socket_dir(p)
    p.set_defaults(command_module="top")

    p = sub.add_parser("silence", help="mute a metric's alert events for a while")
    p.add_argument(
        "metric", nargs="?", metavar="METRIC", help="the metric to mute (all series)"
    )
    p.add_argument(
        "--for",
        dest="duration",
        default="1h",
        metavar="DURATION",
        help="how long, e.g. 90s, 15m, 2h (default: 1h)",
    )
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="K:V",
        help="only the series with this tag (repeatable)",
    )
    p.add_argument("--comment", default="", help="why, shown by alerts (default: none)")
    p.add_argument("--remove", metavar="ID", help="lift the silence ID instead")
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="silence")

    p = sub.add_parser("plugins", help="optimizer plugins: state and outcomes")
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="plugins")

    p = sub.add_parser(
        "knobs",
        help="knob values; `knobs set NAME VALUE` sets one",
        usage="perfwarden knobs [-h] [--socket-dir DIR] [--json] "
        "[set NAME VALUE [--reason TEXT]]",
        description="Without an action: every knob's value, initial value, range "
        "and who changed it last. `knobs set NAME VALUE` sets one by hand.",
    )
    knob_sub = p.add_subparsers(dest="action", metavar="set", title="actions")
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="knobs", action=None)
    q = knob_sub.add_parser(
        "set",
        help="set a knob by hand (clamped to its bounds, rounded to its step)",
    )
    q.add_argument("name", metavar="NAME", help="the knob, e.g. compression.ratio")
    q.add_argument("value", metavar="VALUE", help="a number, or one of its choices")
    q.add_argument(
        "--reason",
        default="set by hand",
        metavar="TEXT",
        help="recorded with the change (default: 'set by hand')",
    )
    add_socket_dir(q, nested=True)
    add_json(q, nested=True)

    p = sub.add_parser(
        "learning", help="export what this host learned; import the fleet's as priors"
    )
    learning_sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="learning")
    q = learning_sub.add_parser("export", help="this host's outcomes as JSON")
    q.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (default: stdout)"
    )
    q.add_argument(
        "--state-dir",
        metavar="DIR",
        help="read DIR/state.db (read-only) instead of asking the daemon: no "
        "daemon needed, and safe while one runs (the last checkpoint's outcomes)",
    )
    add_socket_dir(q, nested=True)
    q = learning_sub.add_parser(
        "import", help="start from other hosts' exports (summed) as Beta priors"
    )
    q.add_argument("files", nargs="+", metavar="FILE", help="exports; - for stdin")
    q.add_argument(
        "--weight",
        type=float,
        default=None,
        help="pseudo-outcomes per imported trial (default: optimizer."
        "fleet_prior_weight, 1 unless configured; 0.1 trusts the fleet a tenth "
        "as much as this host's own outcomes)",
    )
    add_socket_dir(q, nested=True)
    add_json(q, nested=True)

    p = sub.add_parser(
        "reload",
        help="re-read the config and rescan plugins; exit 1 if it is rejected",
    )
    add_socket_dir(p)
    add_json(p)
    p.set_defaults(command_module="reload")

    p = sub.add_parser("send", help="send one metric line to the daemon")
    p.add_argument("name", metavar="NAME", help="the metric name")
    p.add_argument("value", metavar="VALUE", help="a number (any text for --type s)")
    p.add_argument(
        "--type",
        default="g",
        choices=["g", "c", "ms", "h", "d", "s"],
        help="DogStatsD type (default: g)",
    )
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="K:V",
        help="a tag (repeatable; default: none)",
    )
    p.add_argument(
        "--sample-rate",
        type=sample_rate,
        metavar="RATE",
        help="the line's |@RATE, above 0 and at most 1 (default: none, i.e. 1)",
    )
    add_socket_dir(p)
    p.set_defaults(command_module="send")

    p = sub.add_parser(
        "time",
        help="run a command, send its wall time and peak memory, exit with its status",
        description="Run CMD, then send METRIC (wall time, ms) and "
        "METRIC.peak_memory_mb (largest resident set size of CMD or of a "
        "descendant it waited for, MiB, gauge: exact above perfwarden's own ~18 MB, "
        "sampled below, none for a command that ends within a millisecond), "
        "tagged command:<basename of CMD> plus --tag. "
        "Exits with CMD's status (128+N if signal N killed it, 127 if not found); "
        "when no daemon listens it says so on stderr, and still exits with "
        "CMD's status.",
    )
    p.add_argument(
        "--metric",
        default="command_execution_time",
        metavar="NAME",
        help="default: command_execution_time",
    )
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="K:V",
        help="a tag added to command:<name> (repeatable)",
    )
    add_socket_dir(p)
    p.add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        metavar="-- CMD ARGS",
        help="the command to run and its arguments",
    )
    p.set_defaults(command_module="time_command", usage=p.format_usage())

    p = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print the completion script for SHELL, e.g. "
        "`perfwarden completion bash > ~/.local/share/bash-completion/completions/"
        "perfwarden`. The wheel also installs them under share/.",
    )
    p.add_argument(
        "shell", choices=["bash", "zsh", "fish"], help="the shell to complete for"
    )
    p.set_defaults(command_module="completion")
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
        # The daemon refused the arguments themselves: a usage error, as documented.
        return EXIT_USAGE if exc.code == "bad_request" else EXIT_FAILED
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
