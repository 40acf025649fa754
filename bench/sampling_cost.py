"""What sampling one process costs the daemon, by how it is matched.

Starts a real daemon whose one ``processes:`` entry samples a sleeping child
process every 0.2 s, matched by ``pid``, by ``cmdline`` regular expression or by
``name`` (a daemon each, interleaved; the child runs as a link named
``pw-cost-probe``, so each match samples exactly that one process), waits for
``--scans`` scans, and prints the sampler's own accounting from ``status``: the
wall time of a scan (match and read, in its worker thread, off the event loop)
per sampled process, averaged over the daemon's scans (its first included: ``all``)
and over those after the first ``WARM`` (``steady``: what each scan costs once the
daemon runs; the difference of two readings of the cumulative figure).

    python bench/sampling_cost.py            # ~15 s
    python bench/sampling_cost.py --scans 100 --repeats 3
    python bench/sampling_cost.py --sleepers 300 --base main   # a busier host

``--sleepers N`` starts N more processes (``sleep``) for the whole run: a scan
that lists and reads every process grows with them, one that reads only new
processes should not. ``--base REV`` measures that revision's ``daemon/`` too (a
``git archive`` on ``PYTHONPATH``), interleaved with the working tree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import psutil

from perfwarden.testing import DaemonProcess, wait_until

ROOT = Path(__file__).resolve().parents[1]
_MARK = "perfwarden-sampling-cost-probe"
_NAME = "pw-cost-probe"
KINDS = ("pid", "cmdline", "name")
MEASURES = ("all", "steady")
WARM = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=50, help="scans per entry")
    parser.add_argument("--repeats", type=int, default=3, help="fresh daemons")
    parser.add_argument("--sleepers", type=int, default=0, help="extra processes")
    parser.add_argument("--base", help="git revision to measure beside this tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pw-sampling-") as tmp:
        trees = {"now": ROOT / "daemon"}
        if args.base:
            trees = {"base": checkout(args.base, Path(tmp)), **trees}
        program = Path(tmp) / _NAME
        program.symlink_to(psutil.Process().exe())
        sleepers = [subprocess.Popen(["sleep", "3600"]) for _ in range(args.sleepers)]
        try:
            costs = measure(trees, program, args)
            host = len(psutil.pids())
        finally:
            for sleeper in sleepers:
                sleeper.kill()
                sleeper.wait()
    load = os.getloadavg()
    print(
        f"processes on this machine: {host} at the end of the runs "
        f"(with {args.sleepers} sleepers); load average {load[0]:.1f} / {load[1]:.1f}"
    )
    for kind in KINDS:
        for what in MEASURES:
            medians = {}
            for tree in trees:
                runs = costs[tree, kind, what]
                medians[tree] = statistics.median(runs)
                shown = ", ".join(f"{c:.3f}" for c in runs)
                print(
                    f"{tree:4} match by {kind:8} {what:6} median "
                    f"{medians[tree]:.3f} ms per process per scan (runs: {shown})"
                )
            if medians.get("base"):
                print(f"     now / base: {medians['now'] / medians['base']:.2f}")


def checkout(revision: str, into: Path) -> Path:
    """That revision's ``daemon/`` extracted under ``into``."""
    archive = into / "base.tar"
    command = ["git", "-C", str(ROOT), "archive", "-o", str(archive), revision]
    subprocess.run([*command, "daemon"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "base", filter="data")
    return into / "base" / "daemon"


def measure(
    trees: dict[str, Path], program: Path, args: argparse.Namespace
) -> dict[tuple[str, str, str], list[float]]:
    """Every (tree, kind, measure)'s cost per repeat, trees and kinds interleaved."""
    costs: dict[tuple[str, str, str], list[float]] = {}
    for repeat in range(args.repeats):
        order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
        for kind in KINDS:
            for tree in order:
                run = one_run(trees[tree], program, kind, args.scans)
                for measure, cost in zip(MEASURES, run, strict=True):
                    costs.setdefault((tree, kind, measure), []).append(cost)
    return costs


def one_run(
    daemon_dir: Path, program: Path, kind: str, scans: int
) -> tuple[float, float]:
    """Cost per process per scan (ms) of one entry matching a sleeping child by
    ``kind``, from the daemon's status: over all scans, and after the first WARM."""
    probe = subprocess.Popen(
        [str(program), "-c", f"import time; time.sleep(600)  # {_MARK}"]
    )
    try:
        match = {"pid": str(probe.pid), "cmdline": f'"{_MARK}"', "name": _NAME}[kind]
        config = f"""\
version: 1
processes:
  - name: probe
    match: {{{kind}: {match}}}
    interval: 0.2s
"""
        env = {"PYTHONPATH": str(daemon_dir)}
        with DaemonProcess(config, extra_env=env) as daemon:

            def entry() -> dict[str, float]:
                found: dict[str, float] = daemon.request("status")["sampler"]["probe"]
                return found

            warm = wait_until(lambda: (e := entry())["scans"] >= WARM and e, 60)
            found = wait_until(
                lambda: (e := entry())["scans"] >= scans and e, timeout=60 + scans
            )
            if found["matched"] != 1:
                sys.exit(f"{kind} matched {found['matched']} processes, not 1")
            # One process sampled at each scan: the cumulative seconds are
            # cost x scans.
            total = found["cost_per_process_ms"] * found["scans"]
            before = warm["cost_per_process_ms"] * warm["scans"]
            steady = (total - before) / (found["scans"] - warm["scans"])
            return found["cost_per_process_ms"], steady
    finally:
        probe.kill()
        probe.wait()


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s)")
