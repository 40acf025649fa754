"""The issue-15 repros against a real daemon, with the figures for bench/hostile.md.

Each scenario starts a fresh daemon (``perfwarden.testing.DaemonProcess``) on the
defaults unless said, does what an attacker did in the report, and measures the
daemon: resident memory (``status``), open file descriptors (``/proc``), whether
``status`` and a scrape still answer, and how long a ``ping`` (or ``status``)
waits while a big ``stats`` or the ``alerts`` of 5,000 firing series is served.
Runs in about two minutes:

    python bench/hostile.py
    python bench/hostile.py --only tags,sets
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable


def rss(daemon: DaemonProcess) -> float:
    return float(daemon.request("status")["memory"]["rss_mb"])


def fds(daemon: DaemonProcess) -> int:
    assert daemon.process is not None
    return len(os.listdir(f"/proc/{daemon.process.pid}/fd"))


def tags() -> list[tuple[str, str]]:
    """10k lines each with 1,450 tags (7.6 KB), then a checkpoint."""
    with DaemonProcess("version: 1\n") as daemon:
        before = rss(daemon)
        tag_set = ",".join(f"t{i}" for i in range(1450))
        sent = daemon.send_lines((f"m{i}:1|g|#{tag_set}" for i in range(10_000)), 8)
        counters = daemon.wait_received(sent, timeout=120)
        time.sleep(2.5)  # one checkpoint
        size = (daemon.state_dir / "state.db").stat().st_size
        wal = daemon.state_dir / "state.db-wal"
        size += wal.stat().st_size if wal.exists() else 0
        return [
            ("RSS before / after", f"{before:.0f} / {rss(daemon):.0f} MB"),
            ("lines refused (too_many_tags)", str(counters["malformed"])),
            ("state.db after a checkpoint", f"{size / 2**20:.1f} MiB"),
        ]


def tags_at_limit() -> list[tuple[str, str]]:
    """9,900 series, each at both tag limits (32 tags in 1 KB)."""
    with DaemonProcess("version: 1\n") as daemon:
        lines = [
            f"m:1|g|#id:{i}" + "".join(f",tag{j}:{i:06}{j:020}" for j in range(31))
            for i in range(9_900)
        ]
        sent = daemon.send_lines(lines, 32)
        daemon.wait_received(sent, timeout=120)
        plain = DaemonProcess("version: 1\n").start()
        try:
            plain.send_lines((f"m:1|g|#id:{i}" for i in range(9_900)), 32)
            plain.wait_received(9_900, timeout=120)
            base = rss(plain)
        finally:
            plain.close()
        return [
            ("RSS, 32 tags / 1 tag per series", f"{rss(daemon):.0f} / {base:.0f} MB")
        ]


def sets() -> list[tuple[str, str]]:
    """Distinct 8 KB set members from 2 senders, 30 s interval."""
    with DaemonProcess("version: 1\nevaluation: {interval: 30s}\n") as daemon:
        pad = "x" * 8000
        peak = 0.0
        for sender in range(2):
            for block in range(4):
                lines = (f"u:{sender}-{block}-{i}-{pad}|s" for i in range(2000))
                daemon.send_lines(lines, 7)
                peak = max(peak, rss(daemon))
        status = wait_until(
            lambda: (
                (s := daemon.request("status"))["ingest"]["received"] >= 16000 and s
            ),
            timeout=120,
        )
        peak = max(peak, rss(daemon))
        return [
            ("peak RSS, 16,000 members of 8 KB", f"{peak:.0f} MB"),
            ("members not counted (over 16 MiB)", str(status["set_members_overflow"])),
        ]


def control_idle() -> list[tuple[str, str]]:
    """1,050 idle control connections."""
    with DaemonProcess("version: 1\n") as daemon:
        before = fds(daemon)
        idle = []
        for _ in range(1050):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(daemon.control_path))
            idle.append(sock)
        wait_until(lambda: fds(daemon) <= before + 70, timeout=60)
        held = fds(daemon) - before
        for sock in idle:
            sock.close()
        status = wait_until(lambda: daemon.request("status"), timeout=60)
        lines = len(daemon.log_text().splitlines())
        return [
            ("daemon fds held by them", str(held)),
            ("refused", str(status["control"]["refused"])),
            (
                "control.refused log lines",
                str(sum(1 for _ in daemon.log_events("control.refused"))),
            ),
            ("log lines in all", str(lines)),
        ]


def many_series(daemon: DaemonProcess, count: int = 9_900) -> None:
    lines = [f"s:{i}|g|#id:{i}" for i in range(count)]
    daemon.send_lines(lines, 100)
    daemon.wait_received(count, timeout=120)


_PINGER = """
import json, select, sys, time
from perfwarden.control.channel import request
path, command = sys.argv[1:3]
print("go", flush=True)
waits = []
while not select.select([sys.stdin], [], [], 0)[0]:
    started = time.perf_counter()
    request(path, command)
    waits.append((time.time(), time.perf_counter() - started))
print(json.dumps(waits))
"""


def _while_served(
    daemon: DaemonProcess, command: str, read: Callable[[], int], pinged: str
) -> list[tuple[str, str]]:
    """``read()`` (a big paged command, returning how many records it got) while
    another process sends ``pinged`` requests, each on a new connection: how long
    those waited with the daemon idle and while ``read()`` ran."""
    # The pings come from another process: no GIL shared with the reader.
    pinger = subprocess.Popen(
        [sys.executable, "-c", _PINGER, str(daemon.control_path), pinged],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
    )
    assert pinger.stdout is not None
    assert pinger.stdin is not None
    pinger.stdout.readline()  # it is pinging
    time.sleep(2)  # pings with the daemon idle: the baseline
    started = time.perf_counter()
    count = read()
    took = time.perf_counter() - started
    time.sleep(0.2)
    pinger.stdin.close()
    output = pinger.stdout.read()
    if not output:
        msg = "the pinger died"
        raise RuntimeError(msg)
    pings: list[tuple[float, float]] = json.loads(output)
    offset = time.perf_counter() - time.time()  # the pinger stamps wall time
    idle = sorted(w for at, w in pings if at + offset < started - 0.2)
    waits = sorted(w for at, w in pings if started <= at + offset <= started + took)
    pinger.wait()
    return [
        (f"full {command} (pages joined)", f"{count} records in {took:.2f} s"),
        (
            f"{pinged} (a new connection each) idle: median / max",
            f"{idle[len(idle) // 2] * 1000:.1f} / {idle[-1] * 1000:.0f} ms "
            f"({len(idle)} requests)",
        ),
        (
            f"{pinged} while {command} ran: median / max",
            f"{waits[len(waits) // 2] * 1000:.1f} / {waits[-1] * 1000:.0f} ms "
            f"({len(waits)} requests)",
        ),
    ]


def stats_stall() -> list[tuple[str, str]]:
    """A read-only client's full ``stats`` at 10k series; pings meanwhile."""
    with DaemonProcess("version: 1\n") as daemon:
        many_series(daemon)
        return _while_served(
            daemon, "stats", lambda: len(daemon.request("stats")["series"]), "ping"
        )


_INCIDENT = """\
version: 1
statistics: {min_samples: 2}
evaluation: {basis: sample, window: 2}
metrics:
  lat: {unit: ms, bound: upper, warning: 10, critical: 20}
"""


def alerts_stall() -> list[tuple[str, str]]:
    """``perfwarden alerts`` in an incident: 5,000 series of one metric firing
    (plugins off: only the listing is measured); ``ping`` and ``status`` meanwhile."""
    count = 5_000
    env = {"PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with DaemonProcess(_INCIDENT, extra_env=env) as daemon:
        daemon.send_stream("".join(f"lat:250|ms|#id:{i}\n" for i in range(count)) * 2)
        started = time.perf_counter()
        wait_until(
            lambda: daemon.request("status")["evaluation"]["alerts_firing"] >= count,
            timeout=120,
        )
        firing = time.perf_counter() - started
        loop = daemon.request("status")["loop"]

        def listing() -> int:
            result = daemon.cli("alerts", timeout=120)
            if result.returncode != 0:
                raise RuntimeError(result.stderr)
            return result.stdout.count("CRITICAL: ")

        rows = [
            (f"{count} series sent to all firing", f"{firing:.1f} s"),
            ("loop's longest stall until then", f"{loop['max_lag_ms']:.0f} ms"),
        ]
        rows += _while_served(daemon, "alerts", listing, "ping")
        return rows + _while_served(daemon, "alerts", listing, "status")[1:]


def unread_replies() -> list[tuple[str, str]]:
    """8 clients pipelining ``stats`` at 10k series without reading."""
    with DaemonProcess("version: 1\n") as daemon:
        many_series(daemon)
        before = rss(daemon)
        line = json.dumps({"command": "stats", "args": {"recent": 1}}).encode() + b"\n"
        stuck = []
        peak = before
        for _ in range(8):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(daemon.control_path))
            sock.sendall(line * 20)
            stuck.append(sock)
        deadline = time.monotonic() + 40
        control: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = daemon.request("status")
            peak = max(peak, status["memory"]["rss_mb"])
            control = status["control"]
            if control["slow_readers"] >= 8:
                break
            time.sleep(0.5)
        for sock in stuck:
            sock.close()
        return [
            ("RSS before / peak", f"{before:.0f} / {peak:.0f} MB"),
            ("dropped as slow readers", str(control["slow_readers"])),
        ]


def http_unread() -> list[tuple[str, str]]:
    """40 clients that request /metrics and never read, at 8k series."""
    config = 'version: 1\nhttp: {listen: "127.0.0.1:0"}\n'
    with DaemonProcess(config) as daemon:
        port = int(daemon.wait_log("http.started")["port"])
        lines = [f"w.{i}:{i}|g|#pad:{'x' * 100}" for i in range(8000)]
        daemon.send_lines(lines, 50)
        daemon.wait_received(8000, timeout=120)
        before = rss(daemon)
        stuck = []
        for _ in range(40):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            stuck.append(sock)
        started = time.perf_counter()

        def scrape() -> bool:
            request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    sock.sendall(request)
                    head = sock.recv(64)
                    while sock.recv(1 << 16):
                        pass
            except ConnectionError:
                return False
            return head.startswith(b"HTTP/1.1 200")

        wait_until(scrape, timeout=120, interval=0.2)
        answered = time.perf_counter() - started
        peak = rss(daemon)
        http = daemon.request("status")["http"]
        for sock in stuck:
            sock.close()
        return [
            ("first 200 scrape after the 40 connected", f"{answered:.1f} s"),
            ("RSS before / with them", f"{before:.0f} / {peak:.0f} MB"),
            (
                "dropped as slow readers / answered 503",
                f"{http['slow_readers']} / {http['busy']}",
            ),
        ]


SCENARIOS: dict[str, Callable[[], list[tuple[str, str]]]] = {
    "tags": tags,
    "tags-at-limit": tags_at_limit,
    "sets": sets,
    "control-idle": control_idle,
    "stats-stall": stats_stall,
    "alerts-stall": alerts_stall,
    "unread-replies": unread_replies,
    "http-unread": http_unread,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()
    print("| scenario | what | figure |")
    print("| --- | --- | --- |")
    for name in args.only.split(","):
        started = time.perf_counter()
        for what, figure in SCENARIOS[name]():
            print(f"| {name} | {what} | {figure} |", flush=True)
        print(f"<!-- {name}: {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
