"""Plugin counters: one dict per plugin name, shared by its handles, saved and
restored through the state documents (``counts_document`` / ``restore_counts``)."""

from __future__ import annotations

from perfwarden.config.load import parse_config
from perfwarden.optimize.plugin_runtime import PluginRuntime, PluginState


def runtime_for(text: str) -> PluginRuntime:
    config = parse_config(text)
    return PluginRuntime(lambda: config, environ={})


class TestCounts:
    async def test_live_counts_reach_the_document(self) -> None:
        """What a handle counts is what the state saves, across rescans."""
        runtime = runtime_for("version: 1\n")
        await runtime.rescan()
        handle = runtime.plugins["compression"]
        assert PluginState.ACTIVE is handle.state
        handle.counts["applied"] += 2
        handle.counts["kept"] += 1
        saved = runtime.counts_document()
        assert (2, 1) == (saved["compression"]["applied"], saved["compression"]["kept"])
        assert "caching" not in saved  # nothing counted, nothing saved
        await runtime.rescan()
        assert 2 == runtime.plugins["compression"].counts["applied"]

    async def test_restored_counts_continue(self) -> None:
        """Counts restored before the first scan are the handles' counts."""
        runtime = runtime_for("version: 1\n")
        runtime.restore_counts(
            {"compression": {"applied": 3, "kept": 2, "bogus": 7, "reverted": "x"}}
        )
        await runtime.rescan()
        counts = runtime.plugins["compression"].counts
        assert (3, 2, 0) == (counts["applied"], counts["kept"], counts["reverted"])
        assert "bogus" not in counts
        counts["kept"] += 1
        assert 3 == runtime.counts_document()["compression"]["kept"]
