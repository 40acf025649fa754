"""The closed loop through a real daemon and a real (pip-installed) plugin.

The test plays the application: a thread reads the ``batch.size`` knob through
``perfwarden.client`` and sends latency samples whose distribution depends on it,
so every verdict is measured, not simulated.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from perfwarden.client import Client
from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.usefixtures("acme_installed")

CONFIG = """\
version: 1
statistics: {{min_samples: 10}}
evaluation: {{interval: 0.5s, basis: mean, window: 20, hysteresis: 0.05}}
optimizer:
  validation_samples: 60
  significance: 0.01
  cooldown: 0.2s
  validation_timeout: {timeout}
  mode: {mode}
  max_actions_per_hour: {budget}
knobs:
  batch.size: {{min: 1, max: 256, initial: 64}}
metrics:
  latency:
    bound: upper
    target: 100
    warning: 150
    critical: 200
    optimizers: [{optimizers}]
  quality:
    bound: lower
    target: 0.95
    warning: 0.90
    critical: 0.85
    guard: true
plugins:
  acme: {{}}
  acme_doubling: {{}}
"""


class Application:
    """Sends latency (and quality) samples that depend on the batch.size knob."""

    def __init__(
        self,
        daemon: DaemonProcess,
        latency: Callable[[float], float],
        quality: Callable[[float], float] | None = None,
    ) -> None:
        self.client = Client(daemon.socket_dir, state_dir=daemon.state_dir)
        self.latency = latency
        self.quality = quality
        self.rng = random.Random(3)
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.002):
            if self.paused.is_set():
                continue
            size = float(self.client.knobs.get("batch.size", 64) or 64)
            self.client.timing(
                "latency", self.latency(size) * self.rng.uniform(0.9, 1.1)
            )
            if self.quality is not None:
                self.client.gauge(
                    "quality", self.quality(size) + self.rng.uniform(0, 0.01)
                )

    def __enter__(self) -> Application:
        assert self.client.knobs.wait_connected(30)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.knobs.close()


def config(
    optimizers: str = "acme",
    mode: str = "active",
    budget: int = 100,
    timeout: str = "30s",
) -> str:
    return CONFIG.format(
        optimizers=optimizers, mode=mode, budget=budget, timeout=timeout
    )


def batch_size(daemon: DaemonProcess) -> float:
    return float(daemon.request("knobs")["knobs"]["batch.size"]["value"])


@pytest.fixture(name="daemon_factory")
def _daemon_factory(
    make_daemon: Callable[..., DaemonProcess],
) -> Callable[..., DaemonProcess]:
    return lambda **kwargs: make_daemon(config(**kwargs)).start()


class TestVerdicts:
    def test_improvement_kept(
        self, daemon_factory: Callable[..., DaemonProcess]
    ) -> None:
        """Halving a batch that drives latency is measured better and kept."""
        daemon = daemon_factory()
        with Application(daemon, latency=lambda size: size * 5):
            kept = daemon.wait_log("optimizer.kept", timeout=60)
        assert "acme_halving" == kept["strategy"]
        assert kept["p_better"] < 0.01
        assert kept["effect_percent"] > 30
        applied = daemon.log_events("optimizer.applied")[0]
        assert {"batch.size": {"from": 64, "to": 32}} == applied["changes"]
        cid = kept["correlation_id"]
        chain = [
            e["event"] for e in daemon.log_events() if e.get("correlation_id") == cid
        ]
        for event in ("optimizer.proposed", "optimizer.applied", "optimizer.kept"):
            assert event in chain
        assert "learning.updated" in chain
        # The documented jq filter also finds the alert and the knob change.
        assert "alert.fired" in chain
        changed = [
            e
            for e in daemon.log_events("knob.changed")
            if e.get("correlation_id") == cid
        ]
        assert [(64, 32)] == [(e["old"], e["new"]) for e in changed]
        assert cid not in changed[0]["reason"]
        assert batch_size(daemon) <= 32

    def test_worse_reverted_and_knob_restored(
        self, daemon_factory: Callable[..., DaemonProcess]
    ) -> None:
        """When halving makes it worse, the knob goes back to its original."""
        daemon = daemon_factory()
        with Application(daemon, latency=lambda size: 16000 / size):
            reverted = daemon.wait_log("optimizer.reverted", timeout=60)
        assert "worse" in reverted["reason"]
        assert 64 == batch_size(daemon)
        cid = reverted["correlation_id"]
        undone = [
            e
            for e in daemon.log_events("knob.changed")
            if e.get("correlation_id") == cid
        ]
        assert ["revert"] == [e["changed_by"] for e in undone][1:]
        knob = daemon.request("knobs")["knobs"]["batch.size"]
        assert "revert" == knob["changed_by"]

    def test_guard_hurt_reverted(
        self, daemon_factory: Callable[..., DaemonProcess]
    ) -> None:
        """Latency better but the guard (quality) significantly worse: reverted."""
        daemon = daemon_factory()
        with Application(
            daemon,
            latency=lambda size: size * 5,
            quality=lambda size: 0.97 if size >= 64 else 0.92,
        ):
            reverted = daemon.wait_log("optimizer.reverted", timeout=60)
        assert "guard" in reverted["reason"]
        # The guard is named as users name it, without the internal "|g".
        assert "quality" in reverted["reason"]
        assert "|" not in reverted["reason"]
        assert ["quality"] == [g["metric"] for g in reverted["guards"]]
        assert 64 == batch_size(daemon)

    def test_inconclusive_on_too_few_samples(
        self, daemon_factory: Callable[..., DaemonProcess]
    ) -> None:
        """Samples stop right after the action: the timeout gives inconclusive."""
        daemon = daemon_factory(timeout="1s")
        app = Application(daemon, latency=lambda size: size * 5)
        # The application goes quiet the moment the knob moves (at most a sample
        # or two in flight), so the validation window times out nearly empty.
        app.client.knobs.on_change(lambda *_: app.paused.set())
        with app:
            daemon.wait_log("optimizer.applied", timeout=60)
            verdict = daemon.wait_log("optimizer.inconclusive", timeout=60)
        assert "too few" in verdict["reason"]
        assert 64 == batch_size(daemon)


class TestPolicy:
    def test_dry_run_applies_nothing(
        self, daemon_factory: Callable[..., DaemonProcess]
    ) -> None:
        """In dry-run the choice is logged and no knob moves."""
        daemon = daemon_factory(mode="dry-run")
        with Application(daemon, latency=lambda size: size * 5):
            chosen = daemon.wait_log("optimizer.dry_run", timeout=60)
        assert "acme_halving" == chosen["strategy"]
        assert not daemon.log_events("optimizer.applied")
        assert 64 == batch_size(daemon)

    def test_budget_and_cooldown(
        self, daemon_factory: Callable[..., DaemonProcess]
    ) -> None:
        """With a budget of one action an hour the second chance is skipped."""
        daemon = daemon_factory(budget=1)
        with Application(daemon, latency=lambda size: size * 5):
            daemon.wait_log("optimizer.kept", timeout=60)
            skipped = wait_until(
                lambda: [
                    e
                    for e in daemon.log_events("optimizer.skipped")
                    if "budget" in e["reason"]
                ],
                timeout=60,
            )
        assert skipped
        assert 1 == len(daemon.log_events("optimizer.applied"))


class TestLearning:
    def test_effective_strategy_chosen_most(
        self, daemon_factory: Callable[..., DaemonProcess]
    ) -> None:
        """Over repeated violations the strategy that works is chosen >= 80%."""
        daemon = daemon_factory(optimizers="acme, acme_doubling")
        rounds = 8
        with Application(daemon, latency=lambda size: size * 5):
            for round_number in range(rounds):
                wait_until(
                    lambda n=round_number: len(daemon.log_events("optimizer.kept")) > n,
                    timeout=90,
                )
                wait_until(lambda: daemon.request("alerts")["alerts"] == [], timeout=60)
                wait_until(
                    lambda: not daemon.request("status")["optimizer"]["in_flight"],
                    timeout=60,
                )
                daemon.request("knobs.set", name="batch.size", value=64)
        chosen = Counter(e["strategy"] for e in daemon.log_events("optimizer.applied"))
        share = chosen["acme_halving"] / sum(chosen.values())
        print(f"strategies applied: {dict(chosen)}")
        assert share >= 0.8
        plugins = {p["name"]: p for p in daemon.request("plugins")["plugins"]}
        assert plugins["acme"]["weight"] > plugins["acme_doubling"]["weight"]
        report = daemon.request("report")
        patterns = report["learning_patterns"]
        assert "acme_halving" in patterns["successful_optimizations"]
        effectiveness = report["validation_results"]["optimization_effectiveness"]
        assert effectiveness["kept"] >= rounds
