"""What perfwarden has learned about strategies: outcomes, success rates, weights.

Per strategy and per (strategy, metric) it counts attempts, kept, reverted and
inconclusive outcomes, sums the measured improvements and remembers where a
strategy worked (metrics and tag values, the seed's ``best_use_cases``).

The weight that scales a proposal's expected improvement is the strategy's prior
(the seed's ``learning_weights``: compression 1.0, parallel execution 1.2, memory
management 0.8, caching 1.1; 1.0 for others) times a Beta posterior's mean relative
to an uninformed 0.5: ``weight = prior * (1 + kept) / (2 + kept + reverted) / 0.5``.
Only significant outcomes move it (kept or reverted); inconclusive ones do not.
The per-metric posterior is used once the strategy has been judged on that metric,
the strategy-wide one before that.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PRIORS", "Learning", "Outcomes"]

#: The seed's ``learning_weights``, keyed by the built-ins' strategy names.
PRIORS: Final = {
    "context_compression": 1.0,
    "parallel_execution": 1.2,
    "memory_management": 0.8,
    "cache_optimization": 1.1,
}


@dataclass(slots=True)
class Outcomes:
    """Counts and measured improvement of one strategy (or strategy on a metric)."""

    attempts: int = 0
    kept: int = 0
    reverted: int = 0
    inconclusive: int = 0
    improvement_sum: float = 0.0
    use_cases: Counter[str] = field(default_factory=Counter)

    @property
    def judged(self) -> int:
        """Outcomes that moved the posterior."""
        return self.kept + self.reverted

    @property
    def posterior_mean(self) -> float:
        """Mean of Beta(1 + kept, 1 + reverted)."""
        return (1 + self.kept) / (2 + self.kept + self.reverted)

    @property
    def success_rate(self) -> float | None:
        """Kept / attempts (``None`` before any attempt)."""
        return self.kept / self.attempts if self.attempts else None

    @property
    def average_improvement(self) -> float | None:
        """Mean measured improvement of the kept actions (a fraction)."""
        return self.improvement_sum / self.kept if self.kept else None

    def as_dict(self) -> dict[str, Any]:
        """Persistable form."""
        return {
            "attempts": self.attempts,
            "kept": self.kept,
            "reverted": self.reverted,
            "inconclusive": self.inconclusive,
            "improvement_sum": self.improvement_sum,
            "use_cases": dict(self.use_cases),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcomes:
        """Inverse of :meth:`as_dict` (unknown keys ignored)."""
        return cls(
            attempts=int(data.get("attempts", 0)),
            kept=int(data.get("kept", 0)),
            reverted=int(data.get("reverted", 0)),
            inconclusive=int(data.get("inconclusive", 0)),
            improvement_sum=float(data.get("improvement_sum", 0.0)),
            use_cases=Counter(
                {str(k): int(v) for k, v in data.get("use_cases", {}).items()}
            ),
        )


class Learning:
    """The learned record of every strategy."""

    def __init__(self) -> None:
        self.strategies: dict[str, Outcomes] = {}
        self.by_metric: dict[tuple[str, str], Outcomes] = {}
        #: Which plugin proposed each strategy most recently (for reports).
        self.plugins: dict[str, str] = {}

    def weight(self, strategy: str, metric: str) -> float:
        """The factor a proposal's expected improvement is multiplied by."""
        prior = PRIORS.get(strategy, 1.0)
        specific = self.by_metric.get((strategy, metric))
        outcomes = specific if specific is not None and specific.judged else None
        if outcomes is None:
            outcomes = self.strategies.get(strategy, Outcomes())
        return prior * outcomes.posterior_mean / 0.5

    def record(
        self,
        *,
        strategy: str,
        plugin: str,
        metric: str,
        tags: Mapping[str, str],
        verdict: str,
        improvement: float,
    ) -> None:
        """Count one outcome (``kept``, ``reverted`` or ``inconclusive``)."""
        self.plugins[strategy] = plugin
        for outcomes in (
            self.strategies.setdefault(strategy, Outcomes()),
            self.by_metric.setdefault((strategy, metric), Outcomes()),
        ):
            outcomes.attempts += 1
            if verdict == "kept":
                outcomes.kept += 1
                outcomes.improvement_sum += improvement
                outcomes.use_cases[metric] += 1
                for key, value in tags.items():
                    outcomes.use_cases[f"{key}:{value}" if value else key] += 1
            elif verdict == "reverted":
                outcomes.reverted += 1
            else:
                outcomes.inconclusive += 1

    def plugin_weight(self, plugin: str) -> float | None:
        """The mean weight of the strategies a plugin proposed (for ``plugins``)."""
        weights = [
            PRIORS.get(s, 1.0) * o.posterior_mean / 0.5
            for s, o in self.strategies.items()
            if self.plugins.get(s) == plugin
        ]
        return sum(weights) / len(weights) if weights else None

    def learning_patterns(self) -> dict[str, Any]:
        """The seed's ``learning_patterns`` document from the record.

        A strategy that was ever kept is under ``successful_optimizations``; one
        that was ever reverted (or never kept) is under ``failure_patterns`` with
        its failure rate and the metrics it was reverted on; a strategy with both
        outcomes is in both.
        """
        successful: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        for strategy, outcomes in sorted(self.strategies.items()):
            entry = {
                "plugin": self.plugins.get(strategy),
                "attempts": outcomes.attempts,
                "kept": outcomes.kept,
                "reverted": outcomes.reverted,
                "inconclusive": outcomes.inconclusive,
                "success_rate": _percent(outcomes.success_rate),
                "average_improvement": _percent(outcomes.average_improvement),
                "weight": round(self.weight_overall(strategy), 3),
                "best_use_cases": [k for k, _ in outcomes.use_cases.most_common(3)],
            }
            if outcomes.kept:
                successful[strategy] = entry
            if outcomes.reverted or not outcomes.kept:
                failures[strategy] = {
                    **entry,
                    "failure_rate": _percent(
                        outcomes.reverted / outcomes.attempts
                        if outcomes.attempts
                        else None
                    ),
                    "reverted_on": self._reverted_on(strategy),
                }
        return {"successful_optimizations": successful, "failure_patterns": failures}

    def _reverted_on(self, strategy: str) -> list[str]:
        """The metrics a strategy was reverted on, most reverts first (up to 3)."""
        counts = Counter(
            {
                metric: outcomes.reverted
                for (name, metric), outcomes in self.by_metric.items()
                if name == strategy and outcomes.reverted
            }
        )
        return [metric for metric, _ in counts.most_common(3)]

    def weight_overall(self, strategy: str) -> float:
        """The strategy-wide weight (not specific to one metric)."""
        outcomes = self.strategies.get(strategy, Outcomes())
        return PRIORS.get(strategy, 1.0) * outcomes.posterior_mean / 0.5

    def as_dict(self) -> dict[str, Any]:
        """Persistable form."""
        return {
            "strategies": {s: o.as_dict() for s, o in self.strategies.items()},
            "by_metric": [
                {"strategy": s, "metric": m, **o.as_dict()}
                for (s, m), o in self.by_metric.items()
            ],
            "plugins": dict(self.plugins),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a record saved by :meth:`as_dict`."""
        self.strategies = {
            str(s): Outcomes.from_dict(o) for s, o in data.get("strategies", {}).items()
        }
        self.by_metric = {
            (str(e["strategy"]), str(e["metric"])): Outcomes.from_dict(e)
            for e in data.get("by_metric", [])
        }
        self.plugins = {str(k): str(v) for k, v in data.get("plugins", {}).items()}


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.0f}%"
