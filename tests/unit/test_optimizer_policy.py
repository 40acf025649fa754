"""The closed loop's choice rules on a fake clock: in-flight limits, cooldown, the
hourly budget, strategies tried during an alert, and the ranking of proposals."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from perfwarden.config.load import Config, parse_config
from perfwarden.optimize.plugin_loader import PluginSource
from perfwarden.optimize.plugin_runtime import PluginHandle, PluginState
from perfwarden.optimize.policy import ActionPolicy, rank
from perfwarden.plugin_api import KnobChange, Proposal

HOUR = 3600.0


def config(**optimizer: object) -> Config:
    options = ", ".join(f"{key}: {value}" for key, value in optimizer.items())
    return parse_config(f"version: 1\noptimizer: {{{options}}}\n")


def handle(name: str) -> PluginHandle:
    entry = EntryPoint(name, f"somewhere:{name}", "perfwarden.optimizers")
    return PluginHandle(
        PluginSource(name, entry.value, "dist", "1", entry), PluginState.ACTIVE
    )


def proposal(strategy: str, improvement: float, *knobs: str) -> Proposal:
    changes = tuple(KnobChange(knob, 1) for knob in knobs or (f"{strategy}.knob",))
    return Proposal(strategy, improvement, "because", changes)


class TestBlocked:
    def test_one_action_per_metric_and_concurrent_actions_in_all(self) -> None:
        policy = ActionPolicy()
        two = config(concurrent_actions=2)
        assert policy.blocked("latency", 0.0, two, {"latency"}) == (
            "an action is already being validated for this metric",
            None,
        )
        assert policy.blocked("latency", 0.0, two, {"a"}) is None
        assert policy.blocked("latency", 0.0, two, {"a", "b"}) == (
            "another action is being validated",
            None,
        )

    def test_cooldown_runs_from_the_start_then_from_the_verdict(self) -> None:
        policy = ActionPolicy()
        cfg = config(cooldown="60s")
        policy.started("latency", 100.0)
        assert policy.blocked("latency", 130.0, cfg, set()) == ("cooldown (60s)", 30.0)
        assert policy.blocked("other", 130.0, cfg, set()) is None  # per metric
        policy.concluded("latency", 150.0)
        reason, retry = policy.blocked("latency", 190.0, cfg, set()) or ("", None)
        assert ("cooldown (60s)", 20.0) == (reason, retry)
        assert policy.blocked("latency", 211.0, cfg, set()) is None

    def test_the_hourly_budget_slides(self) -> None:
        policy = ActionPolicy()
        cfg = config(cooldown="0s", max_actions_per_hour=2)
        policy.started("a", 0.0)
        policy.started("b", 600.0)
        assert policy.blocked("c", 1200.0, cfg, set()) == (
            "budget of 2 actions an hour used",
            pytest.approx(HOUR - 1200.0),
        )
        assert 2 == policy.actions_last_hour
        assert policy.blocked("c", HOUR + 1.0, cfg, set()) is None  # the first aged out
        assert 1 == policy.actions_last_hour

    def test_tried_strategies_are_per_metric_until_forgotten(self) -> None:
        policy = ActionPolicy()
        policy.mark_tried("latency", "caching")
        policy.mark_tried("latency", "batching")
        assert {"caching", "batching"} == policy.tried("latency")
        assert set() == policy.tried("quality")
        policy.forget_tried("latency")
        assert set() == policy.tried("latency")


class TestRank:
    def test_scores_are_improvement_times_weight_best_first(self) -> None:
        a, b = handle("a"), handle("b")
        pairs = [
            (a, proposal("caching", 0.2)),
            (b, proposal("batching", 0.3)),
            (a, proposal("compression", 0.25)),
        ]
        weights = {"caching": 2.0, "batching": 1.0, "compression": 1.0}
        ranked = rank(pairs, tried=set(), busy=set(), weight=weights.__getitem__)
        assert [("caching", 0.4), ("batching", 0.3), ("compression", 0.25)] == [
            (p.strategy, pytest.approx(score)) for score, _, p in ranked
        ]
        assert ranked[0][1] is a

    def test_tried_strategies_and_busy_knobs_are_not_eligible(self) -> None:
        a = handle("a")
        pairs = [
            (a, proposal("caching", 0.5, "cache.size")),
            (a, proposal("batching", 0.4, "batch.size", "cache.size")),
            (a, proposal("compression", 0.3, "compression.ratio")),
            (a, proposal("parallelism", 0.2, "workers")),
        ]
        ranked = rank(
            pairs,
            tried={"compression"},
            busy={"cache.size"},
            weight=lambda _: 1.0,
        )
        assert ["parallelism"] == [p.strategy for _, _, p in ranked]

    def test_ties_keep_the_plugins_order(self) -> None:
        a, b = handle("a"), handle("b")
        pairs = [(a, proposal("x", 0.2)), (b, proposal("y", 0.2))]
        ranked = rank(pairs, tried=set(), busy=set(), weight=lambda _: 1.0)
        assert ["x", "y"] == [p.strategy for _, _, p in ranked]
