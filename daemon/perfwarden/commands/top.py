"""``perfwarden top``: a live terminal dashboard of the daemon (rich).

Every ``--interval`` seconds (default 1) it asks the daemon for ``status``,
``stats`` (with ``recent`` so a daemon that supports it returns the newest values
for the sparklines), ``alerts``, ``knobs`` and ``report`` (for the optimizer's
recent actions), and redraws with :func:`perfwarden.views.tui.render_frame`. The
live view asks ``stats`` for one screen of the table only (``order: top`` sorts it
in the daemon, ``offset`` and ``limit`` cut the page), so a refresh at 10k series
costs the daemon a screen's statistics; ``alerts`` likewise for the panel's rows
(with the totals). ``n`` (or space) and ``p`` page through the series. ``q`` or
Ctrl-C quits; keys are read from stdin in cbreak mode when it is a terminal, and the
terminal is restored on every way out.

When the daemon's records carry no ``recent`` values, the poller keeps the ``last``
value of each series per refresh (when new samples arrived) and draws those.

Reachability and exit status:

* The first answer is awaited for up to ``--wait`` seconds (default 5 live, 0 with
  ``--once``: a single attempt); without one, ``top`` exits 3 (daemon not reachable),
  like every client command.
* Once the daemon has answered, the live view never exits because it went away: it
  shows "daemon unreachable, retrying..." over the last data and reconnects every
  interval until the daemon is back or the user quits (exit 0).
* ``--once`` prints one frame to stdout and exits 0.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console
from rich.live import Live

from perfwarden.commands._common import control_path
from perfwarden.commands._printable import escaped
from perfwarden.control.channel import ControlChannel
from perfwarden.errors import ControlError, DaemonUnreachableError
from perfwarden.views.tui import (
    ALERT_ROWS,
    UNREACHABLE,
    Snapshot,
    page_rows,
    render_frame,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from pathlib import Path
    from types import FrameType

__all__ = ["KeyReader", "Poller", "run"]

#: How many of the newest values a sparkline shows.
RECENT: Final = 60
_CALL_TIMEOUT: Final = 3.0
_QUIT_KEYS: Final = frozenset("qQ")
_NEXT_KEYS: Final = frozenset("nN ")
_BACK_KEYS: Final = frozenset("pPbB")


class Poller:
    """Fetches :class:`Snapshot` s over one control connection, reconnecting."""

    def __init__(self, path: Path, recent: int = RECENT) -> None:
        self.path = path
        self.recent = recent
        self._channel: ControlChannel | None = None
        self._history: dict[str, collections.deque[float]] = {}
        self._seen: dict[str, int] = {}

    def close(self) -> None:
        """Close the connection (the next fetch reconnects)."""
        if self._channel is not None:
            with contextlib.suppress(OSError):
                self._channel.close()
            self._channel = None

    def fetch(self, first: int = 0, rows: int | None = None) -> Snapshot:
        """One round of requests; raises DaemonUnreachableError / ControlError.

        With ``rows``, only that many series from the ``first`` row of the table
        on (the daemon sorts them as the table does): a refresh at 10k series
        costs the daemon the statistics of one screen, not of every series.
        """
        if self._channel is None:
            self._channel = ControlChannel(self.path, timeout=_CALL_TIMEOUT)
        try:
            return self._fetch(self._channel, first, rows)
        except (DaemonUnreachableError, ControlError):
            self.close()
            raise

    def _fetch(self, channel: ControlChannel, first: int, rows: int | None) -> Snapshot:
        # Names, tags and reasons come from senders: escaped before they are drawn.
        status = escaped(channel.call("status"))
        page: dict[str, Any] = {}
        if rows is not None:
            page = {"order": "top", "offset": first, "limit": rows}
        stats = escaped(channel.call("stats", recent=self.recent, **page))
        # The panel's rows only: the reply's totals count the rest.
        few: dict[str, Any] = {} if rows is None else {"limit": ALERT_ROWS}
        alerts = escaped(channel.call("alerts", **few))
        knobs = escaped(channel.call("knobs"))
        report = escaped(channel.call("report"))
        actions = (report.get("validation_results") or {}).get("recent_actions") or []
        # Actions awaiting their verdict are the newest: they come last.
        in_flight = (status.get("optimizer") or {}).get("in_flight") or []
        actions = [*actions, *({**a, "verdict": "validating"} for a in in_flight)]
        series = [self._with_recent(dict(r)) for r in stats.get("series", [])]
        return Snapshot(
            status=status,
            series=series,
            alerts=alerts.get("alerts", []),
            knobs=knobs,
            actions=actions,
            fetched_at=time.time(),
            series_total=stats.get("total") if rows is not None else None,
            first=first if rows is not None else 0,
            alerts_total=alerts.get("alerts_total") if rows is not None else None,
            firing_total=alerts.get("firing_total") if rows is not None else None,
        )

    def _with_recent(self, record: dict[str, Any]) -> dict[str, Any]:
        """Fill ``recent`` from the values seen per refresh if the daemon gave none."""
        if isinstance(record.get("recent"), list):
            return record
        key = str(record.get("series", record.get("metric")))
        total = record.get("total_samples")
        last = record.get("last")
        history = self._history.setdefault(key, collections.deque(maxlen=self.recent))
        if isinstance(last, int | float) and total != self._seen.get(key):
            history.append(float(last))
            self._seen[key] = total if isinstance(total, int) else -1
        if len(history) >= 2:
            record["recent"] = list(history)
        return record


class KeyReader:
    """Keys from stdin without waiting for Enter; restores the terminal on exit."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = sys.stdin if stream is None else stream
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> KeyReader:
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return self
        self._fd = fd
        if os.isatty(fd):
            import termios  # noqa: PLC0415 - POSIX only, needed only here
            import tty  # noqa: PLC0415

            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # ISIG stays on: Ctrl-C still raises KeyboardInterrupt
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._saved is not None and self._fd is not None:
            import termios  # noqa: PLC0415

            with contextlib.suppress(OSError):
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def wait(self, timeout: float) -> str:
        """Wait up to ``timeout`` seconds; the keys typed meanwhile ('' if none)."""
        timeout = max(0.0, timeout)
        if self._fd is None:
            time.sleep(timeout)
            return ""
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
        except (OSError, ValueError):
            ready = []
        if not ready:
            return ""
        try:
            data = os.read(self._fd, 64)
        except OSError:
            data = b""
        if not data:  # end of a pipe or /dev/null: stop watching, just wait
            self._fd = None
            time.sleep(timeout)
            return ""
        return data.decode(errors="replace")


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises SystemExit so that the terminal is restored on the way out."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminal_size(console: Console) -> tuple[int, int]:
    """The terminal's size now; a live view follows resizes, not a stale COLUMNS."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return console.width, console.height
    if size.columns <= 0 or size.lines <= 0:
        return console.width, console.height
    console.size = (size.columns, size.lines)
    return size.columns, size.lines


def _first_snapshot(poller: Poller, wait: float, interval: float) -> Snapshot:
    deadline = time.monotonic() + wait
    while True:
        try:
            return poller.fetch()
        except DaemonUnreachableError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            time.sleep(min(interval, remaining))


def _once(poller: Poller, wait: float, interval: float) -> int:
    snapshot = _first_snapshot(poller, wait, interval)
    poller.close()
    console = Console()
    frame = render_frame(
        snapshot, width=console.width, now=time.time(), source=str(poller.path)
    )
    console.print(frame)
    return 0


def _live(poller: Poller, wait: float, interval: float) -> int:
    console = Console()
    source = str(poller.path)
    snapshot: Snapshot | None = None
    problem: str | None = None
    started = time.monotonic()
    with (
        _sigterm_unwinds(),
        KeyReader() as keys,
        Live(console=console, screen=True, auto_refresh=False, transient=True) as live,
    ):
        first = 0  # the table's first row shown (n / p page)
        while True:
            tick = time.monotonic()
            width, height = _terminal_size(console)
            try:
                # A screen's worth of rows at most: the frame cuts what does not fit.
                snapshot = poller.fetch(first, rows=max(1, height))
                problem = None
                if first and first >= (snapshot.series_total or 0):
                    first = 0  # the series shrank under the page: start over
            except DaemonUnreachableError as exc:
                detail = str(exc)
                if snapshot is None:
                    left = wait - (time.monotonic() - started)
                    if left <= 0:
                        raise
                    detail += f"; giving up in {left:.0f}s"
                problem = f"{UNREACHABLE} {detail}"
            except ControlError as exc:
                if snapshot is None:
                    raise
                problem = f"daemon error, retrying... {exc.message}"
            frame = render_frame(
                snapshot,
                width=width,
                height=height,
                now=time.time(),
                problem=problem,
                source=source,
            )
            live.update(frame, refresh=True)
            deadline = tick + interval
            while (remaining := deadline - time.monotonic()) > 0:
                typed = set(keys.wait(remaining))
                if _QUIT_KEYS & typed:
                    return 0
                if snapshot is not None and typed & (_NEXT_KEYS | _BACK_KEYS):
                    first = _paged(snapshot, first, typed, width, height, problem)
                    break  # show the new page at once


def _paged(  # noqa: PLR0917 - private; one call site
    snapshot: Snapshot,
    first: int,
    typed: set[str],
    width: int,
    height: int,
    problem: str | None,
) -> int:
    """The first row after a paging key: a page on (``n``, space) or back (``p``)."""
    step = page_rows(snapshot, width=width, height=height, problem=problem)
    total = snapshot.series_total or 0
    if typed & _NEXT_KEYS and first + step < total:
        return first + step
    if typed & _BACK_KEYS:
        return max(0, first - step)
    return first


def run(args: argparse.Namespace) -> int:
    """Show the dashboard until ``q`` / Ctrl-C (or one frame with ``--once``)."""
    interval = max(0.1, float(args.interval))
    wait = args.wait if args.wait is not None else (0.0 if args.once else 5.0)
    poller = Poller(control_path(args.socket_dir))
    try:
        if args.once:
            return _once(poller, max(0.0, wait), interval)
        return _live(poller, max(0.0, wait), interval)
    except KeyboardInterrupt:
        return 0
    finally:
        poller.close()
