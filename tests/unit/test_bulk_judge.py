"""Judging in bulk equals judging series one by one, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.alerts.bulk_judge import MIN_ROWS, Judged, judge_many, judge_one
from perfwarden.alerts.evaluator import AlertEvent, Evaluator
from perfwarden.alerts.machine import Transition
from perfwarden.alerts.observation import Reference
from perfwarden.config.load import Config, parse_config
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.bulk import exact_mean_intervals, exact_references
from perfwarden.series.stats import mean_interval
from perfwarden.series.store import MetricStore
from perfwarden.series.window import RollingWindow
from perfwarden.testing import FakeClock

BASES = ("multiwindow", "ci", "mean")


def make_config(  # noqa: PLR0917 - one knob per drawn parameter
    basis: str,
    window: int,
    short: int,
    min_samples: int,
    level: float,
    metrics: list[str],
) -> Config:
    lines = "".join(f"  {m}\n" for m in metrics)
    return parse_config(
        "version: 1\n"
        f"statistics: {{min_samples: {min_samples}, confidence_level: {level}}}\n"
        f"evaluation: {{basis: {basis}, window: {window}, short_window: {short}}}\n"
        f"metrics:\n{lines}"
    )


def ar1(seed: int, size: int, phi: float, scale: float) -> list[float]:
    """An autocorrelated series (AR(1) with coefficient ``phi``) around 100."""
    rng = np.random.default_rng(seed)
    values = np.empty(size)
    level = 0.0
    for index in range(size):
        level = phi * level + rng.normal()
        values[index] = 100.0 + scale * level
    return values.tolist()


@st.composite
def samples(draw: st.DrawFn, size: int) -> list[float]:
    """Random, constant, integer (narrow storage) or autocorrelated values."""
    kind = draw(st.sampled_from(("floats", "constant", "integers", "ar1", "step")))
    if kind == "constant":
        return [draw(st.floats(-1e3, 1e3, allow_nan=False))] * size
    if kind == "integers":
        return [
            float(v)
            for v in draw(st.lists(st.integers(0, 300), min_size=size, max_size=size))
        ]
    if kind == "ar1":
        return ar1(draw(st.integers(0, 2**16)), size, draw(st.floats(0.0, 0.99)), 30.0)
    if kind == "step":  # quiet, then a shift or a burst at the end
        quiet = ar1(draw(st.integers(0, 2**16)), size, 0.3, 5.0)
        tail = draw(st.integers(0, size))
        jump = draw(st.floats(-300.0, 300.0))
        return quiet[: size - tail] + [v + jump for v in quiet[size - tail :]]
    return draw(
        st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=size, max_size=size)
    )


@st.composite
def passes(draw: st.DrawFn) -> tuple[Config, list[Judged]]:
    """A config and the series of one pass: mixed lengths (some groups big
    enough for bulk, some not, some below min_samples), levels around the data."""
    basis = draw(st.sampled_from(BASES))
    min_samples = draw(st.integers(2, 12))
    window = draw(st.integers(min_samples, 40))
    short = draw(st.integers(3, 8))
    level = draw(st.sampled_from((0.9, 0.95, 0.99)))
    full = window + 3 * short + min_samples
    lengths = st.one_of(st.integers(0, full + 5), st.just(full + 5))
    count = draw(st.integers(1, 14))
    metrics, windows, settled = [], [], []
    for index in range(count):
        size = draw(lengths)
        values = draw(samples(size))
        win = RollingWindow(draw(st.sampled_from((size or 1, 64, 1000))))
        pending = draw(st.integers(0, min(size, 40)))  # some not yet flushed
        if size - pending:
            win.extend(values[: size - pending])
            win.flush()
        for value in values[size - pending :]:
            win.append(value)
        windows.append(win)
        upper = draw(st.booleans())
        warning = draw(st.floats(-200.0, 400.0))
        gap = draw(st.floats(0.5, 200.0))
        critical = warning + gap if upper else warning - gap
        which = draw(st.sampled_from(("both", "warning", "critical")))
        levels = {
            "both": f"warning: {warning:.4f}, critical: {critical:.4f}",
            "warning": f"warning: {warning:.4f}",
            "critical": f"critical: {critical:.4f}",
        }[which]
        bound = "upper" if upper else "lower"
        metrics.append(f"m{index}: {{bound: {bound}, {levels}}}")
        settled.append(draw(st.booleans()))
    config = make_config(basis, window, short, min_samples, level, metrics)
    judged = [
        Judged(win, config.metrics[f"m{index}"], ok)
        for index, (win, ok) in enumerate(zip(windows, settled, strict=True))
    ]
    return config, judged


def without_id(event: AlertEvent) -> dict[str, object]:
    """The event's fields but its correlation id (random per evaluator)."""
    fields = event.as_dict()
    del fields["correlation_id"]
    return fields


class TestJudgeMany:
    @settings(max_examples=300, deadline=None)
    @given(drawn=passes())
    def test_equals_one_by_one(self, drawn: tuple[Config, list[Judged]]) -> None:
        """Observations (exact floats) and verdicts equal judge_one's, in order."""
        config, judged = drawn
        bulk = judge_many(judged, config)  # first: judge_one flushes windows
        assert [judge_one(j, config) for j in judged] == bulk

    def test_big_groups_are_judged_in_bulk(self) -> None:
        """A pass of many full windows goes through the bulk path and agrees."""
        metrics = [
            f"m{i}: {{bound: upper, warning: 101.0}}" for i in range(3 * MIN_ROWS)
        ]
        config = make_config("multiwindow", 100, 10, 30, 0.95, metrics)
        judged = []
        for index in range(3 * MIN_ROWS):
            win = RollingWindow(1000)
            win.extend(ar1(index, 300, 0.8, 2.0))
            judged.append(Judged(win, config.metrics[f"m{index}"], index % 2 == 0))
        bulk = judge_many(judged, config)
        assert all(j is not None for j in bulk)
        assert [judge_one(j, config) for j in judged] == bulk

    @settings(max_examples=100, deadline=None)
    @given(
        basis=st.sampled_from(BASES),
        upper=st.booleans(),
        warning=st.floats(-500.0, 500.0).map(lambda v: round(v, 2)),
        gap=st.floats(0.5, 100.0).map(lambda v: round(v, 2)),
        picks=st.lists(st.integers(0, 11), min_size=MIN_ROWS, max_size=10),
        settled=st.booleans(),
    )
    def test_values_on_the_edges_of_levels(  # noqa: PLR0917 - drawn parameters
        self,
        basis: str,
        upper: bool,
        warning: float,
        gap: float,
        picks: list[int],
        settled: bool,
    ) -> None:
        """Constant windows exactly at a level, at its resolution margin, and one
        ulp either side: the same verdicts in bulk as alone."""
        critical = warning + gap if upper else warning - gap
        bound = "upper" if upper else "lower"
        metric = f"m: {{bound: {bound}, warning: {warning!r}, critical: {critical!r}}}"
        config = make_config(basis, 20, 3, 5, 0.95, [metric])
        hysteresis = config.evaluation.hysteresis
        edges = []
        for level in (warning, critical):
            for at in (
                level,
                level - hysteresis * abs(level),
                level + hysteresis * abs(level),
            ):
                edges += [at, float(np.nextafter(at, np.inf))]
        judged = []
        for pick in picks:
            win = RollingWindow(100)
            win.extend([edges[pick]] * 40)
            judged.append(Judged(win, config.metrics["m"], settled))
        bulk = judge_many(judged, config)
        assert [judge_one(j, config) for j in judged] == bulk

    def test_every_alert_firing_judges_short_windows_in_bulk(self) -> None:
        """All rows need their short windows (alerts not ok, bursts beyond the
        levels): the bulk short windows equal judge_windows row by row."""
        count = 3 * MIN_ROWS
        metrics = [
            f"m{i}: {{bound: {'upper' if i % 3 else 'lower'}, warning: 100.0}}"
            for i in range(count)
        ]
        config = make_config("multiwindow", 100, 10, 30, 0.95, metrics)
        judged = []
        for index in range(count):
            win = RollingWindow(1000)
            values = ar1(index, 300, 0.6, 4.0)
            values[-12:] = [v + (-1) ** index * 40.0 for v in values[-12:]]
            win.extend(values)
            judged.append(Judged(win, config.metrics[f"m{index}"], settled=False))
        bulk = judge_many(judged, config)
        alone = [judge_one(j, config) for j in judged]
        assert alone == bulk
        ci = make_config("ci", 100, 10, 30, 0.95, metrics)
        long_only = judge_many(judged, ci)  # the long window's interval alone
        assert [j.observation for j in long_only] != [j.observation for j in bulk]


class TestExactMeanIntervals:
    @settings(max_examples=200, deadline=None)
    @given(
        rows=st.integers(1, 6),
        columns=st.integers(2, 150),
        seed=st.integers(0, 2**16),
        phi=st.floats(0.0, 0.99),
        level=st.sampled_from((0.9, 0.95, 0.99)),
    )
    def test_bit_for_bit_mean_interval(
        self, rows: int, columns: int, seed: int, phi: float, level: float
    ) -> None:
        """Each row's mean and bounds are mean_interval's, exactly."""
        table = np.array(
            [ar1(seed + row, columns, phi, 10.0 ** (row - 2)) for row in range(rows)]
        )
        found = exact_mean_intervals(table, level)
        for index, row in enumerate(table):
            want = mean_interval(row, level)
            got = (found.mean[index], found.low[index], found.high[index])
            assert (want.mean, want.low, want.high) == tuple(map(float, got))

    @settings(max_examples=200, deadline=None)
    @given(
        rows=st.integers(1, 6),
        columns=st.integers(2, 150),
        seed=st.integers(0, 2**16),
        phi=st.floats(0.0, 0.99),
        level=st.sampled_from((0.9, 0.95, 0.99)),
    )
    def test_references_bit_for_bit(
        self, rows: int, columns: int, seed: int, phi: float, level: float
    ) -> None:
        """Each row's t and inflated variance are Reference.of's, exactly, on
        a column slice (as the short windows' reference is taken)."""
        table = np.array(
            [
                ar1(seed + row, columns + 5, phi, 10.0 ** (row - 2))
                for row in range(rows)
            ]
        )[:, :-5]
        found = exact_references(table, level)
        for index, row in enumerate(table):
            want = Reference.of(row, level)
            got = (float(found.t[index]), float(found.inflated_variance[index]))
            assert (want.t, want.inflated_variance) == got

    def test_constant_rows_have_zero_width(self) -> None:
        """A constant row's interval is its value, exactly."""
        found = exact_mean_intervals(np.full((3, 50), 7.25), 0.95)
        assert [7.25] * 3 == found.low.tolist() == found.high.tolist()

    def test_needs_two_columns(self) -> None:
        """One sample per row has no interval."""
        with pytest.raises(ValueError, match="at least 2"):
            exact_mean_intervals(np.ones((2, 1)), 0.95)


class TestEvaluatorPasses:
    @settings(max_examples=15, deadline=None)
    @given(
        basis=st.sampled_from(BASES),
        seed=st.integers(0, 2**16),
        series=st.integers(MIN_ROWS, 12),
    )
    def test_same_events_as_series_by_series(
        self, basis: str, seed: int, series: int
    ) -> None:
        """Two evaluators fed the same batches, one judging each pass in bulk and
        one judging each series alone, log the same transitions and observations."""
        metrics = [
            f"m{i}: {{bound: upper, warning: 120, critical: 160, for: 2s}}"
            for i in range(series)
        ]
        config = make_config(basis, 40, 5, 10, 0.95, metrics)
        clock = FakeClock()
        stores = [MetricStore(config.metric_window, 100) for _ in range(2)]
        evaluators = [Evaluator(s, lambda: config, clock=clock) for s in stores]
        events: list[list[AlertEvent]] = [[], []]
        for evaluator, seen in zip(evaluators, events, strict=True):
            evaluator.subscribers.append(seen.append)
        rng = np.random.default_rng(seed)
        for step in range(40):
            lines = []
            for index in range(series):
                burst = 150.0 if (step + index) % 20 >= 8 else 0.0
                values = rng.normal(100.0 + burst, 8.0, rng.integers(1, 8))
                lines += [f"m{index}:{float(v)!r}|ms" for v in values]
            batch = Batch()
            parse("\n".join(lines).encode(), batch, 1 << 20)
            for store in stores:
                store.ingest(batch, clock())
            in_bulk, alone = (
                sorted(s.take_updated(), key=lambda x: x.key) for s in stores
            )
            evaluators[0].evaluate(in_bulk)
            for one in alone:
                evaluators[1].evaluate([one])
            clock.advance(0.5)
        bulk, single = evaluators
        assert [without_id(e) for e in events[1]] == [without_id(e) for e in events[0]]
        assert single.observations == bulk.observations
        assert single.alerts == bulk.alerts
        assert any(events[0])

    def test_tick_judges_in_bulk_and_keeps_the_order(self) -> None:
        """A tick over silent and live series: no_data in store order, the live
        ones judged as alone."""
        count = 2 * MIN_ROWS
        metrics = [f"m{i}: {{bound: upper, warning: 120}}" for i in range(count)]
        config = make_config("multiwindow", 40, 5, 10, 0.95, metrics)
        clock = FakeClock()
        store = MetricStore(config.metric_window, 100)
        evaluator = Evaluator(store, lambda: config, clock=clock)
        events: list[AlertEvent] = []
        evaluator.subscribers.append(events.append)
        rng = np.random.default_rng(5)

        def feed(names: list[int]) -> None:
            batch = Batch()
            lines = [
                f"m{i}:{float(v)!r}|ms" for i in names for v in rng.normal(100, 9, 60)
            ]
            parse("\n".join(lines).encode(), batch, 1 << 20)
            store.ingest(batch, clock())
            evaluator.evaluate_updated()

        feed(list(range(count)))
        clock.advance(config.evaluation.missing_after - 1.0)
        feed(list(range(0, count, 2)))  # the odd ones fall silent
        clock.advance(2.0)
        evaluator.tick()
        silent = [e.metric for e in events if e.transition is Transition.NO_DATA]
        odd = [s.name for s in store if int(s.name[1:]) % 2]
        assert odd == silent
        for series in store:
            if int(series.name[1:]) % 2 == 0:
                alone = judge_one(
                    Judged(series.window, config.metrics[series.name], True), config
                )
                assert alone is not None
                assert alone.observation == evaluator.observations[series.key]
