"""Learning: priors, the Beta posterior, what moves it, persistence."""

from __future__ import annotations

import pytest

from perfwarden.optimize.learning import PRIORS, Learning


def record(learning: Learning, strategy: str, verdict: str, metric: str = "m") -> None:
    learning.record(
        strategy=strategy,
        plugin="p",
        metric=metric,
        tags={"route": "a"},
        verdict=verdict,
        improvement=0.2,
    )


class TestLearning:
    def test_priors_are_the_seeds(self) -> None:
        """Untried strategies weigh their seed prior."""
        learning = Learning()
        assert 1.2 == pytest.approx(learning.weight("parallel_execution", "m"))
        assert 1.0 == pytest.approx(learning.weight("unknown", "m"))
        assert {"context_compression", "cache_optimization"} <= set(PRIORS)

    def test_outcomes_move_the_weight(self) -> None:
        """Kept raises, reverted lowers, inconclusive leaves it."""
        learning = Learning()
        record(learning, "s", "kept")
        assert 4 / 3 == pytest.approx(learning.weight("s", "m"))
        record(learning, "s", "inconclusive")
        assert 4 / 3 == pytest.approx(learning.weight("s", "m"))
        record(learning, "s", "reverted")
        record(learning, "s", "reverted")
        assert 0.8 == pytest.approx(learning.weight("s", "m"))

    def test_metric_specific_after_judged(self) -> None:
        """On a new metric the strategy-wide posterior is used."""
        learning = Learning()
        record(learning, "s", "kept", metric="a")
        record(learning, "s", "reverted", metric="b")
        assert 4 / 3 == pytest.approx(learning.weight("s", "a"))
        assert 2 / 3 == pytest.approx(learning.weight("s", "b"))
        assert 1.0 == pytest.approx(learning.weight("s", "c"))

    def test_patterns_and_round_trip(self) -> None:
        """learning_patterns reads like the seed's and the record survives a dump."""
        learning = Learning()
        record(learning, "good", "kept")
        record(learning, "bad", "reverted")
        patterns = learning.learning_patterns()
        good = patterns["successful_optimizations"]["good"]
        assert ("100%", "20%") == (good["success_rate"], good["average_improvement"])
        assert "m" in good["best_use_cases"]
        assert "bad" in patterns["failure_patterns"]
        restored = Learning()
        restored.restore(learning.as_dict())
        assert learning.as_dict() == restored.as_dict()

    def test_reverts_listed_beside_successes(self) -> None:
        """A strategy kept once and reverted twice shows under failure_patterns too."""
        learning = Learning()
        record(learning, "mixed", "kept", metric="a")
        record(learning, "mixed", "reverted", metric="b")
        record(learning, "mixed", "reverted", metric="b")
        patterns = learning.learning_patterns()
        assert "mixed" in patterns["successful_optimizations"]
        failure = patterns["failure_patterns"]["mixed"]
        assert ("67%", ["b"]) == (failure["failure_rate"], failure["reverted_on"])
