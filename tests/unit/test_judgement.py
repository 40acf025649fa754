"""Judgement: the multiwindow basis, holds counted in samples, pacing independence."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.alerts.evaluator import AlertEvent, Evaluator
from perfwarden.alerts.machine import (
    AlertState,
    Level,
    SeriesAlert,
    Transition,
    Verdict,
    step,
)
from perfwarden.alerts.observation import Reference, judge_windows
from perfwarden.config.load import Basis, Config, parse_config
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.store import MetricStore
from perfwarden.series.window import RollingWindow
from perfwarden.testing import FakeClock

VIOLATED = Verdict(Level.WARNING, clear_of_warning=False, clear_of_critical=True)
CLEAR = Verdict(None, clear_of_warning=True, clear_of_critical=True)


class Replay:
    """One series of ``latency`` judged by the real evaluator on a fake clock."""

    def __init__(self, evaluation: str, levels: str = "warning: 150") -> None:
        self.config: Config = parse_config(
            "version: 1\nstatistics: {min_samples: 30}\n"
            f"evaluation: {{{evaluation}}}\n"
            f"metrics:\n  latency: {{bound: upper, {levels}}}\n"
        )
        self.clock = FakeClock()
        self.store = MetricStore(self.config.metric_window, 10)
        self.evaluator = Evaluator(self.store, lambda: self.config, clock=self.clock)
        self.events: list[AlertEvent] = []
        self.evaluator.subscribers.append(self.events.append)

    def feed(self, values: list[float] | np.ndarray) -> None:
        """One ingest batch of ``values``, then the evaluation after it."""
        batch = Batch()
        lines = "\n".join(f"latency:{float(v)!r}|ms" for v in values)
        parse(lines.encode(), batch, 1 << 20)
        self.store.ingest(batch, self.clock())
        self.evaluator.evaluate_updated()

    def feed_each(self, values: list[float] | np.ndarray) -> list[int]:
        """One value per batch; the indices after which an alert fired."""
        fired = []
        for index, value in enumerate(values):
            before = len(self.fires())
            self.clock.advance(1.0)
            self.feed([value])
            if len(self.fires()) > before:
                fired.append(index)
        return fired

    def fires(self) -> list[AlertEvent]:
        return [e for e in self.events if e.transition is Transition.FIRED]

    def transitions(self) -> list[Transition]:
        return [event.transition for event in self.events]


class TestHoldInSamples:
    def test_fires_on_the_third_violating_sample(self) -> None:
        """for: 3 samples: pending on the first, fired on the third."""
        alert, transition = step(SeriesAlert(), VIOLATED, 0.0, 0.0, hold_samples=3)
        assert (Transition.PENDING, 1) == (transition, alert.held)
        alert, transition = step(alert, VIOLATED, 0.0, 0.0, hold_samples=3)
        assert (None, 2) == (transition, alert.held)
        alert, transition = step(alert, VIOLATED, 0.0, 0.0, hold_samples=3)
        assert (Transition.FIRED, AlertState.FIRING) == (transition, alert.state)

    def test_ticks_without_samples_do_not_count(self) -> None:
        """An evaluation that judged no new sample (a tick) does not advance it."""
        alert, _ = step(SeriesAlert(), VIOLATED, 0.0, 0.0, hold_samples=2)
        for now in range(1, 100):
            alert, transition = step(
                alert, VIOLATED, float(now), 0.0, samples=0, hold_samples=2
            )
            assert transition is None
        assert AlertState.PENDING == alert.state

    def test_a_batch_counts_all_its_samples(self) -> None:
        """A violating observation of 3 new samples satisfies for: 3 samples."""
        _, transition = step(
            SeriesAlert(), VIOLATED, 0.0, 0.0, samples=3, hold_samples=3
        )
        assert Transition.FIRED == transition

    def test_time_and_samples_both_hold(self) -> None:
        """With both a time and a count, it fires when both have elapsed."""
        alert, _ = step(SeriesAlert(), VIOLATED, 0.0, 5.0, samples=10, hold_samples=3)
        assert AlertState.PENDING == alert.state
        _, transition = step(alert, VIOLATED, 5.0, 5.0, samples=0, hold_samples=3)
        assert Transition.FIRED == transition

    def test_clear_sample_cancels(self) -> None:
        """A clear sample while pending cancels; the count starts over."""
        alert, _ = step(SeriesAlert(), VIOLATED, 0.0, 0.0, hold_samples=3)
        alert, transition = step(alert, CLEAR, 1.0, 0.0, hold_samples=3)
        assert (Transition.CANCELLED, 0) == (transition, alert.held)

    @settings(max_examples=200, deadline=None)
    @given(
        violations=st.lists(st.booleans(), max_size=40),
        hold=st.integers(0, 6),
    )
    def test_fires_exactly_after_hold_violations_in_a_row(
        self, violations: list[bool], hold: int
    ) -> None:
        """From ok, it fires at the first run of ``hold`` violating samples in a
        row (``for: 0`` or ``1``: at the first one), as a plain count says."""
        alert = SeriesAlert()
        fired_at = None
        for index, violated in enumerate(violations):
            verdict = VIOLATED if violated else CLEAR
            alert, transition = step(
                alert, verdict, float(index), 0.0, hold_samples=hold
            )
            if transition is Transition.FIRED:
                fired_at = index
                break
        run, expected = 0, None
        for index, violated in enumerate(violations):
            run = run + 1 if violated else 0
            if violated and run >= max(hold, 1):
                expected = index
                break
        assert expected == fired_at

    def test_config_reads_samples(self) -> None:
        """``for: 3 samples`` is a count; ``for: 1 sample`` too; durations stay."""
        config = parse_config(
            "version: 1\nevaluation: {for: 1 sample}\nmetrics:\n"
            "  a: {bound: upper, warning: 1, for: 3 samples}\n"
            "  b: {bound: upper, warning: 1, for: 2s}\n"
            "  c: {bound: upper, warning: 1}\n"
        )
        evaluation = config.evaluation
        assert (0.0, 1) == (evaluation.for_, evaluation.for_samples)
        assert (0.0, 3) == config.metrics["a"].hold(evaluation)
        assert (2.0, 0) == config.metrics["b"].hold(evaluation)
        assert (0.0, 1) == config.metrics["c"].hold(evaluation)

    def test_a_stall_does_not_fire_a_single_value(self) -> None:
        """One violating value then silence: ticks re-judge it but never fire it."""
        replay = Replay("basis: sample, for: 3 samples")
        replay.feed([100.0] * 5 + [200.0])
        for _ in range(10):
            replay.clock.advance(1.0)
            replay.evaluator.tick()
        assert [Transition.PENDING] == replay.transitions()

    @settings(max_examples=80, deadline=None)
    @given(
        values=st.lists(st.sampled_from([100.0, 149.0, 160.0, 210.0]), max_size=60),
        cuts=st.lists(st.integers(0, 60), max_size=12),
    )
    def test_sample_basis_verdict_does_not_depend_on_batching(
        self, values: list[float], cuts: list[int]
    ) -> None:
        """On ``sample``, any split into batches gives the transitions of one
        value per batch (a burst judged on uneven data = on evenly paced data)."""
        evaluation = "basis: sample, for: 3 samples, hysteresis: 0.05"
        levels = "warning: 150, critical: 200"
        even = Replay(evaluation, levels)
        for value in values:
            even.feed([value])
        uneven = Replay(evaluation, levels)
        bounds = sorted({0, len(values), *(c for c in cuts if c <= len(values))})
        for start, end in itertools.pairwise(bounds):
            uneven.feed(values[start:end])
        assert even.transitions() == uneven.transitions()


def ar1(phi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    shocks = rng.standard_normal(n) * math.sqrt(1 - phi * phi)
    out = np.empty(n)
    previous = rng.standard_normal()
    for i in range(n):
        previous = phi * previous + shocks[i]
        out[i] = previous
    return out


class TestReference:
    @settings(max_examples=100, deadline=None)
    @given(
        reference=st.lists(st.floats(0.0, 1e4), min_size=30, max_size=120),
        current=st.lists(st.floats(0.0, 1e4), min_size=3, max_size=30),
    )
    def test_matches_scipy(self, reference: list[float], current: list[float]) -> None:
        """Trimmed mean (one value cut at each end) +- t * s * sqrt(n / n_eff / m),
        with scipy's t quantile and trim_mean, numpy's variance and lag-1 r."""
        ref = np.array(reference)
        cur = np.array(current)
        n = len(ref)
        centred = ref - ref.mean()
        full = np.correlate(centred, centred, mode="full")
        r = full[n] / full[n - 1] if full[n - 1] > 0 else 0.0
        n_eff = float(n)
        if r > scipy.stats.norm.ppf(0.975) / math.sqrt(n):
            n_eff = max(2.0, n * (1 - r) / (1 + r))
        t = scipy.stats.t.ppf(0.975, max(math.floor(n_eff) - 1, 1))
        m = len(cur) - 2
        half = t * math.sqrt(np.var(ref, ddof=1) * n / n_eff / m)
        middle = float(np.sort(cur)[1:-1].mean())
        low, high = Reference.of(ref, 0.95).observe(current)
        scale = 1e-9 * max(1.0, float(np.abs(cur).max()), half)
        assert (middle - half, middle + half) == pytest.approx(
            (low, high), rel=1e-9, abs=scale
        )


class TestOnlyViolation:
    @settings(max_examples=150, deadline=None)
    @given(
        values=st.lists(st.floats(0.0, 400.0), min_size=30, max_size=200),
        warning=st.floats(50.0, 300.0),
        upper=st.booleans(),
    )
    def test_same_violation_as_the_full_judgement(
        self, values: list[float], warning: float, upper: bool
    ) -> None:
        """Skipping the short windows when no value is beyond a level never
        changes whether a level is violated."""
        bound = "upper" if upper else "lower"
        config = parse_config(
            "version: 1\nstatistics: {min_samples: 30}\nmetrics:\n"
            f"  m: {{bound: {bound}, warning: {warning!r}}}\n"
        )
        window = RollingWindow(1000)
        window.extend(values)
        metric = config.metrics["m"]
        full = judge_windows(window, config, metric)
        quick = judge_windows(window, config, metric, only_violation=True)
        assert full is not None
        assert quick is not None
        assert full.verdict.violated == quick.verdict.violated


class TestMultiwindow:
    def test_is_the_default_basis(self) -> None:
        """A config that names no basis judges on multiwindow."""
        assert Basis.MULTIWINDOW == parse_config("version: 1\n").evaluation.basis

    def test_burst_fires_within_a_few_samples_where_ci_does_not(self) -> None:
        """Ten samples at twice the level after quiet noise: multiwindow fires
        during the burst; the 100-sample ci never does."""
        rng = np.random.default_rng(4)
        quiet = 100 + 10 * rng.standard_normal(300)
        burst = 300 + 10 * rng.standard_normal(10)
        fired = {}
        for basis in ("multiwindow", "ci"):
            replay = Replay(f"basis: {basis}", "warning: 150")
            replay.feed_each(quiet)
            fired[basis] = replay.feed_each(burst)
        assert fired["multiwindow"]
        assert fired["multiwindow"][0] < 6
        assert [] == fired["ci"]

    def test_burst_alert_resolves_after_the_burst(self) -> None:
        """Once the burst has left the short windows, the alert resolves."""
        rng = np.random.default_rng(5)
        replay = Replay("basis: multiwindow", "warning: 150")
        replay.feed_each(100 + 10 * rng.standard_normal(300))
        replay.feed_each(300 + 10 * rng.standard_normal(10))
        replay.feed_each(100 + 10 * rng.standard_normal(60))
        assert [Transition.FIRED, Transition.RESOLVED] == replay.transitions()

    def test_shift_fires_through_the_longer_windows(self) -> None:
        """A shift to 1.15 x the level fires well within 75 samples."""
        rng = np.random.default_rng(6)
        replay = Replay("basis: multiwindow", "warning: 123")
        replay.feed_each(100 + 10 * rng.standard_normal(300))
        fired = replay.feed_each(1.15 * 123 + 10 * rng.standard_normal(75))
        assert fired

    def test_autocorrelated_noise_does_not_fire(self) -> None:
        """AR(1) phi = 0.7 noise judged per sample against its own p99: no fire."""
        rng = np.random.default_rng(7)
        values = 100 + 10 * ar1(0.7, 6000, rng)
        warning = float(np.percentile(values[:1000], 99))
        replay = Replay("basis: multiwindow", f"warning: {warning!r}")
        assert [] == replay.feed_each(values)

    def test_observation_is_the_window_further_beyond(self) -> None:
        """observe() and the event show the observation that lies further up."""
        rng = np.random.default_rng(8)
        replay = Replay("basis: multiwindow", "warning: 150")
        replay.feed_each(100 + 10 * rng.standard_normal(300))
        replay.feed_each([300.0 + i for i in range(8)])
        fired = replay.fires()[0]
        assert fired.basis is Basis.MULTIWINDOW
        assert fired.observed is not None
        assert fired.observed[0] > 150
        series = replay.store.by_name("latency")[0]
        assert replay.evaluator.observe(series, replay.config) == pytest.approx(
            replay.evaluator.observations[series.key]
        )

    def test_needs_min_samples(self) -> None:
        """Below min_samples nothing is judged (insufficient_data)."""
        replay = Replay("basis: multiwindow", "warning: 150")
        replay.feed([500.0] * 20)
        series = replay.store.by_name("latency")[0]
        assert "insufficient_data" == replay.evaluator.status_of(series)
        assert [] == replay.transitions()
