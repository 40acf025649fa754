"""``perfwarden backtest``: what a config would have done over recorded history.

Replays the recording (or ``--input`` files) through the daemon's own judgement
(:mod:`perfwarden.backtest`) with ``--config`` (default: the config ``run`` would
use) and prints each series' alert timeline and a summary; with ``--against`` it
replays a second config over the same history and states the difference. Bad
input is reported on stderr by file and line (the first 20; all are counted) and
the replay goes on. Nothing is written: not the state, not the recording.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import structlog

from perfwarden.backtest.replay import Replay, ReplayResult
from perfwarden.backtest.sources import Problems, parse_time, read_input
from perfwarden.backtest.timeline import (
    SeriesTimeline,
    compare,
    format_duration,
    format_time,
    timelines,
)
from perfwarden.commands._common import format_number, print_json
from perfwarden.config.load import Config, ConfigError, load_config, resolve_config_path
from perfwarden.errors import PerfwardenError
from perfwarden.paths import RECORDING_DIR, resolve_state_dir
from perfwarden.recording.segments import segment_paths

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator, Sequence

    from perfwarden.backtest.sources import Chunk

__all__ = ["backtest", "inputs_of", "print_report", "run"]

_PROGRESS_EVERY: Final = 0.25


def run(args: argparse.Namespace) -> int:
    """Replay, print the timelines (and the difference); 0 unless it cannot start."""
    inputs = inputs_of(args.input, args.state_dir)
    new_path = resolve_config_path(args.config, os.environ)
    against = Path(args.against) if args.against else None
    report = backtest(
        new_path,
        inputs,
        against=against,
        start=_time(args.start, "--from"),
        end=_time(args.end, "--to"),
        metrics=args.metric,
        csv_metric=args.csv_metric,
        show_progress=sys.stderr.isatty() and not args.json,
    )
    if args.json:
        print_json(report)
    else:
        print_report(report, timelines_shown=not args.difference_only)
    return 0


def backtest(
    config_path: Path,
    inputs: Sequence[Path],
    *,
    against: Path | None = None,
    start: float | None = None,
    end: float | None = None,
    metrics: Sequence[str] = (),
    csv_metric: str | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Replay ``inputs`` with one config (and ``against`` another); the report."""
    with _quiet_logs():
        return _backtest(
            config_path,
            inputs,
            against=against,
            start=start,
            end=end,
            metrics=metrics,
            csv_metric=csv_metric,
            show_progress=show_progress,
        )


def _backtest(
    config_path: Path,
    inputs: Sequence[Path],
    *,
    against: Path | None,
    start: float | None,
    end: float | None,
    metrics: Sequence[str],
    csv_metric: str | None,
    show_progress: bool,
) -> dict[str, Any]:
    new = _load(config_path)
    current = _load(against) if against is not None else None
    problems = Problems(echo=lambda text: print(text, file=sys.stderr))
    progress = _Progress(inputs) if show_progress else None

    def replay(config: Config, problems: Problems) -> ReplayResult:
        chunks = _merged(inputs, problems, csv_metric, progress, start)
        engine = Replay(
            config,
            metrics=metrics,
            start=start,
            end=end,
            progress=None if progress is None else progress.show,
        )
        return engine.run(chunks)

    started = time.perf_counter()
    result = replay(new, problems)
    if result.bad_silence_records:
        problems.add(
            "recording",
            "",
            f"{result.bad_silence_records} silence records unreadable; skipped",
        )
    lines = timelines(result.events, result.end)
    report: dict[str, Any] = {
        "config": str(config_path),
        "inputs": [str(path) for path in inputs],
        "from": result.start,
        "to": result.end,
        "samples": result.samples,
        "series_replayed": len(result.series),
        "ticks": result.ticks,
        "dropped_series_limit": result.dropped,
        "problems": problems.count,
        "problem_examples": problems.messages,
        "series": {key: line.as_dict() for key, line in sorted(lines.items())},
        "summary": _summary(lines),
        "silences": sorted(result.silences.values(), key=lambda s: s["created"]),
    }
    if current is not None and against is not None:
        if progress is not None:
            progress.restart()
        # The same history again: its problems were reported once already.
        other = replay(current, Problems(shown=0))
        current_lines = timelines(other.events, other.end)
        report["against"] = str(against)
        report["against_summary"] = _summary(current_lines)
        report["difference"] = compare(lines, current_lines)
    if progress is not None:
        progress.done()
    report["replay_seconds"] = round(time.perf_counter() - started, 3)
    return report


def print_report(report: dict[str, Any], *, timelines_shown: bool = True) -> None:
    """The human form of :func:`backtest`'s report."""
    start, end = report["from"], report["to"]
    span = format_duration(end - start) if start is not None and end else "-"
    print(
        f"backtest of {report['config']}: {format_time(start)} .. {format_time(end)}"
        f" ({span}), {report['samples']} samples, {report['series_replayed']} series,"
        f" {report['problems']} input problems"
    )
    if timelines_shown:
        for key, line in report["series"].items():
            print(f"\n{key}")
            for step in line["transitions"]:
                print("  " + _step_text(step))
            print("  " + _summary_text(line["summary"]))
        print()
    print("summary: " + _totals_text(report["summary"]))
    if "difference" in report:
        print(
            f"against {report['against']}: " + _totals_text(report["against_summary"])
        )
        differences = report["difference"]
        if not differences:
            print("no difference")
        for item in differences:
            print(f"  {item['message']}")


def _step_text(step: dict[str, Any]) -> str:
    parts = [format_time(step["at"]), f"{step['transition']:<11}"]
    parts.append(f"{step['severity'] or '':<8}")
    observed = step["observed"]
    if observed is not None:
        low, high = observed
        shown = (
            format_number(low)
            if low == high
            else (f"{format_number(low)} .. {format_number(high)}")
        )
        parts.append(f"observed {shown}")
    if step["threshold"] is not None:
        parts.append(f"threshold {format_number(step['threshold'])}")
    if step["after_seconds"] is not None:
        parts.append(f"after {format_duration(step['after_seconds'])}")
    if step["reason"]:
        parts.append(f"({step['reason']})")
    if step["silenced"]:
        parts.append("silenced")
    return "  ".join(parts).rstrip()


def _summary_text(summary: dict[str, Any]) -> str:
    fires = summary["fires"]
    text = (
        f"{fires} fire{'s' if fires != 1 else ''},"
        f" {format_duration(summary['firing_seconds'])} firing,"
        f" {summary['flaps']} flap{'s' if summary['flaps'] != 1 else ''}"
    )
    return text + (", still firing at the end" if summary["open"] else "")


def _summary(lines: dict[str, SeriesTimeline]) -> dict[str, Any]:
    return {
        "fires": sum(line.fires for line in lines.values()),
        "silenced_fires": sum(line.silenced_fires for line in lines.values()),
        "series_fired": sum(1 for line in lines.values() if line.fires),
        "open": sum(1 for line in lines.values() if line.open),
        "firing_seconds": round(sum(line.firing_seconds for line in lines.values()), 3),
        "flaps": sum(line.flaps for line in lines.values()),
        "escalations": sum(line.escalations for line in lines.values()),
    }


def _totals_text(summary: dict[str, Any]) -> str:
    silenced = summary["silenced_fires"]
    return (
        f"{summary['fires']} fires on {summary['series_fired']} series"
        + (f" ({silenced} silenced)," if silenced else ",")
        + f" {summary['open']} still firing at the end,"
        f" {format_duration(summary['firing_seconds'])} firing,"
        f" {summary['flaps']} flaps, {summary['escalations']} escalations"
    )


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        problems = "\n".join(str(problem) for problem in exc.problems)
        msg = f"{path} is not a valid config:\n{problems}"
        raise PerfwardenError(msg) from None


def inputs_of(given: Sequence[str] | None, state_dir: str | None) -> list[Path]:
    """The inputs given, else the recording in the state directory (or an error)."""
    if given:
        paths = [Path(text) for text in given]
        for path in paths:
            if not path.exists():
                msg = f"no such input: {path}"
                raise PerfwardenError(msg)
        return paths
    recording = resolve_state_dir(state_dir, os.environ) / RECORDING_DIR
    if not segment_paths(recording):
        msg = (
            f"no recording in {recording}: turn it on with `recording: {{enabled:"
            " true}` in the config, or replay files with --input"
        )
        raise PerfwardenError(msg)
    return [recording]


def _time(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        msg = f"{option}: {exc}"
        raise PerfwardenError(msg) from None


def _merged(
    inputs: Sequence[Path],
    problems: Problems,
    csv_metric: str | None,
    progress: _Progress | None,
    since: float | None,
) -> Iterator[Chunk]:
    on_bytes = None if progress is None else progress.add
    sources = [
        read_input(
            path, problems, csv_metric=csv_metric, on_bytes=on_bytes, since=since
        )
        for path in inputs
    ]
    if len(sources) == 1:
        return sources[0]
    return heapq.merge(*sources, key=lambda chunk: chunk[0])


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The replay's evaluator logs every transition: not on this command's stdout
    (the logging configuration is restored afterwards)."""
    saved = structlog.get_config()
    structlog.configure(
        processors=[_drop], logger_factory=structlog.ReturnLoggerFactory()
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


def _drop(logger: Any, name: str, event: Any) -> Any:
    raise structlog.DropEvent


class _Progress:
    """``replaying 42%`` on stderr (a terminal), by input bytes read."""

    def __init__(self, inputs: Sequence[Path], stream: TextIO = sys.stderr) -> None:
        self._total = max(sum(_size(path) for path in inputs), 1)
        self._read = 0
        self._stream = stream
        self._shown = 0.0
        self._pass = 1

    def add(self, count: int) -> None:
        self._read += count

    def show(self, moment: float) -> None:
        now = time.monotonic()
        if now - self._shown < _PROGRESS_EVERY:
            return
        self._shown = now
        share = min(self._read / self._total, 1.0)
        self._stream.write(
            f"\rreplaying (pass {self._pass}) {share:4.0%}  at {format_time(moment)}"
        )
        self._stream.flush()

    def restart(self) -> None:
        self._read = 0
        self._pass += 1

    def done(self) -> None:
        self._stream.write("\r\x1b[K")
        self._stream.flush()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in segment_paths(path))
    return path.stat().st_size
