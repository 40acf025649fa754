"""Helpers for perfwarden's own tests and for plugin authors' tests.

:class:`DaemonProcess` runs a real ``perfwarden run`` in a subprocess on private
temporary directories, waits for its ``READY=1`` on a test-owned ``NOTIFY_SOCKET``,
and offers the CLI, the metric sockets and the JSON log lines to assert on. Its
stdout (the log) and stderr go to ``log_path``, or stdout goes to a descriptor the
test owns (``stdout=``: a pipe it reads, reads late, or closes).
:func:`plugin_deadline` runs a plugin's code as if the daemon called it, with a
deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from perfwarden.deadline import deadline_scope
from perfwarden.paths import CONTROL_SOCKET, METRICS_SOCKET, METRICS_STREAM_SOCKET
from perfwarden.plugin_api import ObservedStats, Violation

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from types import TracebackType

__all__ = [
    "DaemonProcess",
    "FakeClock",
    "SlowEndpoint",
    "example_violation",
    "plugin_deadline",
    "process_running",
    "slow_http_endpoint",
    "wait_until",
]


def example_violation() -> Violation:
    """A typical violation to call a plugin with: ``latency`` (ms) of ``host:a``,
    critical, its interval 210-230.5 above the 200 ms level."""
    return Violation(
        metric="latency",
        tags=MappingProxyType({"host": "a"}),
        severity="critical",
        basis="ci",
        bound="upper",
        observed=(210.0, 230.5),
        threshold=200.0,
        target=100.0,
        unit="ms",
        trend="rising",
        stats=ObservedStats(40, 220.0, 210.0, 230.5, 219.0, 250.0, 260.0, 150.0, 270.0),
        correlation_id="c0ffee000001",
    )


def wait_until(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            msg = f"condition not met within {timeout}s: {condition}"
            raise TimeoutError(msg)
        time.sleep(interval)


@contextlib.contextmanager
def plugin_deadline(seconds: float) -> Iterator[float]:
    """Run the block as a plugin call with ``seconds`` left before its deadline.

    Inside, :func:`perfwarden.plugin_api.time_left` counts down from ``seconds``
    (in this thread; the daemon also carries it into the call's worker thread).
    Yields the deadline, in ``time.monotonic()`` seconds.
    """
    with deadline_scope(time.monotonic() + seconds) as deadline:
        yield deadline


def process_running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


class SlowEndpoint:
    """A local HTTP endpoint that takes every POST and answers only when released:
    what a plugin's request timeouts are tested against."""

    def __init__(self, url: str) -> None:
        #: Where to POST.
        self.url = url
        #: ``time.monotonic()`` of each request, as it arrived.
        self.requests: list[float] = []
        #: Set it to answer the waiting requests (200, empty body).
        self.release = threading.Event()


@contextlib.contextmanager
def slow_http_endpoint(patience: float = 60.0) -> Iterator[SlowEndpoint]:
    """Serve a :class:`SlowEndpoint` on loopback (a thread) for the block.

    A request is answered once ``release`` is set, or after ``patience`` seconds;
    leaving the block releases them all and stops the server.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

    endpoint: SlowEndpoint | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert endpoint is not None  # noqa: S101
            endpoint.requests.append(time.monotonic())
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            endpoint.release.wait(patience)
            with contextlib.suppress(OSError):  # the client may have given up
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test's output is the test's."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    endpoint = SlowEndpoint(f"http://127.0.0.1:{httpd.server_address[1]}/hook")
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield endpoint
    finally:
        endpoint.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class FakeClock:
    """A clock that only moves when told to: ``clock()`` reads, ``advance()`` moves."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class DaemonProcess:
    """A ``perfwarden run`` subprocess on its own temporary directories."""

    def __init__(
        self,
        config_text: str | None = None,
        *,
        base_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        stdout: int | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if base_dir is None:
            # Short paths: a Unix socket path must fit in 108 bytes.
            self._tmp = tempfile.TemporaryDirectory(prefix="pw-", dir="/tmp")
            base_dir = Path(self._tmp.name)
        self.base_dir = base_dir
        self.socket_dir = base_dir / "run"
        self.state_dir = base_dir / "state"
        self.config_path: Path | None = None
        if config_text is not None:
            self.config_path = base_dir / "perfwarden.yaml"
            self.config_path.write_text(config_text)
        self.log_path = base_dir / "daemon.log"
        self._extra_env = dict(extra_env or {})
        self._args = list(args)
        self._stdout = stdout
        self.process: subprocess.Popen[bytes] | None = None
        self._notify: socket.socket | None = None
        self._notify_reader: threading.Thread | None = None
        self._notified = threading.Condition()
        self._notify_stop = threading.Event()
        self.notifications: list[str] = []

    # -- lifecycle ---------------------------------------------------------------

    def start(self, *, wait_ready: bool = True, timeout: float = 60.0) -> DaemonProcess:
        """Start the daemon; by default wait for ``READY=1``."""
        notify_path = self.base_dir / "notify.sock"
        self._close_notify()
        with contextlib.suppress(FileNotFoundError):
            notify_path.unlink()
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        self.notifications = []
        self._notify_reader = threading.Thread(
            target=self._read_notifications,
            args=(self._notify,),
            name="perfwarden-test-notify",
            daemon=True,
        )
        self._notify_reader.start()
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), **self._extra_env}
        env.pop("PERFWARDEN_CONFIG", None)
        command = [sys.executable, "-m", "perfwarden", "run", "--log-format", "json"]
        command += [
            "--socket-dir",
            str(self.socket_dir),
            "--state-dir",
            str(self.state_dir),
        ]
        if self.config_path is not None:
            command += ["--config", str(self.config_path)]
        command += self._args
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log if self._stdout is None else self._stdout,
                stderr=subprocess.STDOUT if self._stdout is None else log,
                env=env,
            )
        if wait_ready:
            self.wait_notification("READY=1", timeout)
        return self

    def _read_notifications(self, sock: socket.socket) -> None:
        # Drain the notify socket continuously, as systemd does: its kernel queue
        # holds only ~10 datagrams, and a daemon must never depend on a reader.
        sock.settimeout(0.1)
        while not self._notify_stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._notified:
                self.notifications.extend(data.decode().splitlines())
                self._notified.notify_all()

    def wait_notification(self, message: str, timeout: float = 60.0) -> None:
        """Wait until the daemon sent ``message`` to the notify socket."""
        deadline = time.monotonic() + timeout
        with self._notified:
            while message not in self.notifications:
                remaining = deadline - time.monotonic()
                exited = self.process is not None and self.process.poll() is not None
                if remaining <= 0 or exited:
                    msg = f"no {message} from the daemon; log:\n{self.log_text()}"
                    raise TimeoutError(msg)
                self._notified.wait(min(remaining, 0.2))

    def _close_notify(self) -> None:
        self._notify_stop.set()
        if self._notify_reader is not None:
            self._notify_reader.join(5)
            self._notify_reader = None
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        self._notify_stop = threading.Event()

    def signal(self, signum: int) -> None:
        """Send a signal to the daemon."""
        assert self.process is not None  # noqa: S101
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def close(self) -> None:
        """Stop the daemon (killing it if needed) and remove the temporary files."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._close_notify()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> DaemonProcess:
        # ``with DaemonProcess(...).start() as d`` reads naturally too: a daemon
        # already started is not started twice (the second would find the
        # first's lock and exit, leaving the first running unowned).
        return self if self.process is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- talking to it -------------------------------------------------------------

    @property
    def control_path(self) -> Path:
        """The daemon's control socket."""
        return self.socket_dir / CONTROL_SOCKET

    def cli(
        self, *args: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m perfwarden ARGS --socket-dir ...`` and capture its output."""
        command = [sys.executable, "-m", "perfwarden", *args]
        if args and args[0] != "check-config":
            command += ["--socket-dir", str(self.socket_dir)]
        return subprocess.run(  # noqa: PLW1510 - callers assert on returncode
            command, capture_output=True, text=True, timeout=timeout
        )

    def cli_json(self, *args: str) -> Any:
        """Run a read command with ``--json`` and decode its output (must exit 0)."""
        result = self.cli(*args, "--json")
        if result.returncode != 0:
            command = " ".join(args)
            msg = f"perfwarden {command} exited {result.returncode}: {result.stderr}"
            raise AssertionError(msg)
        return json.loads(result.stdout)

    def request(self, command: str, **args: Any) -> Any:
        """One control request, in-process (faster than the CLI)."""
        from perfwarden.control.channel import request  # noqa: PLC0415 - optional

        return request(self.control_path, command, **args)

    def send_datagrams(self, payloads: Iterable[bytes | str]) -> None:
        """Send each payload as one datagram to ``metrics.sock`` (blocking sends)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(str(self.socket_dir / METRICS_SOCKET))
            for payload in payloads:
                sock.send(payload.encode() if isinstance(payload, str) else payload)

    def send_lines(self, lines: Iterable[str], per_datagram: int) -> int:
        """Send ``lines`` packed ``per_datagram`` to a datagram (blocking sends);
        return how many lines were sent."""
        held = list(lines)
        step = per_datagram
        self.send_datagrams(
            "\n".join(held[i : i + step]) for i in range(0, len(held), step)
        )
        return len(held)

    def send_stream(self, data: bytes | str) -> None:
        """Write ``data`` on one connection to ``metrics.stream.sock`` and close it."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.socket_dir / METRICS_STREAM_SOCKET))
            sock.sendall(data.encode() if isinstance(data, str) else data)

    def ingest(self) -> dict[str, Any]:
        """The ``ingest`` counters of ``status``."""
        status: dict[str, Any] = self.request("status")
        counters: dict[str, Any] = status["ingest"]
        return counters

    def wait_received(self, count: int, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until at least ``count`` lines were received; return the counters."""
        return dict(
            wait_until(lambda: (c := self.ingest())["received"] >= count and c, timeout)
        )

    # -- logs -------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the daemon printed so far (only stderr when ``stdout=``)."""
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def log_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines (optionally only one event name)."""
        events = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and (
                    event is None or record.get("event") == event
                ):
                    events.append(record)
        return events

    def wait_log(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the first log line with this event name and return it."""
        found = wait_until(lambda: self.log_events(event), timeout)
        first: dict[str, Any] = found[0]
        return first
