"""An incident across 5,000 series, beside a git revision: how long until every
alert fires and how long the daemon's loop stalls on the way.

5,000 tagged series of one metric with alert levels arrive in one stream write,
each beyond its critical level; the optimizer is asked about each of the 5,000
violations (plugins off: no plugin answers, so only the daemon's own work per
violation counts). For the working tree and for ``--base`` (a ``git archive`` of
that revision's ``daemon/`` on ``PYTHONPATH``), alternating fresh daemons, it
prints the seconds from the write to ``alerts_firing`` = 5,000 and the loop's
longest stall (``status``: ``loop.max_lag_ms``, 3 s later), medians and their
ratio.

    python bench/incident_dispatch.py --base c795e63 --repeats 3   # ~1.5 minutes
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from perfwarden.control.channel import request
from perfwarden.testing import DaemonProcess, wait_until

ROOT = Path(__file__).resolve().parent.parent
SERIES = 5_000
CONFIG = """\
version: 1
statistics: {min_samples: 2}
evaluation: {basis: sample, window: 2}
metrics:
  lat: {unit: ms, bound: upper, warning: 10, critical: 20}
"""


def measure(daemon_dir: Path) -> tuple[float, float]:
    """Seconds until every alert fires, and the loop's longest stall in ms."""
    env = {"PYTHONPATH": str(daemon_dir), "PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with DaemonProcess(CONFIG, extra_env=env) as daemon:
        started = time.perf_counter()
        daemon.send_stream("".join(f"lat:250|ms|#id:{i}\n" for i in range(SERIES)) * 2)

        def firing() -> bool:
            # A long timeout: the stalled loop answers late, not never.
            status = request(daemon.control_path, "status", timeout=300)
            return bool(status["evaluation"]["alerts_firing"] >= SERIES)

        wait_until(firing, timeout=280)
        took = time.perf_counter() - started
        time.sleep(3)  # the optimizer's work on the 5,000 violations follows
        status = request(daemon.control_path, "status", timeout=300)
        return took, float(status["loop"]["max_lag_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD~1", help="git revision to compare")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pw-incident-") as tmp:
        archive = Path(tmp) / "base.tar"
        command = ["git", "-C", str(ROOT), "archive", "-o", str(archive), args.base]
        subprocess.run([*command, "daemon"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        paths = {"base": Path(tmp) / "daemon", "now": ROOT / "daemon"}
        runs: dict[str, list[tuple[float, float]]] = {"base": [], "now": []}
        for repeat in range(args.repeats):
            order = ("base", "now") if repeat % 2 == 0 else ("now", "base")
            for name in order:
                runs[name].append(measure(paths[name]))
                print(name, runs[name][-1], flush=True)
    load = os.getloadavg()[0]
    print(
        f"\nbase {args.base}, {args.repeats} interleaved runs each, medians "
        f"(shared machine, load average {load:.1f})"
    )
    print("| what | base | now | now / base |")
    print("| --- | --- | --- | --- |")
    for index, what, unit in (
        (0, "write to all firing", "s"),
        (1, "longest stall", "ms"),
    ):
        base = statistics.median(r[index] for r in runs["base"])
        now = statistics.median(r[index] for r in runs["now"])
        print(f"| {what} | {base:.1f} {unit} | {now:.1f} {unit} | {now / base:.2f} |")


if __name__ == "__main__":
    main()
