"""Plugins through a real daemon: a pip-installed third-party plugin, isolation."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

DIST = Path(__file__).parent.parent / "data" / "plugins" / "acme_tuner"

CONFIG = """\
version: 1
evaluation: {interval: 0.5s, basis: sample, hysteresis: 0.05}
optimizer: {plugin_timeout: 0.5s, max_failures: 2}
knobs:
  batch.size: {min: 1, max: 256, initial: 64}
metrics:
  latency:
    bound: upper
    warning: 150
    critical: 200
    optimizers: [acme, acme_raises, acme_hangs, acme_garbage, acme_broken_import]
"""


def plugin_states(daemon: DaemonProcess) -> dict[str, str]:
    data = daemon.cli_json("plugins")
    return {p["name"]: p["state"] for p in data["plugins"]}


def violate_and_recover(daemon: DaemonProcess, rounds: int) -> None:
    def count(*events: str) -> int:
        return sum(len(daemon.log_events(event)) for event in events)

    for _ in range(rounds):
        fired = count("alert.fired")
        dispatched = count("optimizer.proposed", "optimizer.no_proposal")
        resolved = count("alert.resolved")
        daemon.send_datagrams(["latency:500|ms"])
        wait_until(lambda n=fired: count("alert.fired") > n)
        wait_until(
            lambda n=dispatched: (
                count("optimizer.proposed", "optimizer.no_proposal") > n
            )
        )
        daemon.send_datagrams(["latency:10|ms"])
        wait_until(lambda n=resolved: count("alert.resolved") > n)


class TestThirdPartyPlugin:
    def test_installed_plugin_found_on_reload(
        self,
        make_daemon: Callable[..., DaemonProcess],
        tmp_path: Path,
        pip: Callable[..., None],
    ) -> None:
        """pip install + ``perfwarden reload`` lists the new plugins, no restart."""
        daemon = make_daemon(CONFIG).start()
        assert "acme" not in plugin_states(daemon)
        source = tmp_path / "acme_tuner"
        shutil.copytree(DIST, source)
        pip("install", "--no-build-isolation", "--no-deps", str(source))
        try:
            result = daemon.cli("reload")
            assert 0 == result.returncode, result.stderr
            plugins = {p["name"]: p for p in daemon.cli_json("plugins")["plugins"]}
            assert "active" == plugins["acme"]["state"]
            assert ("acme-tuner", "1.2.3") == (
                plugins["acme"]["distribution"],
                plugins["acme"]["version"],
            )
            assert "failed" == plugins["acme_broken_import"]["state"]
            assert "ImportError" in plugins["acme_broken_import"]["error"]
            assert daemon.log_events("plugin.loaded")
        finally:
            pip("uninstall", "-y", "acme-tuner")


@pytest.mark.usefixtures("acme_installed")
class TestIsolation:
    def test_bad_plugins_isolated_and_disabled(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Raising, hanging and garbage plugins are disabled; the good one proposes."""
        daemon = make_daemon(CONFIG).start()
        states = plugin_states(daemon)
        assert "failed" == states["acme_broken_import"]
        violate_and_recover(daemon, rounds=1)
        # A plugin hangs in this very moment: the daemon answers at once anyway.
        assert daemon.request("status")["pid"]
        violate_and_recover(daemon, rounds=1)
        states = wait_until(
            lambda: (s := plugin_states(daemon))["acme_hangs"] == "disabled" and s
        )
        assert "active" == states["acme"]
        assert "disabled" == states["acme_raises"]
        assert "disabled" == states["acme_garbage"]
        proposed = daemon.log_events("optimizer.proposed")
        assert {"acme"} == {event["plugin"] for event in proposed}
        assert {"batch.size": 32.0} == proposed[0]["changes"]
        assert proposed[0]["correlation_id"]
        disabled = {e["plugin"] for e in daemon.log_events("plugin.disabled")}
        assert {"acme_raises", "acme_hangs", "acme_garbage"} == disabled

    def test_reload_gives_disabled_plugins_a_new_chance(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """After a reload a disabled plugin is active again (the breaker resets)."""
        daemon = make_daemon(CONFIG).start()
        violate_and_recover(daemon, rounds=2)
        wait_until(lambda: plugin_states(daemon)["acme_raises"] == "disabled")
        assert 0 == daemon.cli("reload").returncode
        assert "active" == plugin_states(daemon)["acme_raises"]

    def test_blocked_and_autoload_off(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """``enabled: false`` blocks a plugin; autoload off loads only named ones."""
        config = CONFIG + "plugins:\n  acme_hangs: {enabled: false}\n  acme: {}\n"
        daemon = make_daemon(
            config, extra_env={"PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD": "1"}
        ).start()
        states = plugin_states(daemon)
        assert "blocked" == states["acme_hangs"]
        assert "active" == states["acme"]
        assert "blocked" == states["acme_raises"]
        assert "blocked" == states["compression"] if "compression" in states else True


class TestPluginsAsShown:
    def test_tables_name_states_and_unconfigured_options_once(
        self, daemon: DaemonProcess
    ) -> None:
        """`plugins` has an INCONCLUSIVE column and names a missing option once
        per plugin; `status` counts the plugins by state."""
        shown = daemon.cli("plugins")
        assert 0 == shown.returncode, shown.stderr
        header = shown.stdout.splitlines()[0].split()
        assert header[header.index("REVERTED") + 1] == "INCONCLUSIVE"
        assert "  exec: option 'command': is required" in shown.stdout
        assert "exec: exec:" not in shown.stdout
        states = plugin_states(daemon)
        unconfigured = sum(state == "unconfigured" for state in states.values())
        active = sum(state == "active" for state in states.values())
        status = daemon.cli("status")
        expected = f"{len(states)} ({active} active, {unconfigured} unconfigured)"
        assert f"plugins    {expected}" in status.stdout
