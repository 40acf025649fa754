"""Judging an action: samples before vs after, a one-sided test, three verdicts.

The test is the Mann-Whitney U test (normal approximation with tie correction and
continuity correction, as ``scipy.stats.mannwhitneyu(..., method="asymptotic")``),
one-sided in the direction the metric's bound calls better. It is chosen over
Welch's t because latency-like samples are skewed and heavy-tailed: a rank test is
not dragged by a few outliers and needs no normality, and it stays valid for the
a few hundred samples we compare. Implemented here with numpy so the daemon never
imports ``scipy.stats`` (about 70 MB of resident memory); the tests check it against
scipy on the same data.

Verdicts, as canary judges give them:

- ``kept``: significantly better, the bad-side tail (p99 for an upper bound, p1 for a
  lower bound) not worse by more than ``tail_tolerance``, and no guard metric
  significantly worse;
- ``reverted``: significantly worse, a worse tail, or a guard hurt (with the reason);
- ``inconclusive``: too few samples after the action, or no significant difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "MIN_SAMPLES",
    "GuardCheck",
    "Judgement",
    "Verdict",
    "judge",
    "mann_whitney_less",
]

#: Below this many samples on either side no verdict other than inconclusive.
MIN_SAMPLES: Final = 20
#: A bad-side tail that grows by more than this fraction is not an improvement.
TAIL_TOLERANCE: Final = 0.10


class Verdict(StrEnum):
    """The outcome of an action."""

    KEPT = "kept"
    REVERTED = "reverted"
    INCONCLUSIVE = "inconclusive"


def _ranks(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    """Average ranks (1-based) and the tie term sum(t^3 - t)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    boundaries = np.flatnonzero(np.diff(ordered)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(values)]))
    sizes = ends - starts
    average = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, sizes)
    ties = float(np.sum(sizes.astype(np.float64) ** 3 - sizes))
    return ranks, ties


def mann_whitney_less(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    """One-sided p-value that ``x`` tends to be smaller than ``y``.

    Equal to ``scipy.stats.mannwhitneyu(x, y, alternative="less",
    method="asymptotic", use_continuity=True).pvalue``.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return 1.0
    ranks, ties = _ranks(np.concatenate((x, y)))
    u1 = float(np.sum(ranks[:n1])) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    mean = n1 * n2 / 2.0
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    # alternative "less": small U1 is evidence; continuity correction towards the mean
    z = (u1 - mean + 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _better_p(
    before: npt.NDArray[np.float64], after: npt.NDArray[np.float64], bound: str
) -> float:
    """p-value for "after is better than before" given the bound."""
    if bound == "upper":
        return mann_whitney_less(after, before)
    return mann_whitney_less(before, after)


def _change(before: float, after: float) -> float | None:
    if before == 0:
        return None
    return (after - before) / abs(before) * 100.0


@dataclass(frozen=True, slots=True)
class GuardCheck:
    """A guard metric's samples around the action."""

    metric: str
    bound: str
    before: npt.NDArray[np.float64]
    after: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict with its evidence (all JSON-ready through :meth:`as_dict`)."""

    verdict: Verdict
    reason: str
    p_better: float | None
    p_worse: float | None
    effect_percent: float | None
    tail_change_percent: float | None
    before_n: int
    after_n: int
    before_median: float | None
    after_median: float | None
    guards: tuple[dict[str, Any], ...] = ()

    @property
    def improvement(self) -> float:
        """Relative improvement (a fraction, positive = better) of the median."""
        if self.effect_percent is None:
            return 0.0
        return self.effect_percent / 100.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for the log and the record)."""
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "p_better": self.p_better,
            "p_worse": self.p_worse,
            "effect_percent": self.effect_percent,
            "tail_change_percent": self.tail_change_percent,
            "before_n": self.before_n,
            "after_n": self.after_n,
            "before_median": self.before_median,
            "after_median": self.after_median,
            "guards": list(self.guards),
        }


def judge(
    before: npt.NDArray[np.float64],
    after: npt.NDArray[np.float64],
    *,
    bound: str,
    significance: float,
    guards: tuple[GuardCheck, ...] = (),
    min_samples: int = MIN_SAMPLES,
    tail_tolerance: float = TAIL_TOLERANCE,
) -> Judgement:
    """The verdict on an action from the samples before and after it."""
    n_before, n_after = len(before), len(after)
    if n_before < min_samples or n_after < min_samples:
        return Judgement(
            Verdict.INCONCLUSIVE,
            f"too few samples ({n_before} before, {n_after} after, "
            f"{min_samples} needed)",
            None,
            None,
            None,
            None,
            n_before,
            n_after,
            float(np.median(before)) if n_before else None,
            float(np.median(after)) if n_after else None,
        )
    med_before, med_after = float(np.median(before)), float(np.median(after))
    p_better = _better_p(before, after, bound)
    p_worse = _better_p(after, before, bound)
    change = _change(med_before, med_after)
    effect = None if change is None else (-change if bound == "upper" else change)
    tail_q = 99 if bound == "upper" else 1
    tail_before = float(np.percentile(before, tail_q))
    tail_after = float(np.percentile(after, tail_q))
    tail = _change(tail_before, tail_after)
    tail_worse = tail is not None and (
        tail > tail_tolerance * 100
        if bound == "upper"
        else tail < -tail_tolerance * 100
    )
    guard_records = []
    hurt = []
    for guard in guards:
        if len(guard.before) < min_samples or len(guard.after) < min_samples:
            guard_records.append({"metric": guard.metric, "checked": False})
            continue
        p = _better_p(guard.after, guard.before, guard.bound)  # "after is worse"
        guard_records.append({"metric": guard.metric, "checked": True, "p_worse": p})
        if p < significance:
            hurt.append(guard.metric)
    common = (
        p_better,
        p_worse,
        effect,
        tail,
        n_before,
        n_after,
        med_before,
        med_after,
        tuple(guard_records),
    )
    if hurt:
        reason = f"guard worsened significantly: {', '.join(hurt)}"
        return Judgement(Verdict.REVERTED, reason, *common)
    if p_worse < significance:
        return Judgement(
            Verdict.REVERTED, f"significantly worse (p={p_worse:.3g})", *common
        )
    if p_better < significance:
        if tail_worse:
            worse_by = abs(tail or 0.0)
            reason = f"median better but the p{tail_q} tail worse by {worse_by:.1f}%"
            return Judgement(Verdict.REVERTED, reason, *common)
        return Judgement(
            Verdict.KEPT, f"significantly better (p={p_better:.3g})", *common
        )
    reason = f"no significant difference (p={p_better:.3g} at {significance})"
    return Judgement(Verdict.INCONCLUSIVE, reason, *common)
