"""History for the replay: the recording, DogStatsD ``|T`` lines, CSV exports.

Each reader yields *chunks* ``(time, raw key, values, |T stamp or None)`` in time
order and reports what it cannot use to a :class:`Problems` (file and line, or
segment and byte), then goes on. Inputs:

- a recording directory (the default: ``recording/`` in the state directory);
- a file of DogStatsD lines, each with a ``|T<unix_ts>`` stamp (what
  ``perfwarden send``-style clients or a log of them give); a line without a stamp,
  malformed or earlier than the line before it is reported and skipped;
- CSV with rows ``timestamp,value`` (the metric is ``--csv-metric`` or the file's
  name) or ``timestamp,metric,value``; the metric may carry Prometheus labels
  (``latency{route="/a"}`` becomes the series ``latency|g|#route:/a``), timestamps are
  unix seconds or ISO 8601; a first row that is not data is a header.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import time
from typing import TYPE_CHECKING, Final

from perfwarden.config.durations import parse_duration
from perfwarden.ingest.statsd import MAX_ABS_VALUE, Batch, parse
from perfwarden.recording.reader import Values, read_recording

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = [
    "Chunk",
    "Problems",
    "parse_time",
    "read_csv",
    "read_input",
    "read_statsd",
]

#: ``(time, raw key, values, |T stamp or None)``; the key ``""`` marks a tick,
#: a key starting ``SILENCES_PREFIX`` is a silence record (recording.silences).
Chunk = tuple[float, str, Values, "float | None"]

_LABELS: Final = re.compile(r"^([^{}]+)\{(.*)\}$")
_LABEL: Final = re.compile(
    r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?'
)
_MAX_LINE: Final = 65536


class Problems:
    """Bad input, counted; the first ``shown`` messages are kept (``PATH:WHERE:``)."""

    def __init__(self, shown: int = 20, echo: Callable[[str], None] | None = None):
        self.count = 0
        self.shown = shown
        self.messages: list[str] = []
        self._echo = echo

    def add(self, path: Path | str, where: str | int, message: str) -> None:
        """Count one problem at ``path`` (line number or ``byte N``)."""
        self.count += 1
        if len(self.messages) < self.shown:
            text = f"{path}:{where}: {message}" if where != "" else f"{path}: {message}"
            self.messages.append(text)
            if self._echo is not None:
                self._echo(text)


def parse_time(text: str, now: float | None = None) -> float:
    """Unix seconds from ``1733480000``, ISO 8601 (naive is UTC) or ``2h ago``."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith(" ago"):
        moment = time.time() if now is None else now
        return moment - parse_duration(text.removesuffix(" ago").strip())
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        msg = f"not a time: {text!r} (unix seconds, ISO 8601 or e.g. '2h ago')"
        raise ValueError(msg) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def read_input(
    path: Path,
    problems: Problems,
    *,
    csv_metric: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
    since: float | None = None,
) -> Iterator[Chunk]:
    """Chunks of one input: a recording directory, a ``.csv`` file or DogStatsD
    (``since``: a recording's segments written entirely before it are skipped)."""
    if path.is_dir():
        return read_recording(path, problems.add, on_bytes, since)
    if path.suffix.lower() == ".csv":
        return read_csv(path, problems, csv_metric, on_bytes)
    return read_statsd(path, problems, on_bytes)


def read_statsd(
    path: Path, problems: Problems, on_bytes: Callable[[int], None] | None = None
) -> Iterator[Chunk]:
    """Chunks of a file of stamped DogStatsD lines (one chunk per line)."""
    batch = Batch()
    last = -math.inf
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            if on_bytes is not None:
                on_bytes(len(raw))
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            batch.clear()
            parse(line, batch, _MAX_LINE)
            if batch.malformed:
                reason = next(iter(batch.malformed))
                problems.add(path, number, f"malformed line ({reason}): {_show(line)}")
                continue
            if batch.ignored:
                continue
            if batch.values or batch.members:
                problems.add(path, number, f"no |T timestamp: {_show(line)}")
                continue
            for key, pairs in batch.stamped.items():
                stamp = float(pairs[0][0])
                if stamp < last:
                    problems.add(path, number, _out_of_order(stamp, last))
                    continue
                last = stamp
                yield (stamp, key, [value for _, value in pairs], stamp)


def read_csv(
    path: Path,
    problems: Problems,
    metric: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Chunk]:
    """Chunks of a CSV export (one chunk per row)."""
    default_key = f"{metric or path.stem}|g"
    keys: dict[str, str] = {}
    last = -math.inf
    with path.open(newline="", encoding="utf-8", errors="replace") as file:
        for number, row in enumerate(csv.reader(file), 1):
            if on_bytes is not None:
                on_bytes(sum(map(len, row)) + len(row))
            if not row or not "".join(row).strip():
                continue
            if len(row) == 2:
                stamp_text, value_text = row
                key = default_key
            elif len(row) == 3:
                stamp_text, name, value_text = row
                key = keys.get(name) or keys.setdefault(name, _series_key(name))
            else:
                problems.add(path, number, f"expected 2 or 3 columns, got {len(row)}")
                continue
            try:
                stamp = parse_time(stamp_text, now=0.0)
            except ValueError as exc:
                if number == 1:
                    continue  # a header row
                problems.add(path, number, str(exc))
                continue
            try:
                value = float(value_text)
            except ValueError:
                problems.add(path, number, f"not a number: {value_text!r}")
                continue
            if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
                problems.add(path, number, f"value out of range: {value_text!r}")
                continue
            if stamp < last:
                problems.add(path, number, _out_of_order(stamp, last))
                continue
            last = stamp
            yield (stamp, key, [value], None)


def _series_key(metric: str) -> str:
    """``name`` or ``name{a="b",...}`` as a raw gauge key with tags."""
    metric = metric.strip()
    match = _LABELS.match(metric)
    if match is None:
        return f"{metric}|g"
    name, labels = match.groups()
    tags = [f"{k}:{v}" for k, v in _LABEL.findall(labels) if k != "__name__"]
    return f"{name.strip()}|g|#{','.join(tags)}" if tags else f"{name.strip()}|g"


def _out_of_order(stamp: float, last: float) -> str:
    return (
        f"timestamp {_seconds(stamp)} is {_seconds(last - stamp)}s before the"
        f" previous line's ({_seconds(last)}); skipped"
    )


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _show(line: bytes) -> str:
    return repr(line[:120].decode("utf-8", "replace"))
