"""Fleet learning: the export format, merging hosts' exports, and imported counts
as Beta priors (posterior means checked against scipy)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from scipy import stats

from perfwarden.optimize.learning import (
    PRIORS,
    Learning,
    LearningFormatError,
    merge_exports,
)


def record(learning: Learning, strategy: str, metric: str, *verdicts: str) -> None:
    for verdict in verdicts:
        learning.record(
            strategy=strategy,
            plugin="p",
            metric=metric,
            tags={},
            verdict=verdict,
            improvement=0.1,
        )


def export(learning: Learning, host: str = "h1") -> dict[str, Any]:
    return learning.export_document(host, "2026-01-01T00:00:00+00:00")


class TestExport:
    def test_successes_and_trials_of_judged_outcomes(self) -> None:
        """Kept are successes, kept + reverted trials; inconclusive count neither."""
        learning = Learning()
        record(learning, "caching", "latency", "kept", "kept", "reverted")
        record(learning, "caching", "latency", "inconclusive")
        record(learning, "batching", "latency", "inconclusive")
        document = export(learning)
        assert "perfwarden-learning" == document["format"]
        assert 1 == document["version"]
        assert {"caching": {"successes": 2, "trials": 3}} == document["strategies"]
        assert [
            {"strategy": "caching", "metric": "latency", "successes": 2, "trials": 3}
        ] == document["by_metric"]
        assert json.loads(json.dumps(document)) == document

    def test_imported_priors_are_not_exported_again(self) -> None:
        """An export carries only this host's outcomes, so sums never double."""
        learning = Learning()
        fleet = Learning()
        record(fleet, "caching", "latency", "kept")
        learning.import_priors(export(fleet), weight=1.0)
        assert {} == export(learning)["strategies"]


class TestPriors:
    @pytest.mark.parametrize("weight", [0.0, 0.25, 1.0, 3.0])
    def test_posterior_is_the_beta_with_weighted_pseudo_counts(
        self, weight: float
    ) -> None:
        """weight = prior x mean of Beta(1 + w*s + kept, 1 + w*(t-s) + reverted)."""
        fleet = Learning()
        record(fleet, "caching", "latency", *["kept"] * 7, *["reverted"] * 3)
        record(fleet, "caching", "memory", "reverted", "reverted")
        local = Learning()
        record(local, "caching", "latency", "reverted")
        local.import_priors(export(fleet), weight)
        specific = stats.beta(1 + weight * 7 + 0, 1 + weight * 3 + 1).mean()
        # "caching" has no seed prior (1.0).
        assert local.weight("caching", "latency") == pytest.approx(specific / 0.5)
        overall = stats.beta(1 + weight * 7, 1 + weight * 5 + 1).mean()
        assert local.weight_overall("caching") == pytest.approx(overall / 0.5)
        # Judged elsewhere, not here: the fleet's per-metric record applies.
        memory = stats.beta(1, 1 + weight * 2).mean()
        assert local.weight("caching", "memory") == pytest.approx(memory / 0.5)

    def test_an_import_replaces_the_previous_one(self) -> None:
        """Importing the same export twice counts it once."""
        fleet = Learning()
        record(fleet, "caching", "latency", "kept", "kept")
        local = Learning()
        local.import_priors(export(fleet), 1.0)
        once = local.weight("caching", "latency")
        local.import_priors(export(fleet), 1.0)
        assert once == local.weight("caching", "latency")

    def test_priors_survive_a_restart(self) -> None:
        """The fleet prior is part of the persisted record."""
        fleet = Learning()
        record(fleet, "caching", "latency", "kept", "reverted", "kept")
        local = Learning()
        local.import_priors(export(fleet), 0.5)
        restored = Learning()
        restored.restore(json.loads(json.dumps(local.as_dict())))
        assert local.weight("caching", "latency") == restored.weight(
            "caching", "latency"
        )
        assert local.fleet_import == restored.fleet_import


class TestMerge:
    def test_hosts_are_summed(self) -> None:
        """Two hosts' exports add up per strategy and per metric."""
        a, b = Learning(), Learning()
        record(a, "caching", "latency", "kept", "reverted")
        record(b, "caching", "latency", "kept")
        record(b, "batching", "memory", "reverted")
        merged = merge_exports([export(a, "a"), export(b, "b")])
        assert ["a", "b"] == merged["hosts"]
        assert {
            "batching": {"successes": 0, "trials": 1},
            "caching": {"successes": 2, "trials": 3},
        } == merged["strategies"]
        local = Learning()
        assert {
            "weight": 1.0,
            "hosts": ["a", "b"],
            "strategies": 2,
            "metrics": 2,
            "trials": 4,
        } == local.import_priors(merged, 1.0)

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ([], "a learning export is a JSON object"),
            ({"format": "x", "version": 1}, '"format" must be "perfwarden-learning"'),
            ({"format": "perfwarden-learning", "version": 9}, '"version" 9'),
            (
                {
                    "format": "perfwarden-learning",
                    "version": 1,
                    "strategies": {"c": {"successes": 3, "trials": 2}},
                },
                "strategies.c: successes and trials must be integers",
            ),
            (
                {
                    "format": "perfwarden-learning",
                    "version": 1,
                    "by_metric": [{"strategy": "c", "successes": 0, "trials": 0}],
                },
                "by_metric[0]: needs a strategy and a metric name",
            ),
        ],
    )
    def test_bad_documents_say_where(self, document: Any, message: str) -> None:
        """Every malformed export is refused with the place of the problem."""
        with pytest.raises(LearningFormatError, match=message.replace("[", r"\[")):
            merge_exports([document])

    def test_seed_priors_still_scale_the_weight(self) -> None:
        """A seed prior (parallel_execution 1.2) multiplies the fleet posterior."""
        fleet = Learning()
        record(fleet, "parallel_execution", "latency", "kept", "kept")
        local = Learning()
        local.import_priors(export(fleet), 1.0)
        mean = stats.beta(3, 1).mean()
        assert local.weight_overall("parallel_execution") == pytest.approx(
            PRIORS["parallel_execution"] * mean / 0.5
        )

    def test_negative_weight_is_refused(self) -> None:
        """A weight below 0 would subtract outcomes."""
        with pytest.raises(LearningFormatError, match="weight"):
            Learning().import_priors(export(Learning()), -1.0)
