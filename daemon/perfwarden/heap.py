"""Hands the C heap's free memory back to the kernel (glibc's ``malloc_trim``).

CPython returns what it frees to the C allocator, and glibc keeps freed memory
inside its heaps (the main ``brk`` heap and an arena per thread that allocated)
unless it lies at the very top. After a burst of short-lived allocations, such as
the imports at start or a checkpoint that copied every changed window, the
daemon's resident memory stays at its peak. ``malloc_trim(0)`` walks every
arena and releases the free pages in the middle of the heaps too (glibc >= 2.8),
in 0.02 ms on an idle daemon and a few ms after freeing 100 MB. Without glibc
(musl, other systems) :func:`trim` does nothing.

The cyclic collector's side of the same job, :func:`freeze_startup`: what the
start-up made is frozen out of its reach, and it runs less often than CPython's
default, which a daemon making a list per series per batch would pay for.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["YOUNG_THRESHOLD", "freeze_startup", "trim"]

#: Container allocations (net of frees) between two collections of the youngest
#: generation, set by :func:`freeze_startup` (CPython's default is 700).
YOUNG_THRESHOLD: Final = 10_000


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # no C library to open, or not glibc
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim_: Callable[[int], int] = function
    return trim_


def trim() -> bool:
    """Release the free pages of every malloc arena; True if any were released."""
    malloc_trim = _malloc_trim()
    return malloc_trim is not None and malloc_trim(0) == 1


def freeze_startup() -> None:
    """Collect once, then move every object alive now out of the collector's reach.

    What exists at the end of the start-up (modules, classes and functions of every
    import, the config, plugins, the restored series) lives as long as the daemon;
    a full collection would walk it every time (36 ms at 10k series, most of it
    those objects) and hold the event loop meanwhile. Frozen, it is never walked
    again: full collections at 10k series take 10 ms (bench/hostile.md). Objects
    made later are collected as usual.

    The youngest generation is then collected every :data:`YOUNG_THRESHOLD`
    container allocations instead of CPython's 700: with thousands of series a
    batch makes a list per series (the parser's grouping), so at 700 a stream
    batch of 5,000 lines ran several young collections, each walking the lists
    still alive and promoting them to be walked again (12-23 % of the ingest
    time at 10,000 series, bench/scaling.md). A young collection of 10,000
    objects takes well under a millisecond.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
