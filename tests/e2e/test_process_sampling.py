"""The daemon's process sampler end to end: an entry matching by command line finds
a process that starts after the daemon is ready, and lets it go when it exits."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

CONFIG = """\
version: 1
processes:
  - name: late
    match: {{cmdline: "{marker}"}}
    interval: 0.2s
"""


def late_entry(daemon: DaemonProcess) -> dict[str, Any]:
    """The ``late`` entry of the sampler's status."""
    entry: dict[str, Any] = daemon.request("status")["sampler"]["late"]
    return entry


def memory_series(daemon: DaemonProcess) -> set[str]:
    """The series of ``memory_usage_mb`` in ``stats``."""
    records = daemon.request("stats", metrics=["memory_usage_mb"])["series"]
    return {str(record["series"]) for record in records}


class TestProcessStartedLater:
    """A process that starts after the daemon."""

    def test_found_then_let_go(self, make_daemon: Callable[..., DaemonProcess]) -> None:
        """Its pid shows in ``status`` and its memory in ``stats``; once it exits,
        the entry matches nothing again."""
        marker = f"pw-late-{uuid.uuid4().hex}"
        daemon = make_daemon(CONFIG.format(marker=marker)).start()
        wait_until(lambda: late_entry(daemon)["scans"] >= 3, timeout=60)
        assert [] == late_entry(daemon)["pids"]
        code = "import time; time.sleep(120)"
        process = subprocess.Popen([sys.executable, "-c", code, marker])
        try:
            wait_until(lambda: [process.pid] == late_entry(daemon)["pids"], timeout=60)
            wait_until(
                lambda: any(f"pid:{process.pid}" in s for s in memory_series(daemon)),
                timeout=60,
            )
        finally:
            process.kill()
            process.wait()
        wait_until(lambda: [] == late_entry(daemon)["pids"], timeout=60)
