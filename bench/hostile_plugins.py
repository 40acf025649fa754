"""A daemon against plugins that exit, block, hold the GIL, hang and hoard 2 GiB.

Installs the test suite's hostile plugin distribution
(``tests/data/plugins/hostile_plugins``) into this environment (``pip``), runs a
real daemon whose metrics list them, fires and resolves alerts until each plugin
is switched off (as ``tests/e2e/test_hostile_plugins.py`` does), then prints, per
isolation mode, the daemon's RSS, the event loop's longest lateness and stall count
(``perfwarden status``), and each plugin's state and last error. Uninstalls the
distribution at the end. About a minute per mode on a quiet machine.

Usage: ``python bench/hostile_plugins.py [--modes process,in-process]
[--only hostile_holds_gil,...]`` (``--only`` lists just those on the alerting
metric; ``hostile_hangs_apply`` always has its own).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from perfwarden.testing import DaemonProcess, wait_until

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "tests" / "data" / "plugins" / "hostile_plugins"
PLUGINS = (
    "hostile_exit",
    "hostile_hard_exit",
    "hostile_blocks_loop",
    "hostile_allocates",
    "hostile_holds_gil",
)

CONFIG = """\
version: 1
evaluation: {{interval: 0.2s, basis: sample, hysteresis: 0.05}}
optimizer: {{plugin_timeout: 1s, max_failures: 2, cooldown: 0.1s}}
knobs:
  batch.size: {{min: 1, max: 256, initial: 64}}
metrics:
  latency: {{bound: upper, warning: 150, critical: 200, optimizers: [{names}]}}
  queue: {{bound: upper, warning: 150, critical: 200,
          optimizers: [hostile_hangs_apply]}}
plugins:
{plugins}"""


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
    )


def cycle(daemon: DaemonProcess, metric: str, until: str) -> None:
    def count(event: str) -> int:
        return len(daemon.log_events(event))

    seen, resolved = count(until), count("alert.resolved")
    daemon.send_datagrams([f"{metric}:10|ms"] * 25 + [f"{metric}:500|ms"] * 5)
    wait_until(lambda: count(until) > seen, timeout=60)
    daemon.send_datagrams([f"{metric}:10|ms"] * 5)
    wait_until(lambda: count("alert.resolved") > resolved, timeout=60)


def run(mode: str, only: set[str]) -> dict[str, Any]:
    names = (*PLUGINS, "hostile_hangs_apply")
    # In the daemon, os._exit() ends the daemon and 2 GiB would be its own: what
    # only a host survives is left out there.
    only_a_host_survives = {"hostile_hard_exit", "hostile_allocates"}
    listed = [
        n
        for n in PLUGINS
        if (mode == "process" or n not in only_a_host_survives)
        and (not only or n in only)
    ]
    plugins = "".join(f"  {n}: {{isolation: {mode}}}\n" for n in names)
    daemon = DaemonProcess(
        CONFIG.format(names=", ".join(listed), plugins=plugins)
    ).start()
    try:
        for _ in range(2):
            cycle(daemon, "latency", "optimizer.no_proposal")
            cycle(daemon, "queue", "optimizer.apply_failed")
        # A third alert: the GIL holder's first stall may hide in the blocking
        # coroutine's (one stall, one culprit named), so it needs two more.
        cycle(daemon, "latency", "optimizer.no_proposal")
        status = daemon.request("status")
        rows = {
            p["name"]: (p["state"], p["error"])
            for p in daemon.cli_json("plugins")["plugins"]
            if p["name"] in names
        }
        return {
            "rss_mb": status["memory"]["rss_mb"],
            "loop": status["loop"],
            "plugins": rows,
            "alive": daemon.process is not None and daemon.process.poll() is None,
            "host_exits": len(daemon.log_events("plugin.host_exited")),
            "named": [
                (e["plugin"], e["via"], e["seconds"])
                for e in daemon.log_events("loop.stalled")
                if e["plugin"] is not None
            ],
        }
    finally:
        daemon.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="process,in-process")
    parser.add_argument(
        "--only", default="", help="comma-separated: the latency plugins to list"
    )
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "hostile_plugins"
        shutil.copytree(DIST, source)
        pip("install", "--no-build-isolation", "--no-deps", str(source))
        try:
            for mode in args.modes.split(","):
                result = run(mode, only)
                loop = result["loop"]
                print(
                    f"{mode}: daemon alive {result['alive']}, RSS "
                    f"{result['rss_mb']} MB, loop max lag {loop['max_lag_ms']} ms, "
                    f"stalls > {loop['stall_threshold_ms']:g} ms: {loop['stalls']} "
                    f"(last: {loop['last_stall']}), host exits "
                    f"{result['host_exits']}"
                )
                print(f"  stalls named: {result['named']}")
                for name, (state, error) in sorted(result["plugins"].items()):
                    print(f"  {name:<22} {state:<9} {error}")
        finally:
            pip("uninstall", "-y", "perfwarden-hostile-plugins")


if __name__ == "__main__":
    main()
