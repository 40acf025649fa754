"""The daemon's CPU per line over a long datagram run at many series, two builds
alternated (what a run of the shared harness is too short to show: checkpoints,
windows growing their buffers).

Uses the shared harness's load generator and control client (``--peers``, by
default ``../shared/peers`` beside this repository) and its daemon config; each
repeat starts each build fresh, sends ``--lines`` lines of ``--series`` names in
10-line datagrams (the sender blocks on a full socket queue, nothing is lost),
and reads the daemon's CPU time from ``/proc`` before and after, and its
checkpoint count and last checkpoint CPU from ``status``.

    python bench/long_ingest_ab.py --now .venv/bin/perfwarden --base OTHER/pw
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ingest import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent


def one_run(
    binary: str, args: argparse.Namespace, request: Any
) -> tuple[float, dict[str, Any]]:
    base = Path(tempfile.mkdtemp(prefix="pw-long-"))
    config = args.peers / "configs" / "pw-bench.yaml"
    command = [
        binary,
        "run",
        "--config",
        str(config),
        "--socket-dir",
        str(base / "run"),
        "--state-dir",
        str(base / "state"),
    ]
    with (base / "log").open("wb") as log:
        daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    control = base / "run" / "control.sock"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request(control, "status")
                break
            except Exception:  # not up yet, whatever the client raises
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        time.sleep(0.5)
        before = cpu_seconds(daemon.pid)
        subprocess.run(
            [
                sys.executable,
                str(args.peers / "bench" / "pw_loadgen.py"),
                "--unix-dgram",
                str(base / "run" / "metrics.sock"),
                "--on-eagain",
                "block",
                "-n",
                str(args.lines),
                "--names",
                str(args.series),
                "--per-packet",
                "10",
                "--quiet",
            ],
            check=True,
            capture_output=True,
        )
        while request(control, "status")["ingest"]["received"] < args.lines:
            time.sleep(0.02)
        used = cpu_seconds(daemon.pid) - before
        state = request(control, "status")["state"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        shutil.rmtree(base, ignore_errors=True)
    return used / args.lines * 1e6, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--now", required=True, help="perfwarden executable")
    parser.add_argument("--base", required=True, help="the other build's")
    parser.add_argument("--peers", type=Path, default=ROOT.parent / "shared" / "peers")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=12_000_000)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    sys.path.insert(0, str(args.peers / "ab"))
    from pwcontrol import request  # the harness's control client

    builds = {"now": args.now, "base": args.base}
    results: dict[str, list[float]] = {name: [] for name in builds}
    for repeat in range(args.repeats):
        order = list(builds.items())
        for name, binary in order if repeat % 2 == 0 else order[::-1]:
            per_million, state = one_run(binary, args, request)
            results[name].append(per_million)
            print(
                f"{name}: {per_million:.3f} s CPU per million lines, "
                f"{state['checkpoints']} checkpoints, last "
                f"{state.get('last_cpu_ms')} ms CPU",
                flush=True,
            )
    for name, values in results.items():
        print(
            f"{name}: median {statistics.median(values):.3f} "
            f"[{min(values):.3f}-{max(values):.3f}]"
        )
    ratio = statistics.median(results["now"]) / statistics.median(results["base"])
    print(f"now / base: {ratio:.3f}")


if __name__ == "__main__":
    main()
