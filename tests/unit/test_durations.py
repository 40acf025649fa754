"""perfwarden.config.durations: "5s", "250ms", "1m", "1h", bare seconds."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfwarden.config.durations import parse_duration


class TestAccepts:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("5s", 5.0),
            ("250ms", 0.25),
            ("1m", 60.0),
            ("1h", 3600.0),
            ("1.5s", 1.5),
            ("0.5m", 30.0),
            (".5s", 0.5),
            ("5", 5.0),
            ("2.5", 2.5),
            ("0", 0.0),
            ("0ms", 0.0),
            (" 5s ", 5.0),
            ("5 s", 5.0),
            ("1e3ms", 1.0),
            ("1E-3s", 0.001),
            ("1d", 86400.0),
            ("1.5d", 129600.0),
            ("2w", 1209600.0),
            ("1h30m", 5400.0),
            ("1m30s", 90.0),
            ("2d12h", 216000.0),
            ("1s500ms", 1.5),
            ("1w1d1h1m1s1ms", 694861.001),
        ],
    )
    def test_units(self, text: str, seconds: float) -> None:
        """Each unit (and none) scales the number to seconds."""
        assert seconds == parse_duration(text)

    @pytest.mark.parametrize(("value", "seconds"), [(5, 5.0), (0, 0.0), (1.25, 1.25)])
    def test_numbers_are_seconds(self, value: float, seconds: float) -> None:
        """Bare ints and floats are seconds."""
        assert seconds == parse_duration(value)

    def test_returns_float(self) -> None:
        """The result is always a float, even for an int input."""
        assert float is type(parse_duration(5))

    def test_negative_zero_is_zero(self) -> None:
        """-0.0 is accepted and normalised to 0.0."""
        assert "0.0" == repr(parse_duration(-0.0))

    @given(st.integers(min_value=0))
    def test_integer_milliseconds_are_exact(self, n: int) -> None:
        """f"{n}ms" is n/1000 seconds, exactly, for any integer n."""
        assert n / 1000 == parse_duration(f"{n}ms")

    @given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
    def test_float_milliseconds(self, n: float) -> None:
        """f"{n}ms" is n/1000 seconds for any finite float, exponents included."""
        assert n / 1000 == parse_duration(f"{n}ms")

    @given(st.floats(min_value=0, max_value=1e300, allow_nan=False))
    def test_seconds_round_trip(self, n: float) -> None:
        """str(n) and str(n) + "s" are both n seconds."""
        assert n == parse_duration(str(n)) == parse_duration(f"{n}s")


class TestCompound:
    @given(
        st.lists(st.integers(min_value=0, max_value=10**6), min_size=6, max_size=6),
        st.sets(st.integers(min_value=0, max_value=5), min_size=2),
    )
    def test_sum_of_terms(self, numbers: list[int], chosen: set[int]) -> None:
        """A compound is the exact sum of its terms, as Prometheus reads it."""
        units = [("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
        units.append(("ms", 0))
        text = "".join(f"{numbers[i]}{units[i][0]}" for i in sorted(chosen))
        millis = sum(
            numbers[i] * (units[i][1] * 1000 if units[i][0] != "ms" else 1)
            for i in chosen
        )
        assert millis / 1000 == parse_duration(text)


class TestRejects:
    @pytest.mark.parametrize(
        ("value", "fragment"),
        [
            ("-1s", "must not be negative"),
            (-1, "must not be negative"),
            (-0.5, "must not be negative"),
            (math.nan, "not a number"),
            (math.inf, "too large"),
            ("nan", "invalid duration"),
            ("inf", "invalid duration"),
            ("1e400s", "too large"),
            pytest.param(10**400, "too large", id="10**400"),
            ("", "empty duration"),
            ("   ", "empty duration"),
            ("s", "invalid duration"),
            ("soon", "invalid duration"),
            ("5 minutes", "unknown unit 'minutes'"),
            ("5y", "unknown unit 'y'"),
            ("5S", "unknown unit 'S'"),
            ("30s1m", "largest to smallest"),
            ("1h1h", "largest to smallest"),
            ("1.5h30m", "invalid duration"),
            ("1h 30m", "invalid duration"),
            ("1,5s", "invalid duration"),
            ("0x10s", "invalid duration"),
            pytest.param("1" * 100, "too long", id="100 digits"),
            (True, "boolean"),
            (False, "boolean"),
        ],
    )
    def test_garbage(self, value: str | float, fragment: str) -> None:
        """Negative, non-finite, malformed and boolean values raise ValueError."""
        with pytest.raises(ValueError, match=re.escape(fragment)):
            parse_duration(value)

    def test_message_names_the_units(self) -> None:
        """A parse error tells the user which forms are accepted."""
        with pytest.raises(ValueError, match="ms, s, m, h, d or w"):
            parse_duration("fast")

    @given(st.text(max_size=20))
    def test_never_raises_anything_but_valueerror(self, text: str) -> None:
        """Any string parses to a finite, non-negative float or raises ValueError."""
        try:
            seconds = parse_duration(text)
        except ValueError:
            return
        assert math.isfinite(seconds)
        assert seconds >= 0
