"""Metric names and tags carrying terminal escapes are shown, never obeyed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from perfwarden.commands._printable import escaped, printable

if TYPE_CHECKING:
    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"  # OSC 52: write the clipboard
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
BIDI = "\u202e"
RAW = (CLIPBOARD, TITLE, CLEAR, BIDI, "\x9b", "\x07")


def hostile(daemon: DaemonProcess) -> None:
    """Series whose name and tags hold escapes, as any local sender could send."""
    daemon.send_datagrams(
        [
            f"evil{CLIPBOARD}:1|g|#t:{TITLE}",
            f"evil{CLEAR}:2|g|#{BIDI}x:y\x9bz",
            f"quiet:3|g|#k:{CLIPBOARD}",
        ]
    )
    daemon.wait_received(3)


class TestTerminalEscapes:
    @pytest.mark.parametrize(
        "command",
        [("stats",), ("alerts",), ("report",), ("status",), ("top", "--once")],
    )
    def test_cli_output_holds_no_raw_controls(
        self, daemon: DaemonProcess, command: tuple[str, ...]
    ) -> None:
        """Every command prints the names escaped: no ESC, BEL, CSI or bidi."""
        hostile(daemon)
        result = daemon.cli(*command)
        assert 0 == result.returncode, result.stderr
        for raw in RAW:
            assert raw not in result.stdout
        if command[0] in ("stats", "top"):
            assert "\\x1b]52;c;" in result.stdout

    def test_json_keeps_the_real_names(self, daemon: DaemonProcess) -> None:
        """--json carries the names as sent (JSON escapes them itself)."""
        hostile(daemon)
        names = {s["metric"] for s in daemon.cli_json("stats")["series"]}
        assert f"evil{CLIPBOARD}" in names


class TestPrintable:
    def test_escapes_and_keeps_layout(self) -> None:
        """Controls become \\xNN / \\uNNNN; newline and tab stay unless one line."""
        assert "a\\x1b[2Jb\n\t" == printable("a\x1b[2Jb\n\t")
        assert "a\\nb\\u202e" == printable("a\nb\u202e", lines=False)
        assert {"k\\x07": ["\\x9b", 1.5]} == escaped({"k\x07": ("\x9b", 1.5)})
        assert "naïve ✓" == printable("naïve ✓")
