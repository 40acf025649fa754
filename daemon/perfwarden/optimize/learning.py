"""What perfwarden has learned about strategies: outcomes, success rates, weights.

Per strategy and per (strategy, metric) it counts attempts, kept, reverted and
inconclusive outcomes, sums the measured improvements and remembers where a
strategy worked (metrics and tag values, the seed's ``best_use_cases``).

The weight that scales a proposal's expected improvement is the strategy's prior
(the seed's ``learning_weights``: compression 1.0, parallel execution 1.2, memory
management 0.8, caching 1.1; 1.0 for others) times a Beta posterior's mean relative
to an uninformed 0.5: ``weight = prior * (1 + kept) / (2 + kept + reverted) / 0.5``.
Only significant outcomes move it (kept or reverted); inconclusive ones do not.
The per-metric posterior is used once the strategy has been judged on that metric
(here or, through the fleet prior, elsewhere), the strategy-wide one before that.

**Fleet priors.** What other hosts learned comes in as a Beta prior: an export
(:func:`export_document`, the JSON format of docs/fleet.md) holds per strategy and
per (strategy, metric) ``successes`` (kept) and ``trials`` (kept + reverted);
imported with weight ``w`` they add ``w * successes`` and ``w * (trials -
successes)`` pseudo-outcomes to the uniform Beta(1, 1), so the posterior mean is
``(1 + w*s + kept) / (2 + w*t + kept + reverted)``. An import replaces the
previous fleet prior (importing one file twice does not count it twice), and an
export carries only this host's own outcomes, so exports of many hosts can be
summed without counting anything twice.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "EXPORT_FORMAT",
    "PRIORS",
    "FleetPrior",
    "Learning",
    "LearningFormatError",
    "Outcomes",
    "ParsedExport",
    "merge_exports",
    "parse_export",
]

#: The ``format`` field of a learning export.
EXPORT_FORMAT: Final = "perfwarden-learning"
_EXPORT_VERSION: Final = 1

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

    def posterior_with(self, prior: FleetPrior | None) -> float:
        """Mean of Beta(1 + kept, 1 + reverted) with a fleet prior's pseudo-counts."""
        if prior is None:
            return self.posterior_mean
        return (1 + prior.successes + self.kept) / (
            2 + prior.trials + self.kept + self.reverted
        )

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


@dataclass(frozen=True, slots=True)
class FleetPrior:
    """Pseudo-outcomes from other hosts (already multiplied by the import weight)."""

    successes: float
    trials: float


class LearningFormatError(ValueError):
    """A learning export that is not one (says where and why)."""


class Learning:
    """The learned record of every strategy."""

    def __init__(self) -> None:
        self.strategies: dict[str, Outcomes] = {}
        self.by_metric: dict[tuple[str, str], Outcomes] = {}
        #: Which plugin proposed each strategy most recently (for reports).
        self.plugins: dict[str, str] = {}
        #: The imported fleet priors, and what was imported (for ``status``).
        self.fleet: dict[str, FleetPrior] = {}
        self.fleet_by_metric: dict[tuple[str, str], FleetPrior] = {}
        self.fleet_import: dict[str, Any] | None = None

    def weight(self, strategy: str, metric: str) -> float:
        """The factor a proposal's expected improvement is multiplied by."""
        prior = PRIORS.get(strategy, 1.0)
        specific = self.by_metric.get((strategy, metric))
        fleet_specific = self.fleet_by_metric.get((strategy, metric))
        if (specific is not None and specific.judged) or fleet_specific is not None:
            outcomes = specific or Outcomes()
            return prior * outcomes.posterior_with(fleet_specific) / 0.5
        outcomes = self.strategies.get(strategy, Outcomes())
        return prior * outcomes.posterior_with(self.fleet.get(strategy)) / 0.5

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
            self.weight_overall(s)
            for s in self.strategies
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
        posterior = outcomes.posterior_with(self.fleet.get(strategy))
        return PRIORS.get(strategy, 1.0) * posterior / 0.5

    # -- fleet learning ---------------------------------------------------------

    def export_document(self, host: str, exported_at: str) -> dict[str, Any]:
        """This host's own judged outcomes in the export format (docs/fleet.md)."""
        return {
            "format": EXPORT_FORMAT,
            "version": _EXPORT_VERSION,
            "host": host,
            "exported_at": exported_at,
            "strategies": {
                strategy: {"successes": o.kept, "trials": o.judged}
                for strategy, o in sorted(self.strategies.items())
                if o.judged
            },
            "by_metric": [
                {
                    "strategy": strategy,
                    "metric": metric,
                    "successes": o.kept,
                    "trials": o.judged,
                }
                for (strategy, metric), o in sorted(self.by_metric.items())
                if o.judged
            ],
        }

    def import_priors(
        self, document: Mapping[str, Any], weight: float
    ) -> dict[str, Any]:
        """Replace the fleet prior with ``document`` (an export, or several merged
        by :func:`merge_exports`) at ``weight``; what was imported."""
        parsed = parse_export(document)
        if not math.isfinite(weight) or weight < 0:
            msg = f"weight must be a finite number >= 0, got {weight!r}"
            raise LearningFormatError(msg)
        self.fleet = {
            s: FleetPrior(weight * ok, weight * n)
            for s, (ok, n) in parsed.strategies.items()
        }
        self.fleet_by_metric = {
            key: FleetPrior(weight * ok, weight * n)
            for key, (ok, n) in parsed.by_metric.items()
        }
        self.fleet_import = {
            "weight": weight,
            "hosts": parsed.hosts,
            "strategies": len(self.fleet),
            "metrics": len(self.fleet_by_metric),
            "trials": sum(n for _, n in parsed.strategies.values()),
        }
        return self.fleet_import

    def as_dict(self) -> dict[str, Any]:
        """Persistable form."""
        return {
            "strategies": {s: o.as_dict() for s, o in self.strategies.items()},
            "by_metric": [
                {"strategy": s, "metric": m, **o.as_dict()}
                for (s, m), o in self.by_metric.items()
            ],
            "plugins": dict(self.plugins),
            "fleet": {
                "strategies": {
                    s: [p.successes, p.trials] for s, p in self.fleet.items()
                },
                "by_metric": [
                    [s, m, p.successes, p.trials]
                    for (s, m), p in self.fleet_by_metric.items()
                ],
                "import": self.fleet_import,
            },
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
        fleet = data.get("fleet") or {}
        self.fleet = {
            str(s): FleetPrior(float(ok), float(n))
            for s, (ok, n) in fleet.get("strategies", {}).items()
        }
        self.fleet_by_metric = {
            (str(s), str(m)): FleetPrior(float(ok), float(n))
            for s, m, ok, n in fleet.get("by_metric", [])
        }
        self.fleet_import = fleet.get("import")


@dataclass(slots=True)
class ParsedExport:
    hosts: list[str] = field(default_factory=list)
    strategies: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_metric: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


def parse_export(document: Mapping[str, Any]) -> ParsedExport:
    """Check a learning export; raises :class:`LearningFormatError` saying where."""
    if not isinstance(document, dict):
        msg = "a learning export is a JSON object"
        raise LearningFormatError(msg)
    if document.get("format") != EXPORT_FORMAT:
        msg = f'"format" must be "{EXPORT_FORMAT}", got {document.get("format")!r}'
        raise LearningFormatError(msg)
    if document.get("version") != _EXPORT_VERSION:
        msg = (
            f'"version" {document.get("version")!r} is not one this perfwarden '
            f"reads ({_EXPORT_VERSION})"
        )
        raise LearningFormatError(msg)
    parsed = ParsedExport()
    hosts = document.get("hosts", [document.get("host")])
    parsed.hosts = sorted({str(h) for h in hosts if h is not None})
    strategies = document.get("strategies", {})
    if not isinstance(strategies, dict):
        msg = '"strategies" must map strategy names to {successes, trials}'
        raise LearningFormatError(msg)
    for name, counts in strategies.items():
        parsed.strategies[str(name)] = _counts(counts, f"strategies.{name}")
    entries = document.get("by_metric", [])
    if not isinstance(entries, list):
        msg = '"by_metric" must be a list'
        raise LearningFormatError(msg)
    for index, entry in enumerate(entries):
        where = f"by_metric[{index}]"
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) and entry[k] for k in ("strategy", "metric")
        ):
            msg = f"{where}: needs a strategy and a metric name"
            raise LearningFormatError(msg)
        key = (entry["strategy"], entry["metric"])
        if key in parsed.by_metric:
            msg = f"{where}: {key[0]} on {key[1]} is listed twice"
            raise LearningFormatError(msg)
        parsed.by_metric[key] = _counts(entry, where)
    return parsed


def _counts(value: object, where: str) -> tuple[int, int]:
    if not isinstance(value, dict):
        msg = f"{where}: must be an object with successes and trials"
        raise LearningFormatError(msg)
    successes, trials = value.get("successes"), value.get("trials")
    if (
        not isinstance(successes, int)
        or not isinstance(trials, int)
        or isinstance(successes, bool)
        or isinstance(trials, bool)
        or not 0 <= successes <= trials
    ):
        msg = (
            f"{where}: successes and trials must be integers with "
            f"0 <= successes <= trials, got {successes!r} and {trials!r}"
        )
        raise LearningFormatError(msg)
    return successes, trials


def merge_exports(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several hosts' exports summed into one (each checked first)."""
    merged = ParsedExport()
    hosts: set[str] = set()
    for document in documents:
        parsed = parse_export(document)
        hosts.update(parsed.hosts)
        for name, (ok, n) in parsed.strategies.items():
            old_ok, old_n = merged.strategies.get(name, (0, 0))
            merged.strategies[name] = (old_ok + ok, old_n + n)
        for key, (ok, n) in parsed.by_metric.items():
            old_ok, old_n = merged.by_metric.get(key, (0, 0))
            merged.by_metric[key] = (old_ok + ok, old_n + n)
    return {
        "format": EXPORT_FORMAT,
        "version": _EXPORT_VERSION,
        "hosts": sorted(hosts),
        "strategies": {
            name: {"successes": ok, "trials": n}
            for name, (ok, n) in sorted(merged.strategies.items())
        },
        "by_metric": [
            {"strategy": s, "metric": m, "successes": ok, "trials": n}
            for (s, m), (ok, n) in sorted(merged.by_metric.items())
        ],
    }


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.0f}%"
