"""Checkpoints taken in slices: the loop runs between them, and what changes
meanwhile (new samples, expired series) is saved consistently."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.ingest.statsd import Batch

if TYPE_CHECKING:
    from pathlib import Path

CONFIG = "version: 1\nstatistics: {window: 100}\n"


def make(state_dir: Path) -> Daemon:
    config = parse_config(CONFIG)
    return Daemon(config, state_dir / "c.yaml", state_dir / "run", state_dir)


def feed(daemon: Daemon, key: str, values: list[float]) -> None:
    batch = Batch(received=len(values), accepted=len(values))
    batch.values[key] = values
    daemon.store.ingest(batch, time.monotonic())


class TestSlicedCheckpoint:
    def test_changes_between_slices_are_saved_consistently(
        self, tmp_path: Path
    ) -> None:
        """The loop runs between series; an expiry and new samples meanwhile end up
        in the file as they are in memory once the next checkpoint ran."""
        a = make(tmp_path)
        a.state.restore()
        for i in range(200):  # a step is 16 series: 12 steps
            feed(a, f"m|g|#i:{i}", [float(i)] * 3)
        turns = 0

        async def meanwhile() -> None:
            nonlocal turns
            while turns < 20:
                turns += 1
                if turns == 5:
                    gone = a.store.expire(time.monotonic() + 7200, lambda _: 3600.0)
                    a.state.forget(series.key for series, _ in gone)
                    feed(a, "m|g|#i:1", [100.0])  # back, as a new series
                    feed(a, "late|g", [7.0])
                await asyncio.sleep(0)

        async def run() -> None:
            a.state.slice_seconds = 0.0  # let the loop run after every series
            other = asyncio.create_task(meanwhile())
            assert await a.state.checkpoint()
            assert turns > 5  # the expiry happened while the snapshot was taken
            await other
            assert await a.state.checkpoint(final=True)
            await a.state.close()

        asyncio.run(run())
        assert turns == 20
        b = make(tmp_path)
        b.state.restore()
        saved = {s.key: s.window.values().tolist() for s in b.store}
        assert {"m|g|#i:1": [100.0], "late|g": [7.0]} == saved
