"""Alert latency of a real perfwarden daemon: crossing datagram to ``alert.fired``.

Method
------
A real ``python -m perfwarden run --log-format json`` runs in a subprocess on
temporary directories, with its stdout as a pipe. A reader thread stamps every log
line with ``time.monotonic()`` the moment it arrives (the daemon's log writer thread
writes each line as soon as it is queued and the thread gets the GIL), so the
measured latency is what a consumer tailing the log sees: kernel delivery of the
datagram, the daemon's loop wake-up, parse, commit, evaluation, the hand-over to the
log writer thread, the write and the pipe.

The config (``for: 0s``, ``evaluation.window`` 100, ``min_samples`` 30) has a probe
metric ``probe_time`` (upper bound, warning 150, critical 200) and a background metric
``background_time`` with the same levels. Per try, on a fresh series
``probe_time|ms|#try:<basis>-<n>``:

1. warm-up: one datagram of 100 samples N(50, 5) (well below the levels), then poll
   ``stats`` until the series' status is ``ok`` (not timed);
2. a random pause of 20-50 ms (so tries do not lock to the background pacing or to the
   1 s evaluation tick);
3. the crossing datagram: **one line of 100 samples N(400, 5)**, i.e. the whole
   evaluation window (so its 95 % CI, about [399, 401], lies beyond critical);
   ``time.monotonic()`` is taken just before ``send()``;
4. wait for the ``alert.fired`` line whose ``tags.try`` is that try's tag (severity
   must be ``critical``); latency = its arrival stamp - the send stamp.

The series stays firing; the next try uses a fresh tag, so tries cannot interfere.
The same datagram is used for ``basis: sample`` (its newest value, ~400, crosses).

Background traffic: a separate process sends ``background_time`` timings (values
N(50, 10), below the levels) over ``metrics.sock`` with a *blocking* socket, paced
at ``--rate`` lines/s (default 20,000) in datagrams of ``--bg-lines`` lines (default
20, so 1,000 datagrams/s) round-robin over ``--bg-series`` tag values (default 100).
These series have levels, so the evaluator judges them after every batch, like the
probe. Each scenario (basis x with/without background) runs on a fresh daemon. At
the end the daemon's ``received`` count is checked against what was sent.

The daemon's own log timestamp (wall clock, microseconds) splits each latency into
*in daemon* (send -> the log line's timestamp) and *to reader* (the rest).

Usage::

    python bench/alert_latency.py                       # 200 tries per scenario
    python bench/alert_latency.py --tries 500 --json /tmp/alert-latency.json
    python bench/alert_latency.py --basis ci --rate 0    # no background only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from perfwarden.control.channel import ControlChannel
from perfwarden.paths import CONTROL_SOCKET, METRICS_SOCKET

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.synchronize import Event as MpEvent

LEVELS = "{unit: ms, bound: upper, warning: 150, critical: 200}"


def make_config(
    basis: str,
    window: int = 100,
    *,
    metrics: dict[str, str] | None = None,
    min_samples: int = 30,
    hysteresis: float = 0.05,
) -> str:
    """A daemon config with ``for: 0s`` and the given basis and evaluation window."""
    metrics = metrics or {"probe_time": LEVELS, "background_time": LEVELS}
    lines = [
        "version: 1",
        "statistics:",
        "  window: 1000",
        f"  min_samples: {min_samples}",
        "evaluation:",
        "  interval: 1s",
        f"  basis: {basis}",
        "  for: 0s",
        f"  window: {window}",
        f"  hysteresis: {hysteresis}",
        "  missing_after: 1h",
        "metrics:",
        *(f"  {name}: {levels}" for name, levels in metrics.items()),
    ]
    return "\n".join(lines) + "\n"


# -- a daemon whose stdout is a pipe ------------------------------------------------


@dataclass(slots=True)
class LogLine:
    """One JSON log line and the monotonic time it was read from the pipe."""

    at: float
    record: dict[str, Any]


class PipedDaemon:
    """``perfwarden run`` with its JSON log read from a pipe as it is written.

    ``threaded=True``: stdout is a pipe and a reader thread stamps each line on
    arrival (for latency).
    ``threaded=False``: stdout is a regular file and :meth:`poll` reads what was
    appended since the last call, in the caller's thread. Deterministic (a line
    written before a control reply was sent is in the file when the reply arrives),
    and a daemon writing a burst of log lines can never block on a full pipe.
    """

    def __init__(self, config_text: str, *, threaded: bool = True) -> None:
        # Short paths: a Unix socket path must fit in 108 bytes.
        self._tmp = tempfile.TemporaryDirectory(prefix="pwb-", dir="/tmp")
        self.base_dir = Path(self._tmp.name)
        self.socket_dir = self.base_dir / "run"
        self.config_path = self.base_dir / "perfwarden.yaml"
        self.config_path.write_text(config_text)
        self.threaded = threaded
        self.lines: list[LogLine] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._partial = b""
        self._log_path = self.base_dir / "daemon.log"
        self._log: IO[bytes] | None = None
        self._control: ControlChannel | None = None

    @property
    def metrics_path(self) -> Path:
        """The daemon's datagram socket."""
        return self.socket_dir / METRICS_SOCKET

    def start(self, timeout: float = 60.0) -> PipedDaemon:
        """Start the daemon and wait for its ``daemon.started`` line."""
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env.pop("PERFWARDEN_CONFIG", None)
        command = [sys.executable, "-m", "perfwarden", "run", "--log-format", "json"]
        command += ["--socket-dir", str(self.socket_dir)]
        command += ["--state-dir", str(self.base_dir / "state")]
        command += ["--config", str(self.config_path)]
        if self.threaded:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
            )
            assert self.process.stdout is not None
            self._thread = threading.Thread(
                target=self._read_forever, args=(self.process.stdout,), daemon=True
            )
            self._thread.start()
        else:
            with self._log_path.open("wb") as out:
                self.process = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, env=env
                )
            self._log = self._log_path.open("rb")
        self.wait_for(lambda r: r.get("event") == "daemon.started", timeout)
        self._control = ControlChannel(self.socket_dir / CONTROL_SOCKET)
        return self

    def _add(self, at: float, raw: bytes) -> None:
        try:
            record = json.loads(raw)
        except ValueError:
            record = {"event": "(unparsed)", "text": raw.decode(errors="replace")}
        if not isinstance(record, dict):
            record = {"event": "(unparsed)", "text": str(record)}
        self.lines.append(LogLine(at, record))

    def _read_forever(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            at = time.monotonic()
            with self._cond:
                self._add(at, raw)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def poll(self) -> None:
        """Non-threaded mode: take every complete line appended to the log file."""
        assert self._log is not None
        data = self._partial + self._log.read()
        *complete, self._partial = data.split(b"\n")
        at = time.monotonic()
        for raw in complete:
            if raw.strip():
                self._add(at, raw)

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,
        start: int = 0,
    ) -> LogLine:
        """The first line from index ``start`` on whose record satisfies predicate."""
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                if not self.threaded:
                    self.poll()
                while index < len(self.lines):
                    line = self.lines[index]
                    index += 1
                    if predicate(line.record):
                        return line
                remaining = deadline - time.monotonic()
                alive = self.process is not None and self.process.poll() is None
                if remaining <= 0 or not alive:
                    tail = "\n".join(str(x.record) for x in self.lines[-20:])
                    msg = f"no matching log line within {timeout}s; log tail:\n{tail}"
                    raise TimeoutError(msg)
                if self.threaded:
                    self._cond.wait(min(remaining, 0.5))
                else:
                    time.sleep(0.005)

    def events(self, name: str) -> list[LogLine]:
        """Lines with this event name seen so far."""
        if not self.threaded:
            self.poll()
        with self._cond:
            return [x for x in self.lines if x.record.get("event") == name]

    def call(self, command: str, **args: Any) -> Any:
        """One control request on a kept-open control connection."""
        assert self._control is not None
        return self._control.call(command, **args)

    def close(self) -> None:
        """Stop the daemon (SIGTERM, then kill) and remove the temporary directory."""
        if self._control is not None:
            self._control.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._thread is not None:
            self._thread.join(5)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if self._log is not None:
            self._log.close()
        self._tmp.cleanup()

    def __enter__(self) -> PipedDaemon:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def timing_line(name: str, values: list[float], tag: str) -> bytes:
    """One DogStatsD timing line carrying several values."""
    joined = ":".join(f"{v:.3f}" for v in values)
    return f"{name}:{joined}|ms|#{tag}\n".encode()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- background traffic -------------------------------------------------------------


def _background_sender(  # noqa: PLR0917 - a process entry point
    path: str, rate: float, lines: int, series: int, stop: MpEvent, out: Any
) -> None:
    rng = random.Random(1)
    payloads = []
    for i in range(64):
        payload = b"".join(
            b"background_time:%.3f|ms|#bg:%d\n"
            % (rng.gauss(50.0, 10.0), (i * lines + j) % series)
            for j in range(lines)
        )
        payloads.append(payload)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.connect(path)
    period = lines / rate
    sent = 0
    start = time.monotonic()
    next_at = start
    late = 0
    while not stop.is_set():
        now = time.monotonic()
        if next_at > now:
            time.sleep(next_at - now)
        elif now - next_at > 0.05:
            late += 1  # more than 50 ms behind schedule: do not burst to catch up
            next_at = now
        sock.send(payloads[sent % len(payloads)])
        sent += 1
        next_at += period
    elapsed = time.monotonic() - start
    sock.close()
    out.put({"lines": sent * lines, "seconds": elapsed, "late": late})


class Background:
    """A paced background sender process (nothing when ``rate`` is 0)."""

    def __init__(self, path: Path, rate: float, lines: int, series: int) -> None:
        self.rate = rate
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._out: Any = ctx.Queue()
        self._proc = (
            ctx.Process(
                target=_background_sender,
                args=(str(path), rate, lines, series, self._stop, self._out),
                daemon=True,
            )
            if rate > 0
            else None
        )
        self.result: dict[str, Any] = {"lines": 0, "seconds": 0.0, "late": 0}

    def start(self) -> None:
        """Start sending and give the sender a second to reach its pace."""
        if self._proc is not None:
            self._proc.start()
            time.sleep(1.0)

    def stop(self) -> dict[str, Any]:
        """Stop sending; return lines sent, seconds and the number of late resets."""
        if self._proc is not None:
            self._stop.set()
            self.result = self._out.get(timeout=30)
            self._proc.join(10)
        return self.result


# -- one scenario -------------------------------------------------------------------


@dataclass
class Scenario:
    """The figures of one basis x background combination."""

    basis: str
    rate: float
    tries: int
    latencies_ms: list[float] = field(default_factory=list)
    in_daemon_ms: list[float] = field(default_factory=list)
    misses: int = 0
    background: dict[str, Any] = field(default_factory=dict)
    received: int = 0
    dropped: int = 0
    daemon_cpu_seconds: float = 0.0
    duration_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Percentiles in ms (and the raw latencies)."""
        lat = self.latencies_ms
        return {
            "basis": self.basis,
            "background_lines_per_s": self.rate,
            "tries": self.tries,
            "fired": len(lat),
            "misses": self.misses,
            "p50_ms": percentile(lat, 50),
            "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else None,
            "mean_ms": statistics.fmean(lat) if lat else None,
            "in_daemon_p50_ms": percentile(self.in_daemon_ms, 50),
            "in_daemon_p99_ms": percentile(self.in_daemon_ms, 99),
            "background": self.background,
            "background_achieved_lines_per_s": (
                self.background.get("lines", 0) / self.background["seconds"]
                if self.background.get("seconds")
                else 0.0
            ),
            "received": self.received,
            "dropped": self.dropped,
            "daemon_cpu_seconds": self.daemon_cpu_seconds,
            "duration_seconds": self.duration_seconds,
            "latencies_ms": [round(x, 4) for x in lat],
        }


def _wall_of(record: dict[str, Any]) -> float | None:
    stamp = record.get("timestamp")
    if not isinstance(stamp, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(stamp).timestamp()
    return None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_scenario(args: argparse.Namespace, basis: str, rate: float) -> Scenario:
    """Start a fresh daemon, run the background (if any) and the tries."""
    scenario = Scenario(basis, rate, args.tries)
    rng = random.Random(f"{basis}-{rate}")
    metrics = {"probe_time": LEVELS}
    if not args.bg_unconfigured:
        metrics["background_time"] = LEVELS
    with PipedDaemon(make_config(basis, metrics=metrics)) as daemon:
        assert daemon.process is not None
        background = Background(
            daemon.metrics_path, rate, args.bg_lines, args.bg_series
        )
        background.start()
        cpu0 = _cpu_seconds(daemon.process.pid)
        t0 = time.monotonic()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.connect(str(daemon.metrics_path))
        try:
            for n in range(args.tries):
                tag = f"try:{basis}-{int(rate)}-{n}"
                value = tag.split(":", 1)[1]
                warm = [rng.gauss(50.0, 5.0) for _ in range(100)]
                sock.send(timing_line("probe_time", warm, tag))
                _wait_ok(daemon, value)
                spike = timing_line(
                    "probe_time", [rng.gauss(400.0, 5.0) for _ in range(100)], tag
                )
                time.sleep(rng.uniform(0.02, 0.05))
                start = len(daemon.lines)
                sent_wall = time.time()
                sent = time.monotonic()
                sock.send(spike)
                try:
                    line = daemon.wait_for(_fired_for(value), timeout=5.0, start=start)
                except TimeoutError:
                    scenario.misses += 1
                    continue
                assert line.record.get("severity") == "critical", line.record
                scenario.latencies_ms.append((line.at - sent) * 1e3)
                wall = _wall_of(line.record)
                if wall is not None:
                    scenario.in_daemon_ms.append((wall - sent_wall) * 1e3)
        finally:
            sock.close()
            scenario.duration_seconds = time.monotonic() - t0
            scenario.daemon_cpu_seconds = _cpu_seconds(daemon.process.pid) - cpu0
            scenario.background = background.stop()
        expected = scenario.background["lines"] + 200 * args.tries
        with contextlib.suppress(TimeoutError):
            _wait_until(lambda: daemon.call("status")["ingest"]["received"] >= expected)
        ingest = daemon.call("status")["ingest"]
        scenario.received = ingest["received"]
        scenario.dropped = ingest["dropped"]
    return scenario


def _fired_for(value: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the ``alert.fired`` line of the series tagged ``try:<value>``."""

    def match(record: dict[str, Any]) -> bool:
        tags = record.get("tags") or {}
        return record.get("event") == "alert.fired" and tags.get("try") == value

    return match


def _wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.002)
    return result


def _wait_ok(daemon: PipedDaemon, value: str) -> None:
    def ok() -> bool:
        records = daemon.call("stats", metrics=["probe_time"])["series"]
        return any(
            r.get("tags", {}).get("try") == value and r.get("status") == "ok"
            for r in records
        )

    _wait_until(ok)


# -- main ---------------------------------------------------------------------------


def _row(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label:<16} {r['background_lines_per_s']:>11,.0f} "
        f"{r['fired']:>4}/{r['tries']:<4} "
        f"{r['p50_ms']:>7.2f} {r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} "
        f"{(r['max_ms'] or float('nan')):>7.2f} "
        f"{r['in_daemon_p50_ms']:>6.2f}/{r['in_daemon_p99_ms']:<6.2f} "
        f"{r['background_achieved_lines_per_s']:>11,.0f} "
        f"{100 * r['daemon_cpu_seconds'] / r['duration_seconds']:>5.0f}%"
    )


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print the table, optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tries", type=int, default=200, help="tries per scenario")
    p.add_argument(
        "--basis",
        nargs="+",
        default=["ci", "sample"],
        choices=["ci", "mean", "sample", "multiwindow"],
        help="evaluation bases to measure (default: ci sample)",
    )
    p.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[20000.0, 0.0],
        help="background lines/s; 0 = none (default: 20000 0)",
    )
    p.add_argument("--bg-lines", type=int, default=20, help="lines per datagram")
    p.add_argument("--bg-series", type=int, default=100, help="background series")
    p.add_argument(
        "--bg-unconfigured",
        action="store_true",
        help="background metric without levels (not evaluated by the daemon)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run every scenario this many times (interleaved, fresh daemons)",
    )
    p.add_argument("--target-p99", type=float, default=20.0, help="ms")
    p.add_argument("--json", type=Path, metavar="PATH", help="write results here")
    args = p.parse_args(argv)

    keys = [(rate, basis) for rate in args.rate for basis in args.basis]
    runs: dict[tuple[float, str], list[dict[str, Any]]] = {k: [] for k in keys}
    for repeat in range(args.repeats):
        for rate, basis in keys:
            print(
                f"... repeat {repeat + 1}/{args.repeats}: basis={basis} "
                f"background={rate:g} lines/s",
                flush=True,
            )
            runs[rate, basis].append(run_scenario(args, basis, rate).summary())

    header = (
        f"{'basis (run)':<16} {'background':>11} {'fired':>9} {'p50 ms':>7} "
        f"{'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'in daemon':>13} "
        f"{'bg lines/s':>11} {'cpu':>6}"
    )
    print("\nlatency from send() of the crossing datagram to the alert.fired line")
    print("('in daemon': p50/p99 to the line's own timestamp; cpu: the daemon's)\n")
    print(header)
    print("-" * len(header))
    results = []
    for rate, basis in keys:
        reps = runs[rate, basis]
        for i, r in enumerate(reps):
            print(_row(f"{basis} ({i + 1})" if len(reps) > 1 else basis, r))
        if len(reps) > 1:
            med = {
                k: statistics.median(float(x[k]) for x in reps)
                for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")
            }
            print(
                f"{basis + ' median':<16} {rate:>11,.0f} {'':>9} "
                f"{med['p50_ms']:>7.2f} {med['p90_ms']:>7.2f} {med['p99_ms']:>7.2f} "
                f"{med['max_ms']:>7.2f}"
            )
        else:
            med = {k: reps[0][k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}
        results.append(
            {
                "basis": basis,
                "background_lines_per_s": rate,
                "median_of_repeats": med,
                "repeats": reps,
            }
        )
    worst = max((r["median_of_repeats"]["p99_ms"] for r in results), default=0.0)
    verdict = "met" if worst <= args.target_p99 else "MISSED"
    print(
        f"\ntarget p99 <= {args.target_p99:g} ms: {verdict} "
        f"(worst median-of-repeats p99 {worst:.2f} ms)"
    )
    if args.json:
        document = {
            "bench": "alert_latency",
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "args": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            },
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
