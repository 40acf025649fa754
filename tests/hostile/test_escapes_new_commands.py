"""The commands added this morning (backtest, learning, plugins, check-config) print
names, tags and hosts from their inputs escaped, as every text command does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

TITLE = "\x1b]0;pwned\x07"  # OSC 0: retitle the terminal window
CLEAR = "\x1b[2J"
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def perfwarden(*args: str, env: dict[str, str] | None = None) -> str:
    """The CLI's stdout and stderr together (escapes may go to either)."""
    result = subprocess.run(
        [sys.executable, "-m", "perfwarden", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    return result.stdout + result.stderr


def assert_shown_not_obeyed(output: str, shown: str) -> None:
    for raw in RAW:
        assert raw not in output
    assert shown in output


class TestNewCommandsEscape:
    def test_check_config(self, tmp_path: Path) -> None:
        """A problem's key path names the metric escaped."""
        config = tmp_path / "perfwarden.yaml"
        config.write_text(
            'version: 1\nmetrics:\n  "evil\\e]0;pwned\\a\\u202e": {bound: sideways}\n'
        )
        output = perfwarden("check-config", str(config))
        assert_shown_not_obeyed(output, "evil\\x1b]0;pwned\\x07\\u202e")

    def test_backtest(self, tmp_path: Path) -> None:
        """Timelines name the series, problems quote the line: both escaped."""
        config = tmp_path / "perfwarden.yaml"
        config.write_text(
            "version: 1\nstatistics: {min_samples: 2}\n"
            "evaluation: {interval: 1s, basis: sample, window: 2}\n"
            "metrics:\n  lat: {bound: upper, warning: 10, critical: 20}\n"
        )
        now = int(time.time()) - 100
        lines = [f"lat:{v}|ms|#t:{CLEAR}|T{now + i}" for i, v in enumerate([250] * 9)]
        lines.append(f"bad{TITLE}\x9b line")
        history = tmp_path / "history.statsd"
        history.write_text("\n".join(lines) + "\n")
        output = perfwarden(
            "backtest", "--config", str(config), "--input", str(history)
        )
        assert "lat{t=\\x1b[2J}" in output or "t:\\x1b[2J" in output, output
        assert_shown_not_obeyed(output, "\\x1b[2J")

    def test_learning_import(self, daemon: DaemonProcess, tmp_path: Path) -> None:
        """The hosts an import names are printed escaped."""
        export = tmp_path / "export.json"
        document = {
            "format": "perfwarden-learning",
            "version": 1,
            "hosts": [f"host{TITLE}"],
            "strategies": {"s": {"successes": 1, "trials": 2}},
            "by_metric": [],
        }
        export.write_text(json.dumps(document))
        output = perfwarden(
            "learning",
            "import",
            str(export),
            "--socket-dir",
            str(daemon.socket_dir),
        )
        assert "imported" in output, output
        assert_shown_not_obeyed(output, "host\\x1b]0;pwned\\x07")

    def test_plugins(
        self, make_daemon: Callable[..., DaemonProcess], tmp_path: Path
    ) -> None:
        """A plugin whose entry point is named with escapes (and fails to load) is
        listed escaped, with its error."""
        dist = tmp_path / "site" / "evil_plugin-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: evil-plugin\nVersion: 1.0\n"
        )
        (dist / "entry_points.txt").write_text(
            f"[perfwarden.optimizers]\nevil{CLEAR} = no_such_module_{CLEAR[1:]}:X\n"
        )
        site = str(tmp_path / "site")
        daemon = make_daemon("version: 1\n", extra_env={"PYTHONPATH": site}).start()
        output = perfwarden("plugins", "--socket-dir", str(daemon.socket_dir))
        assert_shown_not_obeyed(output, "evil\\x1b[2J")


class TestJsonStaysJson:
    def test_report_json_with_c1_and_bidi_names(self, daemon: DaemonProcess) -> None:
        """report --json keeps ✅ readable and names with C1 or bidi characters in
        valid JSON escapes, not the text escapes JSON cannot read."""
        name = "evil\x9b\u202e\x7f"
        daemon.send_datagrams([f"{name}:1|g"])
        daemon.wait_received(1)
        output = perfwarden("report", "--json", "--socket-dir", str(daemon.socket_dir))
        assert name in json.loads(output)["monitoring_dashboard"]["metrics"]
        for raw in RAW:
            assert raw not in output
