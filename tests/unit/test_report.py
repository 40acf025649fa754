"""Report formatting: the seed's units, targets, marks and alert layout."""

from __future__ import annotations

import pytest

from perfwarden.alerts.report import (
    ALL_CLEAR,
    action_line,
    alert_summary,
    format_apart,
    format_target,
    format_value,
    monitoring_dashboard,
    validation_results,
)


class TestFormat:
    @pytest.mark.parametrize(
        ("value", "unit", "scale", "text"),
        [
            (78.2, "ms", None, "78ms"),
            (1240.0, "ms", None, "1.24s"),
            (1180.0, "ms", 2000.0, "1.18s"),
            (0.423, "ratio", None, "42.3%"),
            (2.34, "x", None, "2.34x"),
            (31.2, "MB", None, "31.2MB"),
            (5.5, "ms", None, "5.5ms"),
            (12.0, None, None, "12"),
            (None, "ms", None, "-"),
        ],
    )
    def test_values(
        self, value: float | None, unit: str | None, scale: float | None, text: str
    ) -> None:
        """Values look like the seed's dashboard."""
        assert text == format_value(value, unit, scale)

    def test_targets(self) -> None:
        """Upper bounds read ``<``, lower bounds ``>``."""
        assert "<100ms" == format_target(100, "upper", "ms")
        assert ">40.0%" == format_target(0.4, "lower", "ratio")
        assert "<2.00s" == format_target(2000, "upper", "ms")


RECORD = {
    "metric": "context_loading_time",
    "unit": "ms",
    "bound": "upper",
    "target": 100.0,
    "mean": 78.0,
    "ci_low": 72.0,
    "ci_high": 84.0,
    "max": 120.0,
    "trend": "improving",
    "sample_size": 847,
    "status": "ok",
    "best_series": None,
}


class TestDocuments:
    def test_dashboard_entry(self) -> None:
        """The dashboard carries the seed's fields."""
        doc = monitoring_dashboard([RECORD], "2026-01-01T00:00:00+00:00")
        entry = doc["metrics"]["context_loading_time"]
        assert {
            "current_average": "78ms",
            "target": "<100ms",
            "confidence_interval_95": "[72ms, 84ms]",
            "trend": "improving",
            "sample_size": 847,
            "status": "ok",
        } == entry

    @pytest.mark.parametrize(
        ("unit", "low", "high", "text"),
        [
            ("MB", 46.26, 46.31, "[46.26MB, 46.31MB]"),
            ("ms", 1.62, 1.64, "[1.62ms, 1.64ms]"),
            ("ms", 72.0, 84.0, "[72ms, 84ms]"),
            ("MB", 46.3, 46.3, "[46.3MB, 46.3MB]"),  # truly equal: as is
        ],
    )
    def test_a_narrow_interval_keeps_its_ends_apart(
        self, unit: str, low: float, high: float, text: str
    ) -> None:
        """Ends that round alike get more decimals, not ``[46.3MB, 46.3MB]``."""
        record = {**RECORD, "unit": unit, "ci_low": low, "ci_high": high, "mean": low}
        doc = monitoring_dashboard([record], "now")["metrics"]
        assert text == doc["context_loading_time"]["confidence_interval_95"]

    def test_memory_has_peak_and_groups_have_best(self) -> None:
        """Memory-like metrics show peak_usage; grouped ones best_combination."""
        memory = {**RECORD, "metric": "memory_usage_mb", "unit": "MB", "max": 47.3}
        grouped = {**RECORD, "metric": "speedup", "best_series": "Read+Grep+Bash"}
        doc = monitoring_dashboard([memory, grouped], "now")["metrics"]
        assert "47.3MB" == doc["memory_usage_mb"]["peak_usage"]
        assert "Read+Grep+Bash" == doc["speedup"]["best_combination"]

    def test_validation_marks(self) -> None:
        """✅ inside the target, ❌ all beyond, ⚠️ straddling."""
        bad = {**RECORD, "metric": "b", "ci_low": 101.0, "ci_high": 120.0}
        mixed = {**RECORD, "metric": "m", "ci_low": 95.0, "ci_high": 105.0}
        lines = validation_results([RECORD, bad, mixed])[
            "confidence_intervals_95_percent"
        ]
        assert "[72ms, 84ms] - Target: <100ms ✅" == lines["context_loading_time"]
        assert lines["b"].endswith("❌")
        assert lines["m"].endswith("⚠️")

    def test_alert_summary_layout(self) -> None:
        """The seed's generate_alert_report layout, or its all-clear line."""
        assert ALL_CLEAR == alert_summary([])
        text = alert_summary(
            [
                {
                    "metric": "context_loading_time",
                    "tags": {},
                    "level": "critical",
                    "value": 250.0,
                    "observed": [240.0, 260.0],
                    "basis": "ci",
                    "threshold": 200.0,
                    "unit": "ms",
                    "action": "immediate_optimization_required",
                }
            ]
        )
        assert text.splitlines()[:6] == [
            "🚨 Performance Alert Summary",
            "=" * 40,
            "CRITICAL: context_loading_time",
            "  Current: 250ms (ci [240ms, 260ms])",
            "  Threshold: 200ms",
            "  Action: immediate_optimization_required",
        ]


class TestReadable:
    @pytest.mark.parametrize(
        ("value", "level", "unit", "shown"),
        [
            (1.93, 1.9, "ms", (["1.93ms"], "1.90ms")),
            (1.9004, 1.9, "ms", (["1.9004ms"], "1.9000ms")),
            (250.0, 200.0, "ms", (["250ms"], "200ms")),
            (0.8499, 0.85, "ratio", (["84.99%"], "85.00%")),
        ],
    )
    def test_beyond_reads_beyond(
        self, value: float, level: float, unit: str, shown: tuple[list[str], str]
    ) -> None:
        """A value beyond a level never prints as the level itself."""
        assert shown == format_apart([value], level, unit)

    def test_firing_alert_rounds_apart(self) -> None:
        """WARNING: 1.9ms beyond 1.9ms cannot happen in the alert summary."""
        text = alert_summary(
            [
                {
                    "metric": "m",
                    "tags": {"route": "/a"},
                    "level": "warning",
                    "value": 1.93,
                    "observed": [1.91, 1.95],
                    "basis": "ci",
                    "bound": "upper",
                    "threshold": 1.9,
                    "unit": "ms",
                    "action": "optimization_recommended",
                }
            ]
        )
        assert "WARNING: m{route=/a}" in text
        assert "Current: 1.93ms (ci [1.91ms, 1.95ms])" in text
        assert "Threshold: 1.90ms" in text

    def test_nothing_firing_but_off_target(self) -> None:
        """At 80 against a target of 20, the all-clear line is not printed."""
        record = {**RECORD, "mean": 80.0, "target": 20.0, "warning": 150.0}
        text = alert_summary([], [record])
        assert ALL_CLEAR != text
        assert "context_loading_time: mean 80ms, above its target 20ms" in text
        assert "alerts at warning 150ms" in text
        assert ALL_CLEAR == alert_summary([], [RECORD])
        # Judged on the newest samples, as the status was: recovered means clear.
        recovered = {
            **record,
            "judged": {"basis": "ci", "low": 10.0, "high": 14.0, "newest": 20},
        }
        assert ALL_CLEAR == alert_summary([], [recovered])
        silenced = {**RECORD, "status": "critical"}
        assert "Not all clear: context_loading_time" in alert_summary([], [silenced])

    def test_action_line(self) -> None:
        """An action reads as one line: time, strategy, series, verdict, effect."""
        action = {
            "at": 1_800_000_000.0,
            "metric": "latency",
            "tags": {"route": "/a"},
            "plugin": "compression",
            "strategy": "context_compression",
            "verdict": "kept",
            "before_median": 120.0,
            "after_median": 80.0,
            "effect_percent": 33.33,
            "p_better": 0.0000012,
            "changes": {"compression.ratio": 0.6},
            "originals": {"compression.ratio": 0.4},
        }
        assert (
            "2027-01-15 08:00:00Z context_compression (compression) on "
            "latency{route=/a}: kept (median 120ms -> 80ms, 33.3% better, "
            "p=<0.0001); compression.ratio 0.4 -> 0.6"
        ) == action_line(action, "ms")


def test_a_revert_for_the_tail_says_so_not_a_p_value() -> None:
    """A median that improved but a tail that worsened reads as that reason."""
    from perfwarden.alerts.report import action_line

    line = action_line(
        {
            "at": 0.0,
            "metric": "latency",
            "strategy": "batching",
            "plugin": "batching",
            "verdict": "reverted",
            "before_median": 4.1,
            "after_median": 1.9,
            "effect_percent": 53.2,
            "p_worse": 1.0,
            "reason": "median better but the p99 tail worse by 90.3%",
        },
        "ms",
    )
    assert "53.2% better, median better but the p99 tail worse by 90.3%" in line
    assert "p=1" not in line
