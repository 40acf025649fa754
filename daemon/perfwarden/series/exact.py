"""Exact arithmetic for the rolling window's samples.

Responsibility: the two questions :mod:`perfwarden.series.window` asks of its
samples where a cheaper answer would lose exactness: can ``int16`` storage hold a
list of samples exactly, and the moments of a window's samples without the
cancellation of the one-pass formula.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["SHORT_MAX", "exact_moments", "fits_int16"]

#: The largest magnitude ``int16`` storage takes (symmetric: -32768 is left out).
SHORT_MAX: Final = 32767


def fits_int16(values: list[float]) -> bool:
    """Are all ``values`` integers within +-32767 (``int16`` holds them exactly)?
    Checked on the list, before any array is made: most pending lists of an
    ``int16`` window pass, and this costs less than the ``float32`` round trip
    and the array comparison of the window's general path."""
    if not (min(values) >= -SHORT_MAX and max(values) <= SHORT_MAX):
        return False
    try:
        return all(map(float.is_integer, values))
    except TypeError:  # an int (or another number type) appended as it is
        return False


def exact_moments(data: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """Return ``(K, sum(x - K), sum((x - K)**2))`` with ``K`` the mean of ``data``
    (or its value when constant, which makes both sums exactly zero); ``data`` is
    overwritten."""
    lowest = float(data.min())
    highest = float(data.max())
    shift = lowest if lowest == highest else float(data.mean())
    np.subtract(data, shift, out=data)
    s1 = float(data.sum())
    np.square(data, out=data)
    return shift, s1, float(data.sum())
