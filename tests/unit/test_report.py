"""Report formatting: the seed's units, targets, marks and alert layout."""

from __future__ import annotations

import pytest

from perfwarden.alerts.report import (
    ALL_CLEAR,
    alert_summary,
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
