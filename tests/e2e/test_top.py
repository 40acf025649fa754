"""``perfwarden top`` against a real daemon: one frame, then the live view in tmux.

The live tests drive the dashboard in a detached tmux session on a private tmux
server (``tmux -S``), read the screen with ``capture-pane -p`` and send keys with
``send-keys``. They skip when tmux is not installed (Debian: ``apt-get install -y
tmux``).
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

CONFIG = """\
version: 1
statistics: {min_samples: 10}
evaluation: {interval: 0.5s, basis: ci, window: 50}
metrics:
  latency:
    unit: ms
    bound: upper
    target: 100
    warning: 150
    critical: 200
  quality:
    bound: lower
    target: 0.95
    warning: 0.90
    critical: 0.85
knobs:
  batch.size: {min: 1, max: 256, initial: 16}
"""

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (apt-get install -y tmux)"
)


def send(daemon: DaemonProcess, metric: str, values: list[float], kind: str) -> None:
    lines = [f"{metric}:{v!r}|{kind}" for v in values]
    daemon.send_datagrams(
        "\n".join(lines[i : i + 20]) for i in range(0, len(lines), 20)
    )


def busy_daemon(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A daemon with a critical latency alert firing and a healthy quality score."""
    daemon = make_daemon(CONFIG).start()
    send(daemon, "latency", [250.0 + (i % 7) for i in range(60)], "ms")
    send(daemon, "quality", [0.97 + (i % 3) * 0.002 for i in range(60)], "g")
    daemon.wait_received(120)
    wait_until(
        lambda: any(
            a["level"] == "critical" for a in daemon.request("alerts")["alerts"]
        )
    )
    return daemon


#: Enough series that a screen shows a small part of them.
MANY = 1_500


def many_series(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A daemon with one configured metric and MANY unconfigured series."""
    daemon = make_daemon(CONFIG).start()
    send(daemon, "latency", [120.0 + i % 5 for i in range(20)], "ms")
    daemon.send_stream("".join(f"many:{i}|g|#id:{i:04d}\n" for i in range(MANY)))
    wait_until(lambda: daemon.request("status")["series"] >= MANY + 1, timeout=60)
    return daemon


def top_command(daemon: DaemonProcess, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "perfwarden",
        "top",
        "--socket-dir",
        str(daemon.socket_dir),
        *extra,
    ]


class TestOnce:
    def test_one_frame(self, make_daemon: Callable[..., DaemonProcess]) -> None:
        """``--once`` prints the metrics, their states and the alert, then exits 0."""
        daemon = busy_daemon(make_daemon)
        result = daemon.cli("top", "--once")
        assert 0 == result.returncode, result.stderr
        out = result.stdout
        assert "latency" in out
        assert "quality" in out
        assert "critical" in out
        assert "CRITICAL" in out  # the alerts panel
        assert "Alerts (1 firing)" in out
        assert "batch.size" in out

    def test_unreachable_exits_3(self, tmp_path: Path) -> None:
        """No daemon: exit 3 with the usual message (``--once`` tries once)."""
        result = subprocess.run(
            [*top_command_dir(tmp_path), "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 3 == result.returncode
        assert "no perfwarden daemon answers" in result.stderr

    def test_live_gives_up_after_wait(self, tmp_path: Path) -> None:
        """The live view also exits 3 when the first answer never comes."""
        result = subprocess.run(
            [*top_command_dir(tmp_path), "--wait", "0.5", "--interval", "0.2"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert 3 == result.returncode
        assert "no perfwarden daemon answers" in result.stderr


def top_command_dir(socket_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "perfwarden", "top"]
    return [*command, "--socket-dir", str(socket_dir)]


class Tmux:
    """A private tmux server with one detached session running a command."""

    def __init__(self, base: Path) -> None:
        self.socket = base / f"tmux-{uuid.uuid4().hex[:8]}.sock"
        self.status_file = base / f"status-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert TMUX is not None
        return subprocess.run(
            [TMUX, "-S", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def start(self, command: list[str], width: int, height: int = 40) -> None:
        # The exit status goes to a file: tmux sometimes leaves a finished pane's
        # process unreaped for a long while, so #{pane_dead_status} lags.
        status = shlex.quote(str(self.status_file))
        # `trap : INT` lets the shell outlive a Ctrl-C meant for the command
        # (the command itself still gets the default SIGINT disposition).
        line = (
            f"trap : INT; {shlex.join(command)}; "
            f"echo $? > {status}.tmp; mv {status}.tmp {status}"
        )
        line = shlex.join(["sh", "-c", line])
        result = self.run(
            "new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height),
            line,
        )  # fmt: skip
        assert 0 == result.returncode, result.stderr

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top").stdout

    def wait_screen(self, predicate: Callable[[str], bool], timeout: float = 90) -> str:
        def check() -> str | None:
            text = self.screen()
            return text if predicate(text) else None

        try:
            found: str = wait_until(check, timeout, interval=0.1)
        except TimeoutError:
            msg = f"screen never matched; last screen:\n{self.screen()}"
            raise AssertionError(msg) from None
        return found

    def keys(self, *keys: str) -> None:
        assert 0 == self.run("send-keys", "-t", "top", *keys).returncode

    def quit_with(self, key: str, timeout: float = 90) -> int:
        """Press ``key`` until the program exits (a loaded machine may be slow to
        read it); return its exit status."""
        deadline = time.monotonic() + timeout
        while True:
            self.keys(key)
            try:
                wait_until(lambda: self.exit_status() is not None, timeout=10)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
                continue
            status = self.exit_status()
            assert status is not None
            return status

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        try:
            return int(self.status_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def kill(self) -> None:
        self.run("kill-server")
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


@pytest.fixture(name="tmux")
def _tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(tmp_path)
    try:
        yield server
    finally:
        server.kill()


class TestStatsPages:
    def test_a_page_of_tops_order(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """``stats`` with ``order: top`` and a ``limit`` answers one page of the
        table's order (configured metrics first) and says how many there are."""
        daemon = many_series(make_daemon)
        first = daemon.request("stats", order="top", limit=10)
        assert (MANY + 1, None) == (first["total"], first["next_offset"])
        assert ["latency"] + ["many"] * 9 == [r["metric"] for r in first["series"]]
        page = daemon.request("stats", order="top", offset=101, limit=5)
        tags = [r["tags"]["id"] for r in page["series"]]
        assert ["0100", "0101", "0102", "0103", "0104"] == tags
        everything = daemon.request("stats")  # no limit: every page, joined
        assert MANY + 1 == len(everything["series"])

    def test_the_first_alerts_and_their_totals(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """``alerts`` with a ``limit`` answers the worst few, one page, with the
        totals ``top``'s panel counts from."""
        daemon = make_daemon(CONFIG).start()
        daemon.send_stream(
            "".join(
                f"latency:{250 + j % 7}|ms|#id:{i}\n"
                for i in range(30)
                for j in range(20)
            )
        )
        wait_until(
            lambda: daemon.request("status")["evaluation"]["alerts_firing"] >= 30
        )
        page = daemon.request("alerts", limit=6)
        assert 6 == len(page["alerts"])
        assert (30, 30, None) == (
            page["alerts_total"],
            page["firing_total"],
            page["next_offset"],
        )

    @pytest.mark.parametrize(
        "args", [{"limit": 0}, {"limit": "5"}, {"limit": True}, {"order": "size"}]
    )
    def test_bad_page_arguments(
        self, daemon: DaemonProcess, args: dict[str, object]
    ) -> None:
        """A limit that is not a whole number from 1, or an unknown order, is a
        ``bad_request``."""
        from perfwarden.errors import ControlError

        with pytest.raises(ControlError) as caught:
            daemon.request("stats", **args)
        assert "bad_request" == caught.value.code


@needs_tmux
class TestLive:
    def test_pages_through_many_series(
        self, make_daemon: Callable[..., DaemonProcess], tmux: Tmux
    ) -> None:
        """At 1,500 series top shows one screen of them, ``n`` the next page and
        ``p`` the previous one, in the table's order."""
        daemon = many_series(make_daemon)
        tmux.start(top_command(daemon), width=120, height=30)
        screen = tmux.wait_screen(lambda s: "more series" in s and "latency" in s)
        assert "n: next page" in screen
        assert "many{id=0000}" in screen
        tmux.keys("n")
        screen = tmux.wait_screen(lambda s: f"of {MANY + 1}" in s)
        assert "latency" not in screen  # page 1's first row
        assert "many{id=0000}" not in screen
        tmux.keys("p")
        tmux.wait_screen(lambda s: "more series" in s and "many{id=0000}" in s)
        assert 0 == tmux.quit_with("q")

    def test_updates_and_quits_on_q(
        self, make_daemon: Callable[..., DaemonProcess], tmux: Tmux
    ) -> None:
        """The live frame shows the metrics, picks up new data, and ``q`` exits 0."""
        daemon = busy_daemon(make_daemon)
        tmux.start(top_command(daemon), width=120)
        screen = tmux.wait_screen(lambda s: "latency" in s and "critical" in s)
        assert "quality" in screen
        assert "CI vs LEVELS" in screen
        assert "RECENT" in screen
        assert "q quits" in screen

        # New data: a new metric appears, and the knob change shows.
        send(daemon, "fresh_metric", [1.0, 2.0, 3.0], "g")
        tmux.wait_screen(lambda s: "fresh_metric" in s)
        assert 0 == daemon.cli("knobs", "set", "batch.size", "99").returncode
        tmux.wait_screen(lambda s: "99  manual" in s)

        assert 0 == tmux.quit_with("q")

    def test_narrow_pane(
        self, make_daemon: Callable[..., DaemonProcess], tmux: Tmux
    ) -> None:
        """At 60 columns the frame drops columns but still shows every metric.

        (Under pytest the pane inherits COLUMNS=80: the live view must follow the
        real terminal size, not a stale COLUMNS.)
        """
        daemon = busy_daemon(make_daemon)
        tmux.start(top_command(daemon), width=60, height=30)
        screen = tmux.wait_screen(lambda s: "latency" in s and "quality" in s)
        assert "RECENT" not in screen
        assert "CRITICAL" in screen
        assert max(len(line) for line in screen.splitlines()) <= 60
        assert 0 == tmux.quit_with("C-c")

    def test_daemon_goes_away_and_comes_back(
        self, make_daemon: Callable[..., DaemonProcess], tmux: Tmux
    ) -> None:
        """Stopping the daemon shows the retry banner; a restart clears it."""
        daemon = busy_daemon(make_daemon)
        tmux.start(top_command(daemon, "--interval", "0.5"), width=120)
        tmux.wait_screen(lambda s: "latency" in s)
        assert 0 == daemon.stop()
        screen = tmux.wait_screen(lambda s: "daemon unreachable, retrying..." in s)
        assert "latency" in screen  # the last data stays on screen
        assert tmux.exit_status() is None  # still running, still retrying
        daemon.start()
        tmux.wait_screen(lambda s: "unreachable" not in s and "pid" in s)
        assert 0 == tmux.quit_with("q")
