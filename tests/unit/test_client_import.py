"""``import perfwarden.client`` stays light: no daemon dependencies, little memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from perfwarden import __version__

HEAVY = (
    "numpy", "yaml", "structlog", "psutil", "rich", "watchdog", "scipy",
    "pathlib", "inspect", "json", "typing", "dataclasses", "importlib",
)  # fmt: skip

# Nothing but sys is imported before the measurement, so that nothing the client
# needs is already loaded.
PROBE = textwrap.dedent(
    """
    import sys

    def rss_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

    before = set(sys.modules)
    rss_before = rss_kib()
    import perfwarden.client
    rss_after = rss_kib()
    modules = sorted(set(sys.modules) - before)
    import json
    print(json.dumps({"modules": modules, "rss_kib": rss_after - rss_before}))
    """
)


def probe() -> dict[str, object]:
    """What a fresh interpreter loads and how much it grows importing the client."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


class TestLightClient:
    """The client imports the standard library and perfwarden's client modules."""

    def test_no_heavy_module(self) -> None:
        """None of the daemon's dependencies, nor heavy standard modules."""
        modules = probe()["modules"]
        assert isinstance(modules, list)
        heavy = [m for m in modules if m.split(".")[0] in HEAVY]
        assert [] == heavy
        ours = {m for m in modules if m.startswith("perfwarden")}
        assert {
            "perfwarden",
            "perfwarden.client",
            "perfwarden.client._discovery",
            "perfwarden.client._knob_watcher",
            "perfwarden.client._sender",
            "perfwarden.client._trust",
        } == ours

    def test_memory(self) -> None:
        """The import grows a bare interpreter by at most 2 MiB (socket, ~1.5 MiB,
        comes with the first send)."""
        rss_kib = probe()["rss_kib"]
        assert isinstance(rss_kib, int)
        assert rss_kib <= 2048


class TestVersion:
    """``__version__`` is a literal that matches the installed metadata."""

    def test_matches_metadata(self) -> None:
        """hatchling reads the literal; the metadata says the same."""
        from importlib.metadata import version

        assert version("perfwarden") == __version__
