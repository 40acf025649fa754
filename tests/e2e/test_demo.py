"""``perfwarden demo`` runs to the end and shows the loop keeping an action."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from perfwarden.commands.demo import narrate

pytestmark = pytest.mark.slow


class TestDemo:
    def test_runs_and_keeps_an_action(self) -> None:
        """A short demo tunes the workload: at least one action kept, report shown."""
        result = subprocess.run(
            [sys.executable, "-m", "perfwarden", "demo", "--duration", "20"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert 0 == result.returncode, result.stderr[-2000:]
        out = result.stdout
        assert "ALERT" in out
        assert "APPLY" in out
        assert "monitoring_dashboard:" in out
        assert "learning_patterns:" in out
        kept = re.search(r"(\d+) action\(s\) kept", out)
        assert kept is not None
        assert int(kept.group(1)) >= 1, out[-3000:]


class TestNarration:
    def test_kept_line(self) -> None:
        """A verdict event reads as one line with its reason and effect."""
        line = narrate(
            {
                "event": "optimizer.kept",
                "correlation_id": "abc",
                "strategy": "cache_optimization",
                "reason": "significantly better (p=1e-9)",
                "effect_percent": 14.0,
            }
        )
        assert "KEPT    [abc] cache_optimization: significantly better" in str(line)
        assert "+14.0%" in str(line)

    def test_quiet_events(self) -> None:
        """Events outside the decision log are not narrated."""
        assert narrate({"event": "ingest.malformed"}) is None
