"""Hands the C heap's free memory back to the kernel (glibc's ``malloc_trim``).

CPython returns what it frees to the C allocator, and glibc keeps freed memory
inside its heaps (the main ``brk`` heap and an arena per thread that allocated)
unless it lies at the very top. After a burst of short-lived allocations, such as
the imports at start or a checkpoint that copied every changed window, the
daemon's resident memory stays at its peak. ``malloc_trim(0)`` walks every
arena and releases the free pages in the middle of the heaps too (glibc >= 2.8),
in 0.02 ms on an idle daemon and a few ms after freeing 100 MB. Without glibc
(musl, other systems) :func:`trim` does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["freeze_startup", "trim"]


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
    """
    gc.collect()
    gc.freeze()
