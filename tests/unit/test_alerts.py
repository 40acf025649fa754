"""The alert state machine: every edge, hold times, hysteresis, no flapping."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from perfwarden.alerts.machine import (
    AlertState,
    Level,
    SeriesAlert,
    Transition,
    Verdict,
    judge_observation,
    step,
)
from perfwarden.config.load import Bound

CLEAR = Verdict(None, clear_of_warning=True, clear_of_critical=True)
BAND = Verdict(None, clear_of_warning=False, clear_of_critical=True)  # in the margin
WARN = Verdict(Level.WARNING, clear_of_warning=False, clear_of_critical=True)
CRIT = Verdict(Level.CRITICAL, clear_of_warning=False, clear_of_critical=False)


def upper(low: float, high: float | None = None, margin: float = 0.05) -> Verdict:
    return judge_observation(
        low,
        low if high is None else high,
        bound=Bound.UPPER,
        warning=150.0,
        critical=200.0,
        hysteresis=margin,
    )


class TestJudgeObservation:
    def test_whole_interval_must_be_beyond(self) -> None:
        """An interval straddling a level does not violate that level."""
        assert upper(140, 160).violated is None
        assert Level.WARNING == upper(190, 210).violated
        assert Level.CRITICAL == upper(201, 230).violated
        assert Level.WARNING == upper(151, 199).violated

    def test_clear_needs_the_margin(self) -> None:
        """Back below a level is not clear of it until past the margin."""
        assert not upper(195).clear_of_critical  # above 200 * 0.95
        assert upper(189).clear_of_critical
        assert not upper(145).clear_of_warning  # above 150 * 0.95
        assert upper(140).clear_of_warning

    def test_lower_bound_is_mirrored(self) -> None:
        """For a lower bound, below the level is bad, above it by the margin clears."""
        verdict = judge_observation(
            0.80, 0.84, bound=Bound.LOWER, warning=0.90, critical=0.85, hysteresis=0.05
        )
        assert Level.CRITICAL == verdict.violated
        good = judge_observation(
            0.95, 0.97, bound=Bound.LOWER, warning=0.90, critical=0.85, hysteresis=0.05
        )
        assert good.clear_of_warning
        assert good.violated is None

    def test_only_critical_configured(self) -> None:
        """A metric with only a critical level is clear of the (absent) warning."""
        verdict = judge_observation(
            10, 10, bound=Bound.UPPER, warning=None, critical=50, hysteresis=0.1
        )
        assert verdict.clear_of_warning


class TestStep:
    def test_ok_stays_ok(self) -> None:
        """No violation, no event."""
        alert = SeriesAlert()
        assert (alert, None) == step(alert, CLEAR, 10.0, hold=5)

    def test_for_zero_fires_at_once(self) -> None:
        """With ``for: 0`` a violation fires immediately."""
        alert, event = step(SeriesAlert(), CRIT, 3.0, hold=0)
        assert (AlertState.FIRING, Level.CRITICAL, Transition.FIRED) == (
            alert.state,
            alert.level,
            event,
        )
        assert 3.0 == alert.fired_at

    def test_pending_then_fired_after_hold(self) -> None:
        """A violation must hold for ``for`` before it fires."""
        alert, event = step(SeriesAlert(), WARN, 0.0, hold=5)
        assert (AlertState.PENDING, Transition.PENDING) == (alert.state, event)
        alert, event = step(alert, WARN, 4.9, hold=5)
        assert (AlertState.PENDING, None) == (alert.state, event)
        alert, event = step(alert, WARN, 5.0, hold=5)
        assert (AlertState.FIRING, Transition.FIRED) == (alert.state, event)

    def test_pending_cancelled(self) -> None:
        """A violation that stops before ``for`` elapses is cancelled, never fired."""
        alert, _ = step(SeriesAlert(), WARN, 0.0, hold=5)
        alert, event = step(alert, CLEAR, 1.0, hold=5)
        assert (AlertState.OK, Transition.CANCELLED) == (alert.state, event)

    def test_pending_keeps_the_worst_level(self) -> None:
        """Pending at warning, then critical: it fires critical."""
        alert, _ = step(SeriesAlert(), WARN, 0.0, hold=2)
        alert, _ = step(alert, CRIT, 1.0, hold=2)
        alert, event = step(alert, WARN, 2.0, hold=2)
        assert (Level.CRITICAL, Transition.FIRED) == (alert.level, event)

    def test_escalation_and_deescalation(self) -> None:
        """warning → critical escalates; clear of critical only de-escalates."""
        alert, _ = step(SeriesAlert(), WARN, 0.0, hold=0)
        alert, event = step(alert, CRIT, 1.0, hold=0)
        assert (Level.CRITICAL, Transition.ESCALATED) == (alert.level, event)
        alert, event = step(alert, WARN, 2.0, hold=0)
        assert (Level.WARNING, Transition.DEESCALATED) == (alert.level, event)

    def test_critical_straight_to_resolved(self) -> None:
        """Critical firing, then clear of both levels: resolved in one step."""
        alert, _ = step(SeriesAlert(), CRIT, 0.0, hold=0)
        alert, event = step(alert, CLEAR, 1.0, hold=0)
        assert (AlertState.OK, Transition.RESOLVED) == (alert.state, event)

    def test_margin_band_keeps_firing(self) -> None:
        """Inside the hysteresis band a firing warning stays firing."""
        alert, _ = step(SeriesAlert(), WARN, 0.0, hold=0)
        same, event = step(alert, BAND, 1.0, hold=0)
        assert (alert, None) == (same, event)

    def test_no_data_then_resumed(self) -> None:
        """Leaving ``no_data`` is its own transition, back to ok."""
        alert, event = step(SeriesAlert(AlertState.NO_DATA), CRIT, 9.0, hold=0)
        assert (AlertState.OK, Transition.DATA_RESUMED) == (alert.state, event)

    @given(st.lists(st.floats(0.99, 1.01), min_size=1, max_size=2000))
    def test_hovering_never_flaps(self, ratios: list[float]) -> None:
        """Values within ±1% of a level fire at most once and never resolve."""
        alert = SeriesAlert()
        events: list[Transition] = []
        for i, ratio in enumerate(ratios):
            alert, event = step(alert, upper(200 * ratio), float(i), hold=0)
            if event is not None:
                events.append(event)
        fired = [e for e in events if e is Transition.FIRED]
        assert len(fired) <= 1
        assert Transition.RESOLVED not in events

    @given(
        st.lists(st.sampled_from([CLEAR, BAND, WARN, CRIT]), max_size=300),
        st.floats(0, 5),
    )
    def test_events_are_consistent(self, verdicts: list[Verdict], hold: float) -> None:
        """Fired and resolved alternate; every state change comes with one event."""
        alert = SeriesAlert()
        open_alert = False
        for i, verdict in enumerate(verdicts):
            new, event = step(alert, verdict, float(i), hold)
            if event is Transition.FIRED:
                assert not open_alert
                open_alert = True
            elif event is Transition.RESOLVED:
                assert open_alert
                open_alert = False
            if new.state is not alert.state:
                assert event is not None
            alert = new
        assert open_alert == (alert.state is AlertState.FIRING)
