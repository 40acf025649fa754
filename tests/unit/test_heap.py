"""perfwarden.heap: free C-heap memory goes back to the kernel, or nothing happens."""

from __future__ import annotations

import gc
import platform
from typing import TYPE_CHECKING

import pytest

from perfwarden import heap

if TYPE_CHECKING:
    from collections.abc import Callable


class TestTrim:
    """trim() releases free pages under glibc and is a no-op elsewhere."""

    @pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
    def test_releases_freed_memory(self):
        """Freed 8 KiB blocks between live ones (holes no free() returns) are
        released."""
        blocks = [bytes(8192) for _ in range(4096)]
        kept = blocks[::2]
        del blocks
        assert heap.trim() is True
        assert 2048 == len(kept)

    def test_without_malloc_trim(self, monkeypatch: pytest.MonkeyPatch):
        """Without the C function (musl, other systems) trim() does nothing."""
        missing: Callable[[], None] = lambda: None  # noqa: E731
        monkeypatch.setattr(heap, "_malloc_trim", missing)
        assert heap.trim() is False


class TestFreezeStartup:
    """freeze_startup() freezes what exists and collects the young less often."""

    def test_freezes_and_raises_the_young_threshold(self):
        """Objects alive at the call are frozen; the youngest generation's
        threshold becomes YOUNG_THRESHOLD, the older two are kept."""
        before = gc.get_threshold()
        try:
            heap.freeze_startup()
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *before[1:])
        finally:
            gc.unfreeze()
            gc.set_threshold(*before)
