"""What a new user and unmodified clients trip on, through a real daemon and the CLI:
exit codes for unknown names and bad values, the alert text when nothing fires, the
reload story (rejected, restored, plugins), counters that survive restarts, the lock
file."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.paths import LOCK_FILE
from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

CONFIG = """\
version: 1
statistics: {window: 200, min_samples: 10}
evaluation: {interval: 200ms, basis: mean, window: 20}
knobs:
  batch.size: {min: 1, max: 256, initial: 16}
metrics:
  latency: {unit: ms, bound: upper, target: 20, warning: 150, critical: 200}
"""

PLUGINS = """\
plugins:
  exec: {command: ["true"], revert_command: ["true"]}
  compresion: {level: 3}
"""


class TestNamesAndValues:
    def test_unknown_names_and_bad_values(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """report and silence name an unknown metric; knobs set K abc is usage."""
        daemon = make_daemon(CONFIG).start()
        report = daemon.cli("report", "no_such_metric")
        assert (1, "no_such_metric") == (report.returncode, report.stderr.split("'")[1])
        silence = daemon.cli("silence", "no_such_metric", "--for", "5m")
        assert 0 == silence.returncode, silence.stderr
        assert "warning" in silence.stderr
        assert "no_such_metric" in silence.stderr
        known = daemon.cli("silence", "latency", "--for", "5m")
        assert ("", 0) == (known.stderr, known.returncode)
        knob = daemon.cli("knobs", "set", "batch.size", "abc")
        assert 2 == knob.returncode
        assert "batch.size needs a number" in knob.stderr
        assert 2 == daemon.cli("silence", "latency", "--for", "0").returncode

    def test_alerts_say_what_is_off_target(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """At 80 against a target of 20, below warning: not "all within range"."""
        daemon = make_daemon(CONFIG).start()
        daemon.send_datagrams(
            ["\n".join(f"latency:{80 + i % 3}|ms" for i in range(30))]
        )
        daemon.wait_received(30)
        wait_until(lambda: daemon.request("stats")["series"][0]["status"] == "ok")
        shown = daemon.cli("alerts")
        assert 0 == shown.returncode, shown.stderr
        assert "within optimal ranges" not in shown.stdout
        assert (
            "latency: mean 81ms over the newest 20 samples, above its target 20ms"
        ) in shown.stdout
        report = daemon.cli("report")
        entry = report.stdout.split("latency:")[1]
        assert "status_judged_on: mean 81ms of the newest 20 samples" in entry
        assert "recent_actions:" not in report.stdout

    def test_lock_file_removed_at_clean_stop(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A clean stop leaves no .perfwarden.lock; a restart takes it again."""
        daemon = make_daemon(CONFIG).start()
        lock = daemon.socket_dir / LOCK_FILE
        assert str(daemon.process.pid if daemon.process else "") == (
            lock.read_text().strip()
        )
        assert 0 == daemon.stop()
        assert not lock.exists()
        daemon.start()
        assert lock.exists()


class TestReload:
    def test_restoring_the_config_in_force_clears_a_rejection(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Saving the old bytes after a rejected file reloads, logs, and says ok."""
        daemon = make_daemon(CONFIG).start()
        assert daemon.config_path is not None
        good = daemon.config_path.read_bytes()
        daemon.config_path.write_text(CONFIG.replace("bound: upper", "bound: up"))
        daemon.wait_log("config.rejected")
        status = daemon.cli("status")
        assert "REJECTED" in status.stdout
        assert "metrics.latency.bound" in status.stdout
        daemon.config_path.write_bytes(good)
        reloaded = daemon.wait_log("config.reloaded")
        assert reloaded["restored"] is True
        last = daemon.cli_json("status")["config"]["last_reload"]
        assert (True, True) == (last["ok"], last["restored"])
        assert "REJECTED" not in daemon.cli("status").stdout

    def test_plugins_in_reload_and_unknown_plugin_options(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """reload counts a plugin it loaded; options for a misspelt plugin are named
        with a "did you mean" by check-config and reload; unconfigured is logged
        once, not on every reload."""
        daemon = make_daemon(CONFIG).start()
        assert daemon.config_path is not None
        unconfigured = len(daemon.log_events("plugin.unconfigured"))
        assert 1 <= unconfigured
        daemon.config_path.write_text(f"{CONFIG}{PLUGINS}")
        checked = daemon.cli("check-config", str(daemon.config_path))
        assert 0 == checked.returncode, checked.stderr
        assert "1 warning(s)" in checked.stdout
        assert "plugins.compresion" in checked.stderr
        assert "did you mean 'compression'?" in checked.stderr
        # The watcher reloads the saved file; reload's reply is the same record.
        reloaded = daemon.wait_log("config.reloaded")
        assert "plugin exec: loaded" in reloaded["changes"]
        assert "plugins.compresion" == daemon.wait_log("config.unknown_plugin")["key"]
        reload = daemon.cli("reload")
        assert 0 == reload.returncode, reload.stderr
        assert "did you mean 'compression'?" in reload.stderr
        again = daemon.cli("reload")
        assert 0 == again.returncode, again.stderr
        # exec left the unconfigured ones; the others were not logged again.
        assert unconfigured - 1 == len(daemon.log_events("plugin.unconfigured")) - 1


class TestPluginCounters:
    def test_counts_survive_restarts(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """applied, kept, reverted... are saved with the learning and restored,
        after a clean stop and after kill -9."""
        daemon = make_daemon(CONFIG)
        prepared = Daemon(
            parse_config(CONFIG),
            daemon.base_dir / "x.yaml",
            daemon.base_dir / "x",
            daemon.state_dir,
        )
        prepared.state.restore()
        counts = {"proposals": 5, "applied": 3, "kept": 2, "reverted": 1, "calls": 9}
        prepared.plugins.restore_counts({"compression": counts})

        async def write() -> None:
            assert await prepared.state.checkpoint(final=True)
            await prepared.state.close()

        asyncio.run(write())
        daemon.start()
        # From the prepared file, then from its own after a clean stop and a kill -9.
        for restart in (None, "stop", "kill"):
            if restart == "stop":
                assert 0 == daemon.stop()
                daemon.start()
            elif restart == "kill" and daemon.process is not None:
                daemon.process.kill()
                daemon.process.wait(30)
                daemon.start()
            plugins = {p["name"]: p for p in daemon.cli_json("plugins")["plugins"]}
            shown = plugins["compression"]
            assert counts == {key: shown[key] for key in counts}


class TestSignedGauges:
    def test_statsd_deltas_when_configured(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """With ingest.signed_gauges: delta, pystatsd's lines mean what it meant."""
        daemon = make_daemon(CONFIG + "ingest: {signed_gauges: delta}\n").start()
        daemon.send_datagrams(["level:0|g\nlevel:-5|g"])  # pystatsd: gauge -5
        daemon.wait_received(2)
        daemon.send_datagrams(["level:+3|g"])  # pystatsd: gauge +3, delta=True
        daemon.wait_received(3)
        (series,) = daemon.request("stats", metrics=["level"], recent=10)["series"]
        assert [-5.0, -2.0] == series["recent"]
        daemon.send_datagrams(["dup:1|g|#k:2,k:1"])  # a repeated tag key
        daemon.wait_received(4)
        (dup,) = daemon.request("stats", metrics=["dup"])["series"]
        assert {"k": "1,2"} == dup["tags"]
        assert "k:1,k:2" in daemon.cli("stats", "dup").stdout

    def test_rejected_setting_names_the_choices(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A misspelt value is refused with the choices and a "did you mean"."""
        daemon = make_daemon(CONFIG + "ingest: {signed_gauges: deltas}\n")
        assert daemon.config_path is not None
        checked = daemon.cli("check-config", str(daemon.config_path))
        assert 1 == checked.returncode
        assert "ingest.signed_gauges" in checked.stderr
        assert "did you mean 'delta'?" in checked.stderr
