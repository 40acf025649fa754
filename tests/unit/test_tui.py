"""``perfwarden top`` rendering: CI bars, sparklines, widths, colours (no daemon)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest
from rich.console import Console

from perfwarden.views.tui import (
    BAR_BAND,
    BAR_MEAN,
    SPARK_CHARS,
    UNREACHABLE,
    Snapshot,
    actions_panel,
    ci_bar,
    knobs_panel,
    render_frame,
    sparkline,
    state_style,
    tier_for,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

NOW = 1_800_000_000.0


def latency(**overrides: Any) -> dict[str, Any]:
    """An upper-bound series record as ``stats`` returns it."""
    record: dict[str, Any] = {
        "metric": "context_loading_time",
        "series": "context_loading_time",
        "tags": {},
        "sample_size": 120,
        "mean": 125.0,
        "ci_low": 120.0,
        "ci_high": 130.0,
        "p50": 124.0,
        "p95": 140.0,
        "p99": 150.0,
        "unit": "ms",
        "bound": "upper",
        "target": 100.0,
        "warning": 150.0,
        "critical": 200.0,
        "status": "ok",
        "trend": "stable",
        "total_samples": 120,
        "last": 126.0,
    }
    record.update(overrides)
    return record


def quality(**overrides: Any) -> dict[str, Any]:
    """A lower-bound series record."""
    record = latency(
        metric="quality_retention_score",
        series="quality_retention_score",
        mean=0.93,
        ci_low=0.92,
        ci_high=0.94,
        unit=None,
        bound="lower",
        target=0.95,
        warning=0.90,
        critical=0.85,
        status="ok",
    )
    record.update(overrides)
    return record


def render(renderable: RenderableType, width: int, *, styles: bool = False) -> str:
    console = Console(
        record=True, width=width, force_terminal=True, color_system="truecolor"
    )
    console.print(renderable)
    return console.export_text(styles=styles)


def snapshot(*records: dict[str, Any], **fields: Any) -> Snapshot:
    defaults: dict[str, Any] = {
        "status": {
            "version": "0.1.0",
            "pid": 42,
            "uptime_seconds": 75.0,
            "series": len(records),
            "evaluation": {"alerts_firing": 0},
        },
        "series": list(records),
        "alerts": [],
        "knobs": {
            "knobs": {
                "compression.ratio": {
                    "value": 0.5,
                    "initial": 0.4,
                    "changed_by": "optimizer:compression",
                }
            }
        },
        "actions": [],
        "fetched_at": NOW - 1,
    }
    defaults.update(fields)
    return Snapshot(**defaults)


class TestCiBar:
    def test_upper_bound_markers_ascend(self) -> None:
        """Upper bound: target, warning, critical left to right; the CI near T."""
        bar = ci_bar(latency(), 40).plain
        assert 40 == len(bar)
        t, w, c = bar.index("T"), bar.index("W"), bar.index("C")
        band = [i for i, ch in enumerate(bar) if ch in (BAR_BAND, BAR_MEAN)]
        assert t < w < c
        assert t < min(band)
        assert max(band) < w

    def test_lower_bound_markers_descend(self) -> None:
        """Lower bound: critical, warning, target left to right, the CI between W, T."""
        bar = ci_bar(quality(), 40).plain
        c, w, t = bar.index("C"), bar.index("W"), bar.index("T")
        band = [i for i, ch in enumerate(bar) if ch in (BAR_BAND, BAR_MEAN)]
        assert c < w < t
        assert w < min(band)
        assert max(band) < t

    def test_marker_positions_are_proportional(self) -> None:
        """Levels evenly spaced in value are evenly spaced on the bar."""
        bar = ci_bar(latency(mean=125.0, ci_low=None, ci_high=None), 41).plain
        t, w, c = bar.index("T"), bar.index("W"), bar.index("C")
        assert abs((w - t) - (c - w)) <= 1

    def test_interval_beyond_critical(self) -> None:
        """A CI past the critical level is drawn right of C (upper bound)."""
        bar = ci_bar(latency(mean=260.0, ci_low=250.0, ci_high=270.0), 40).plain
        assert bar.index(BAR_MEAN) > bar.index("C")
        assert bar.index(BAR_BAND) > bar.index("C")

    def test_lower_bound_interval_beyond_critical(self) -> None:
        """A lower-bound CI below critical is drawn left of C."""
        bar = ci_bar(quality(mean=0.80, ci_low=0.79, ci_high=0.81), 40).plain
        assert bar.rindex(BAR_BAND) < bar.index("C")

    def test_levels_stay_visible_inside_the_band(self) -> None:
        """A level inside the interval is still marked."""
        bar = ci_bar(latency(mean=150.0, ci_low=100.0, ci_high=200.0), 30).plain
        assert {"T", "W", "C"} <= set(bar)

    def test_zone_colours_follow_the_bound(self) -> None:
        """Past critical the base line is red: right side for upper, left for lower."""
        upper = ci_bar(latency(), 40)
        lower = ci_bar(quality(), 40)
        assert "red" in str(upper.get_style_at_offset(Console(), 39))
        assert "green" in str(upper.get_style_at_offset(Console(), 0))
        assert "red" in str(lower.get_style_at_offset(Console(), 0))
        assert "green" in str(lower.get_style_at_offset(Console(), 39))

    def test_no_levels_no_interval(self) -> None:
        """An unconfigured series with one sample shows just its mean."""
        record = latency(
            target=None, warning=None, critical=None, ci_low=None, ci_high=None
        )
        bar = ci_bar(record, 20).plain
        assert 1 == bar.count(BAR_MEAN)
        assert not {"T", "W", "C"} & set(bar)

    def test_no_data(self) -> None:
        """No mean: a dim placeholder of the same width."""
        assert "no data" in ci_bar(latency(mean=None), 12).plain
        assert 12 == len(ci_bar(latency(mean=None), 12).plain)


class TestSparkline:
    def test_rising_values(self) -> None:
        """Ascending values use the whole range of blocks, lowest first."""
        line = sparkline([float(v) for v in range(8)], 20)
        assert SPARK_CHARS == line

    def test_falling_values(self) -> None:
        """Descending values: highest first."""
        assert SPARK_CHARS[::-1] == sparkline([7, 6, 5, 4, 3, 2, 1, 0], 8)

    def test_compresses_to_width(self) -> None:
        """More values than cells are averaged into ``width`` buckets."""
        line = sparkline([0.0] * 50 + [10.0] * 50, 10)
        assert 10 == len(line)
        assert SPARK_CHARS[0] * 5 + SPARK_CHARS[-1] * 5 == line

    def test_flat_and_empty(self) -> None:
        """A flat series is drawn mid-height; nothing gives an empty string."""
        assert SPARK_CHARS[3] * 3 == sparkline([5, 5, 5], 10)
        assert "" == sparkline([], 10)
        assert "" == sparkline([1.0, 2.0], 0)

    def test_skips_non_finite(self) -> None:
        """NaN and infinities are left out."""
        assert 2 == len(sparkline([1.0, float("nan"), float("inf"), 2.0], 10))


class TestTable:
    def test_recent_values_draw_a_sparkline(self) -> None:
        """Records with ``recent`` get a sparkline column."""
        record = latency(recent=[100.0, 120.0, 140.0, 160.0])
        text = render(render_frame(snapshot(record), width=120, now=NOW), 120)
        assert "RECENT" in text
        assert "▁" in text
        assert "█" in text

    def test_without_recent_shows_percentiles(self) -> None:
        """Without ``recent`` the column degrades to p50/p95/p99."""
        text = render(render_frame(snapshot(latency()), width=120, now=NOW), 120)
        assert "P50/95/99" in text
        assert "124/140/150" in text

    @pytest.mark.parametrize("width", [130, 120, 100, 80, 70, 60, 50, 40])
    def test_fits_the_width(self, width: int) -> None:
        """No line is wider than the terminal, whatever the tier."""
        frame = render_frame(
            snapshot(latency(recent=[1.0, 2.0]), quality()),
            width=width,
            now=NOW,
            problem=UNREACHABLE,
        )
        for line in render(frame, width).splitlines():
            assert len(line) <= width, line

    def test_narrow_drops_columns_and_panels(self) -> None:
        """Below 80 columns no sparkline or trend; below 60 no bar, alerts only."""
        both = snapshot(latency(recent=[1.0, 2.0]), quality())
        wide = render(render_frame(both, width=120, now=NOW), 120)
        for word in ("CI vs LEVELS", "RECENT", "TREND", "Knobs", "Optimizer"):
            assert word in wide
        medium = render(render_frame(both, width=70, now=NOW), 70)
        assert "CI vs LEVELS" in medium
        assert "Knobs" in medium
        assert "RECENT" not in medium
        assert "TREND" not in medium
        narrow = render(render_frame(both, width=50, now=NOW), 50)
        assert "context_loading_time" in narrow
        assert "quality_retention" in narrow
        assert "CI vs LEVELS" not in narrow
        assert "Knobs" not in narrow
        assert "Alerts" in narrow

    def test_tiers(self) -> None:
        """Interval numbers from 130 columns on; the name takes what is left."""
        assert tier_for(130).interval
        assert tier_for(130).sample_size
        assert not tier_for(129).interval
        assert tier_for(80).spark_width
        assert not tier_for(79).spark_width
        assert tier_for(60).bar_width
        assert not tier_for(59).bar_width
        assert tier_for(80).name_width >= 16

    def test_tags_and_sorting(self) -> None:
        """Tagged series show their tags; perfwarden's own series come last."""
        own = latency(
            metric="perfwarden.self.memory_mb", series="perfwarden.self.memory_mb"
        )
        tagged = latency(tags={"route": "/search"}, series="clt|route:/search")
        text = render(render_frame(snapshot(own, tagged), width=120, now=NOW), 120)
        assert "context_loading_time{route=/search}" in text
        assert text.index("route=/search") < text.index("perfwarden.self")

    def test_height_cuts_rows(self) -> None:
        """A short terminal shows as many rows as fit and says how many are left."""
        records = [latency(metric=f"m{i:02d}", series=f"m{i:02d}") for i in range(30)]
        text = render(
            render_frame(snapshot(*records), width=120, height=20, now=NOW), 120
        )
        assert "more series" in text
        assert len(text.splitlines()) <= 20


class TestColours:
    @pytest.mark.parametrize(
        ("status", "colour"),
        [("critical", "red"), ("warning", "yellow"), ("ok", "green")],
    )
    def test_state_colours(self, status: str, colour: str) -> None:
        """The state word is coloured by state."""
        assert colour in state_style(status)
        frame = render_frame(snapshot(latency(status=status)), width=120, now=NOW)
        styled = render(frame, 120, styles=True)
        code = {"red": "\x1b[1;31m", "yellow": "\x1b[1;33m", "green": "\x1b[32m"}
        assert f"{code[colour]}{status}" in styled

    def test_alerts_panel(self) -> None:
        """Firing alerts: level in colour, value, age; the count in the title."""
        alert = {
            "metric": "context_loading_time",
            "tags": {},
            "state": "firing",
            "level": "critical",
            "value": 260.0,
            "threshold": 200.0,
            "unit": "ms",
            "since": NOW - 90,
            "silenced": False,
        }
        frame = render_frame(
            snapshot(latency(status="critical"), alerts=[alert]), width=120, now=NOW
        )
        text = render(frame, 120)
        assert "Alerts (1 firing)" in text
        assert "CRITICAL" in text
        assert "260 ms" in text
        assert "1m30s" in text
        assert "\x1b[1;31mCRITICAL" in render(frame, 120, styles=True)

    def test_first_alerts_of_many(self) -> None:
        """A page of alerts (``top`` asks for the panel's rows): the title and the
        "+N more" line count the whole list, as the daemon totals it."""
        alerts = [
            {"metric": "lat", "tags": {"id": str(i)}, "state": "firing",
             "level": "critical", "value": 250.0, "threshold": 20.0, "since": NOW}
            for i in range(6)
        ]  # fmt: skip
        page = dataclasses.replace(
            snapshot(latency(), alerts=alerts), alerts_total=5000, firing_total=4990
        )
        text = render(render_frame(page, width=120, height=40, now=NOW), 120)
        assert "Alerts (4990 firing)" in text
        assert "+4994 more" in text

    def test_no_alerts(self) -> None:
        """A quiet system says so."""
        text = render(render_frame(snapshot(latency()), width=100, now=NOW), 100)
        assert "no active alerts" in text


class TestPanels:
    def test_actions_newest_first_with_verdicts(self) -> None:
        """Actions show verdict, effect, age and the knob change, newest first."""
        actions = [
            {
                "verdict": "reverted",
                "metric": "context_loading_time",
                "strategy": "caching",
                "changes": {"cache.size": 64},
                "originals": {"cache.size": 32},
                "effect_percent": -2.0,
                "at": NOW - 300,
            },
            {
                "verdict": "kept",
                "metric": "context_loading_time",
                "strategy": "compression",
                "changes": {"compression.ratio": 0.5},
                "originals": {"compression.ratio": 0.4},
                "effect_percent": 23.5,
                "at": NOW - 30,
            },
        ]
        text = render(actions_panel(actions, NOW), 100)
        assert text.index("kept") < text.index("reverted")
        assert "+23.5%" in text
        assert "30s ago" in text
        assert "compression.ratio 0.4→0.5" in text
        styled = render(actions_panel(actions, NOW), 100, styles=True)
        assert "\x1b[1;32mkept" in styled
        assert "\x1b[1;31mreverted" in styled

    def test_an_action_awaiting_its_verdict_says_so(self) -> None:
        """An in-flight action (from ``status``) is listed first, as validating,
        with its change; no "no optimizer actions yet" while one runs."""
        validating = {
            "verdict": "validating",
            "metric": "context_loading_time",
            "strategy": "caching",
            "changes": {"cache.size": 512},
            "originals": {"cache.size": 256},
        }
        text = render(actions_panel([validating], NOW), 100)
        assert "validating" in text
        assert "cache.size 256→512" in text
        assert "no optimizer actions yet" not in text

    def test_knobs(self) -> None:
        """Knob values and who changed them; a moved knob is highlighted."""
        document = snapshot().knobs
        text = render(knobs_panel(document), 60)
        assert "compression.ratio  0.5  optimizer:compression" in text
        assert "\x1b[1;36m0.5" in render(knobs_panel(document), 60, styles=True)
        assert "no knobs declared" in render(knobs_panel({"knobs": {}}), 60)


class TestFrame:
    def test_header(self) -> None:
        """Version, pid, uptime and the quit key."""
        text = render(render_frame(snapshot(latency()), width=120, now=NOW), 120)
        assert "pid 42" in text
        assert "up 1m15s" in text
        assert "q quits" in text

    def test_unreachable_banner_keeps_stale_data(self) -> None:
        """The banner shows above the last data, with its age."""
        frame = render_frame(
            snapshot(latency()), width=120, now=NOW, problem=UNREACHABLE
        )
        text = render(frame, 120)
        assert UNREACHABLE in text
        assert "data from 1s ago" in text
        assert "context_loading_time" in text

    def test_before_first_answer(self) -> None:
        """No data yet: just the header and the banner."""
        text = render(render_frame(None, width=80, now=NOW, problem=UNREACHABLE), 80)
        assert UNREACHABLE in text

    def test_no_series_yet(self) -> None:
        """An empty daemon tells how to send a metric."""
        text = render(render_frame(snapshot(), width=100, now=NOW), 100)
        assert "no series yet" in text
