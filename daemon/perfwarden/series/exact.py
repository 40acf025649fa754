"""Exact arithmetic for the rolling window's samples.

Responsibility: the questions :mod:`perfwarden.series.window` asks of its
samples where a cheaper answer would lose exactness: which storage type holds
them exactly (``int16``, ``float32`` or ``float64``, never narrower than the
buffer's type already is), and their moments without the cancellation of the
one-pass formula.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "NARROW",
    "RANK",
    "SHORT",
    "SHORT_MAX",
    "WIDE",
    "exact_moments",
    "fits_int16",
    "kind_for",
    "narrowed",
    "narrowed_list",
]

#: The largest magnitude ``int16`` storage takes (symmetric: -32768 is left out).
SHORT_MAX: Final = 32767
SHORT: Final = np.dtype(np.int16)
NARROW: Final = np.dtype(np.float32)
WIDE: Final = np.dtype(np.float64)
#: Storage types from narrowest to widest.
RANK: Final = {SHORT: 0, NARROW: 1, WIDE: 2}
_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)


def kind_for(value: float, kind: np.dtype[Any]) -> np.dtype[Any]:
    """The narrowest storage type, ``kind`` or wider, that holds ``value``."""
    if kind is SHORT and not (-SHORT_MAX <= value <= SHORT_MAX and value == int(value)):
        kind = NARROW
    if kind is NARROW and array("f", (value,))[0] != value:
        kind = WIDE
    return kind


def narrowed(batch: npt.NDArray[np.float64], kind: np.dtype[Any]) -> npt.NDArray[Any]:
    """A validated ``float64`` batch in the narrowest storage type, ``kind`` or
    wider, that holds it exactly (numpy calls: cheaper than :func:`narrowed_list`
    from a few dozen samples on)."""
    if kind is WIDE:
        return batch
    peak = float(np.abs(batch).max())
    if kind is SHORT and peak <= SHORT_MAX:
        short = batch.astype(SHORT)
        if bool((short == batch).all()):
            return short
    if peak <= _FLOAT32_MAX:  # casting beyond it warns (and is not exact)
        narrow = batch.astype(NARROW)
        if bool((narrow == batch).all()):
            return narrow
    return batch


def narrowed_list(values: list[float], kind: np.dtype[Any]) -> npt.NDArray[Any]:
    """:func:`narrowed` for a short list of validated samples, checked on the
    list before any array is made."""
    if kind is SHORT and fits_int16(values):
        return np.array(values, dtype=np.float64).astype(SHORT)
    if kind is not WIDE:
        narrow = array("f", values)
        if narrow.tolist() == values:  # every value survives float32
            batch: npt.NDArray[Any] = np.frombuffer(narrow, dtype=np.float32)
            if kind is SHORT and min(values) >= -SHORT_MAX and max(values) <= SHORT_MAX:
                short = batch.astype(SHORT)  # in range: truncates, no warning
                if bool((short == batch).all()):
                    return short
            return batch
    return np.array(values, dtype=np.float64)


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
