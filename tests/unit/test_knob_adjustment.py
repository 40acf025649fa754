"""``knobs.adjustment``: how a clamped knob value is explained to a person."""

from __future__ import annotations

import pytest

from perfwarden.optimize.knobs import Adjustment, adjustment
from perfwarden.plugin_api import KnobSpec

RATIO = KnobSpec("ratio", 0.4, min=0.1, max=0.9, step=0.1)
BATCH = KnobSpec("batch", 16, min=1, max=256)
CODEC = KnobSpec("codec", "zlib", choices=("zlib", "lz4"))


def adjust(spec: KnobSpec, value: float | str) -> Adjustment | None:
    """The adjustment for ``value`` as the knob store would store it."""
    return adjustment(spec, value, spec.clamp(value))


class TestAdjustment:
    """What is said, and only when the stored value differs."""

    @pytest.mark.parametrize(
        ("spec", "value"),
        [(RATIO, 0.3), (RATIO, 0.9), (BATCH, 1), (BATCH, 64.0), (CODEC, "lz4")],
    )
    def test_allowed_values_are_silent(self, spec: KnobSpec, value: float) -> None:
        """A value the declaration allows as given has no adjustment."""
        assert adjust(spec, value) is None

    def test_above_maximum(self) -> None:
        """Above the maximum: clamped, with the rule and the value stored."""
        assert Adjustment(
            "clamped", "ratio: 0.97 is above the maximum 0.9; set to 0.9"
        ) == adjust(RATIO, 0.97)

    def test_below_minimum(self) -> None:
        """Below the minimum: clamped."""
        assert Adjustment(
            "clamped", "batch: -5 is below the minimum 1; set to 1"
        ) == adjust(BATCH, -5)

    def test_off_the_step(self) -> None:
        """Inside the bounds but off the step: rounded."""
        assert Adjustment(
            "rounded", "ratio: 0.44 is not on the knob's step of 0.1; set to 0.4"
        ) == adjust(RATIO, 0.44)

    def test_fraction_for_a_whole_number_knob(self) -> None:
        """A fraction for an integer knob without a step: rounded to a whole number."""
        assert Adjustment(
            "rounded", "batch: 33.4 is not a whole number; set to 33"
        ) == adjust(BATCH, 33.4)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("spec", [RATIO, BATCH, KnobSpec("free", 1.5)])
def test_clamp_refuses_non_finite_values(spec: KnobSpec, value: float) -> None:
    """NaN and infinities are refused whoever sets them (a plugin's proposal too),
    with or without bounds and step."""
    with pytest.raises(ValueError, match="not a finite number"):
        spec.clamp(value)
