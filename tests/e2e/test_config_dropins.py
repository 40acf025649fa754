"""conf.d drop-ins with a real daemon: hot reload, rejection naming the file."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from perfwarden.testing import wait_until

from .conftest import BASE_CONFIG

if TYPE_CHECKING:
    from pathlib import Path

    from perfwarden.testing import DaemonProcess


class TestDropIns:
    """The watcher sees conf.d; a bad drop-in keeps the old config."""

    def test_hot_reload_and_rejection(self, daemon: DaemonProcess) -> None:
        """A new drop-in applies without a signal; a broken one is rejected."""
        conf_d = daemon.base_dir / "conf.d"
        conf_d.mkdir()
        (conf_d / "10-tune.yaml").write_text(
            "metrics:\n  context_loading_time: {warning: 140}\n"
        )
        reloaded = daemon.wait_log("config.reloaded")
        assert any("warning" in change for change in reloaded["changes"])
        bad = conf_d / "20-bad.yaml"
        bad.write_text("metrics:\n  context_loading_time: {warning: soon}\n")
        rejected = daemon.wait_log("config.rejected")
        assert any(error.startswith(f"{bad}:2:") for error in rejected["errors"])
        status = daemon.request("status")
        assert status["config"]["last_reload"]["ok"] is False
        assert 1 == len(daemon.log_events("config.reloaded"))
        bad.unlink()  # back to the set in force: nothing to reload
        (conf_d / "10-tune.yaml").write_text(
            "metrics:\n  context_loading_time: {warning: 130}\n"
        )
        wait_until(lambda: len(daemon.log_events("config.reloaded")) == 2)


class TestCheckConfig:
    """``perfwarden check-config`` names the drop-in's file and line."""

    def test_names_the_drop_in(self, tmp_path: Path) -> None:
        """Exit 1 and PATH:LINE for a problem in conf.d."""
        main = tmp_path / "perfwarden.yaml"
        main.write_text(BASE_CONFIG)
        (tmp_path / "conf.d").mkdir()
        drop_in = tmp_path / "conf.d" / "10-a.yaml"
        drop_in.write_text("\nlogging:\n  level: loud\n")
        done = subprocess.run(
            [sys.executable, "-m", "perfwarden", "check-config", str(main)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 1 == done.returncode
        assert done.stderr.startswith(f"{drop_in}:3: logging.level: must be one of")
        drop_in.write_text("logging:\n  level: warning\n")
        done = subprocess.run(
            [sys.executable, "-m", "perfwarden", "check-config", str(main)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == done.returncode, done.stderr
        assert f"  with {drop_in}" in done.stdout.splitlines()
