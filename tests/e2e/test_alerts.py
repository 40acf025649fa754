"""Alerts through a real daemon: firing, hold times, no flapping, reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

CONFIG = """\
version: 1
statistics: {{min_samples: 10}}
evaluation: {{interval: 0.5s, basis: {basis}, window: 50, hysteresis: 0.05,
              missing_after: {missing}}}
metrics:
  latency:
    unit: ms
    bound: upper
    target: 100
    warning: 150
    critical: 200
    for: {hold}
  quality:
    bound: lower
    target: 0.95
    warning: 0.90
    critical: 0.85
"""


def start(
    make_daemon: Callable[..., DaemonProcess],
    basis: str = "ci",
    hold: str = "0s",
    missing: str = "1h",
) -> DaemonProcess:
    config = CONFIG.format(basis=basis, hold=hold, missing=missing)
    return make_daemon(config).start()


def send_values(daemon: DaemonProcess, metric: str, values: list[float]) -> None:
    lines = [f"{metric}:{v!r}|ms" for v in values]
    daemon.send_datagrams(
        "\n".join(lines[i : i + 20]) for i in range(0, len(lines), 20)
    )


class TestFiring:
    def test_critical_shift_fires_after_hold(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A critical shift goes pending, then fires once ``for`` has elapsed."""
        daemon = start(make_daemon, hold="1s")
        send_values(daemon, "latency", [90.0 + (i % 5) for i in range(60)])
        daemon.wait_received(60)
        send_values(daemon, "latency", [260.0 + (i % 7) for i in range(60)])
        fired = daemon.wait_log("alert.fired")
        pending = daemon.log_events("alert.pending")[0]
        assert "critical" == fired["severity"]
        assert "immediate_optimization_required" == fired["action"]
        assert 200.0 == fired["threshold"]
        assert "ci" == fired["basis"]
        assert fired["observed"][0] > 200
        assert fired["timestamp"] >= pending["timestamp"]
        alerts = daemon.cli_json("alerts")["alerts"]
        assert ["critical"] == [a["level"] for a in alerts]

    def test_lower_bound_alerts_low(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A lower-bound metric fires when it falls below its levels."""
        daemon = start(make_daemon)
        send_values(daemon, "quality", [0.80 + (i % 3) * 0.005 for i in range(40)])
        fired = daemon.wait_log("alert.fired")
        assert ("quality", "critical") == (fired["metric"], fired["severity"])

    def test_hovering_metric_does_not_flap(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Thousands of samples ±1% around critical: at most one fire/resolve pair."""
        daemon = start(make_daemon, basis="sample")
        values = [200.0 * (0.99 + 0.02 * ((i * 7919) % 101) / 100) for i in range(3000)]
        send_values(daemon, "latency", values)
        daemon.wait_received(3000)
        wait_until(lambda: daemon.request("status")["evaluation"]["ticks"] >= 2)
        assert len(daemon.log_events("alert.fired")) <= 1
        assert len(daemon.log_events("alert.resolved")) <= 1

    def test_resolves_after_recovery(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Back well inside the levels, it resolves and the report is all clear."""
        daemon = start(make_daemon)
        send_values(daemon, "latency", [300.0 + i % 3 for i in range(50)])
        daemon.wait_log("alert.fired")
        send_values(daemon, "latency", [50.0 + i % 3 for i in range(50)])
        resolved = daemon.wait_log("alert.resolved")
        assert "latency" == resolved["metric"]
        result = daemon.cli("alerts")
        assert "All performance metrics within optimal ranges" in result.stdout

    def test_no_data(self, make_daemon: Callable[..., DaemonProcess]) -> None:
        """A series that goes silent becomes no_data, then resumes with new samples."""
        daemon = start(make_daemon, missing="1s")
        send_values(daemon, "latency", [90.0 + i % 3 for i in range(20)])
        daemon.wait_log("alert.no_data")
        send_values(daemon, "latency", [90.0])
        daemon.wait_log("alert.data_resumed")


class TestReportsAndSilences:
    def test_alert_report_layout(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """``perfwarden alerts`` prints the seed's layout with live numbers."""
        daemon = start(make_daemon)
        send_values(daemon, "latency", [250.0 + i % 4 for i in range(40)])
        daemon.wait_log("alert.fired")
        text = daemon.cli("alerts").stdout
        assert "Performance Alert Summary" in text
        assert "CRITICAL: latency" in text
        for field in ("Current:", "Threshold: 200ms", "Action: immediate_optimization"):
            assert field in text

    def test_report_documents(self, make_daemon: Callable[..., DaemonProcess]) -> None:
        """``perfwarden report`` is YAML with the seed's documents from live data."""
        daemon = start(make_daemon)
        send_values(daemon, "latency", [80.0 + i % 9 for i in range(200)])
        daemon.wait_received(200)
        result = daemon.cli("report")
        assert 0 == result.returncode, result.stderr
        document = yaml.safe_load(result.stdout)
        entry = document["monitoring_dashboard"]["metrics"]["latency"]
        assert "<100ms" == entry["target"]
        assert 200 == entry["sample_size"]
        assert entry["current_average"].endswith("ms")
        assert entry["confidence_interval_95"].startswith("[")
        assert entry["trend"] in {"stable", "consistently_low", "exceeding_target"}
        assert "learning_patterns" in document
        lines = document["validation_results"]["confidence_intervals_95_percent"]
        assert lines["latency"].endswith("✅")
        as_json = daemon.cli_json("report")
        assert as_json["monitoring_dashboard"]["metrics"]["latency"] == entry

    def test_silence_mutes_events(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A silenced metric still changes state, logged as silenced, not reported."""
        daemon = start(make_daemon)
        result = daemon.cli("silence", "latency", "--for", "1h", "--comment", "deploy")
        assert 0 == result.returncode, result.stderr
        send_values(daemon, "latency", [250.0 + i % 4 for i in range(40)])
        fired = daemon.wait_log("alert.fired")
        assert fired["silenced"] is True
        data = daemon.cli_json("alerts")
        # Silenced is not all clear: the report says which metric is not.
        assert "All performance metrics" not in data["report"]
        assert "No alerts firing. Not all clear: latency" in data["report"]
        assert ["latency"] == [s["metric"] for s in data["silences"]]
        removed = daemon.cli("silence", "--remove", data["silences"][0]["id"])
        assert 0 == removed.returncode
        assert not daemon.cli_json("alerts")["silences"]


MULTIWINDOW_CONFIG = """\
version: 1
evaluation: {interval: 0.5s}
metrics:
  latency: {unit: ms, bound: upper, warning: 150, critical: 400}
"""


class TestDefaultJudgement:
    def test_burst_fires_on_the_default_multiwindow_basis(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Ten samples at twice the level after quiet noise fire at once on the
        default basis; stats shows the autocorrelation and the interval's method."""
        daemon = make_daemon(MULTIWINDOW_CONFIG).start()
        quiet = [100.0 + 10.0 * ((i * 7919) % 13 - 6) / 6 for i in range(200)]
        send_values(daemon, "latency", quiet)
        daemon.wait_received(200)
        send_values(daemon, "latency", [300.0 + i for i in range(10)])
        fired = daemon.wait_log("alert.fired")
        assert ("multiwindow", "warning") == (fired["basis"], fired["severity"])
        assert fired["observed"][0] > 150
        record = daemon.cli_json("stats", "latency")["series"][0]
        assert record["ci_method"] in {"t", "log-t"}
        assert 0 < record["effective_sample_size"] <= record["sample_size"]
        assert -1.0 <= record["autocorrelation"] <= 1.0

    def test_non_negative_interval_stays_above_zero(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A skewed ms series whose t interval would dip below 0 shows the
        log-scale one, and stats says so."""
        daemon = make_daemon(MULTIWINDOW_CONFIG).start()
        send_values(daemon, "latency", [0.0] * 28 + [50.0, 400.0])
        daemon.wait_received(30)
        record = daemon.cli_json("stats", "latency")["series"][0]
        assert "log-t" == record["ci_method"]
        assert 0 < record["ci_low"] < record["mean"] < record["ci_high"]
        table = daemon.cli("stats", "latency")
        assert 0 == table.returncode, table.stderr
        assert " log " in table.stdout


class TestHoldInSamples:
    def test_a_stalled_sender_does_not_fire_one_value(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """for: 3 samples: one violating value followed by silence stays pending
        through many ticks; the third violating value fires it."""
        config = (
            "version: 1\nevaluation: {interval: 100ms, basis: sample}\n"
            "metrics:\n  latency: {bound: upper, warning: 150, for: 3 samples}\n"
        )
        daemon = make_daemon(config).start()
        send_values(daemon, "latency", [100.0, 200.0])
        daemon.wait_log("alert.pending")

        def evaluations() -> int:
            return int(daemon.cli_json("status")["evaluation"]["evaluations"])

        start = evaluations()
        wait_until(lambda: evaluations() >= start + 10, 30)
        assert [] == daemon.log_events("alert.fired")
        send_values(daemon, "latency", [210.0])
        send_values(daemon, "latency", [220.0])
        fired = daemon.wait_log("alert.fired")
        assert [220.0, 220.0] == fired["observed"]
