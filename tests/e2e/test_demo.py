"""``perfwarden demo`` runs to the end and shows the loop keeping an action."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from perfwarden.commands.demo import Narration, narrate

pytestmark = pytest.mark.slow

PLUGINS = ("compression", "context_layers", "caching")


def proposed(cid: str, plugin: str) -> dict[str, Any]:
    """An ``optimizer.proposed`` event from ``plugin``."""
    return {"event": "optimizer.proposed", "correlation_id": cid, "plugin": plugin}


def applied(cid: str) -> dict[str, Any]:
    """An ``optimizer.applied`` event of the caching strategy."""
    return {
        "event": "optimizer.applied",
        "correlation_id": cid,
        "strategy": "cache_optimization",
        "changes": {"cache.size": {"from": 0, "to": 64}},
        "score": 0.33,
    }


class TestDemo:
    def test_runs_and_keeps_an_action(self) -> None:
        """A short demo tunes the workload: an action kept, what happened, a report."""
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
        # The raw records stay out of the demo's report; the readable lines and
        # the evidence of each status are in.
        assert "recent_actions:" not in out
        # The report's pages are joined: no paging fields in what is printed.
        assert "next_offset:" not in out
        assert "paged:" not in out
        assert "recent_actions_summary:" in out
        assert "status_judged_on:" in out
        assert re.search(
            r"^context_loading_time ends [A-Z_]+, judged on ", out, re.MULTILINE
        )
        kept = re.search(r"(\d+) action\(s\) kept", out)
        assert kept is not None
        assert int(kept.group(1)) >= 1, out[-3000:]
        assert_only_what_happened(out)


def assert_only_what_happened(out: str) -> None:
    """No line per proposal; the summary's applied count matches the APPLY lines."""
    assert "PROPOSE" not in out
    summary = re.search(r"the plugins made (\d+) proposal\(s\): (\d+) applied", out)
    assert summary is not None, out[-3000:]
    made, applied = int(summary.group(1)), int(summary.group(2))
    assert 1 <= applied <= made
    apply_line = re.compile(r"^ *[\d.]+s  APPLY ", re.MULTILINE)
    # The daemon runs on for a moment after the summary, so an action may follow it.
    before = len(apply_line.findall(out, 0, summary.start()))
    assert before <= applied <= len(apply_line.findall(out))
    verdicts = re.search(
        r"(\d+) action\(s\) kept, (\d+) reverted, (\d+) inconclusive", out
    )
    assert verdicts is not None
    assert sum(int(n) for n in verdicts.groups()) <= applied
    # An action still validating at the end is said to be, in its knob's line
    # and in the count: the daemon reverts it as it stops.
    validating = re.search(r"(\d+) still under validation", out)
    assert validating is not None
    marked = "still under validation: reverted when the daemon stops" in out
    assert marked == (int(validating.group(1)) > 0)


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
        assert "KEPT         [abc] cache_optimization: significantly better" in str(
            line
        )
        assert str(line).endswith(", median 14.0% better")

    def test_effect_reads_as_the_report_does(self) -> None:
        """A reverted change reads ``N% worse`` as the report does, not signed."""
        line = narrate(
            {
                "event": "optimizer.reverted",
                "correlation_id": "abc",
                "strategy": "compression_tuning",
                "reason": "significantly worse (p=0.0001)",
                "effect_percent": -120.34,
            }
        )
        assert str(line).endswith(
            ": significantly worse (p=0.0001), median 120.3% worse"
        )

    def test_alert_values_carry_their_unit_and_lines_align(self) -> None:
        """An alert shows its metric's unit; every first word has one width."""
        fired = {
            "event": "alert.fired",
            "metric": "context_loading_time",
            "severity": "critical",
            "observed": [5.801, 6.2],
            "threshold": 3.188,
            "action": "immediate_optimization",
        }
        line = narrate(fired, {"context_loading_time": "ms"})
        assert (
            "ALERT        context_loading_time CRITICAL: ci [5.8ms, 6.2ms] beyond "
            "3.2ms -> immediate_optimization"
        ) == line
        close = {**fired, "observed": [1.93, 2.1], "threshold": 1.9, "basis": "ci"}
        shown = str(narrate(close, {"context_loading_time": "ms"}))
        assert "ci [1.93ms, 2.10ms] beyond 1.90ms" in shown
        lower = {**fired, "observed": [0.80, 0.849], "threshold": 0.85}
        shown = str(narrate(lower, {"context_loading_time": "ratio"}))
        assert "ci [80.0%, 84.9%] beyond 85.0%" in shown
        verdict = {"correlation_id": "c", "strategy": "s", "reason": "r"}
        starts = {
            str(narrate({**verdict, "event": f"optimizer.{name}"})).index("[c]")
            for name in ("kept", "reverted", "inconclusive")
        }
        assert {13} == starts

    def test_quiet_events(self) -> None:
        """Events outside the decision log are not narrated."""
        assert narrate({"event": "ingest.malformed"}) is None

    def test_proposals_fold_into_the_applied_line(self) -> None:
        """Proposals get no line; the applied one says how many it was chosen from."""
        narration = Narration()
        lines = [narration.line(proposed("a", plugin)) for plugin in PLUGINS]
        lines.append(narration.line(applied("a")))
        assert [None, None, None] == lines[:3]
        assert (
            "APPLY        [a] cache_optimization: cache.size 0 -> 64 "
            "(score 0.330, best of 3 proposals)"
        ) == lines[3]
        assert (
            "the plugins made 3 proposal(s): 1 applied; "
            "2 passed over (2 another proposal scored higher)"
        ) == narration.summary()

    def test_skipped_proposals_are_counted_by_reason(self) -> None:
        """Proposals skipped as a batch print nothing and are summed per reason."""
        narration = Narration()
        for cid, reason in (("a", "cooldown (1s)"), ("b", "cooldown (1s)")):
            for plugin in PLUGINS[:2]:
                assert narration.line(proposed(cid, plugin)) is None
            skipped = {"event": "optimizer.skipped", "correlation_id": cid}
            assert narration.line({**skipped, "reason": reason}) is None
        assert narration.line(proposed("c", "caching")) is None
        assert narration.line(applied("c")) is not None
        assert (
            "the plugins made 5 proposal(s): 1 applied; 4 passed over (4 cooldown (1s))"
        ) == narration.summary()
        assert "best of" not in str(narration.line(applied("d")))
