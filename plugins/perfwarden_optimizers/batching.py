"""Built-in ``batching``: bigger batches for throughput, smaller ones for latency
tails (strategy ``batch_processing``, the seed's ``enhance_batch_processing``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._knob import KnobOptimizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.plugin_api import Violation

__all__ = ["BatchingOptimizer"]


class BatchingOptimizer(KnobOptimizer):
    """Turn ``batch.size`` by a ``factor`` (default 2, at least ``step``, default 1).

    The rule, by the metric's bound:

    * ``bound: lower`` (higher is better: speedups, throughput) — raise the batch
      size to ``old * factor``: larger batches amortise per-batch overhead.
    * ``bound: upper`` (latency) — only if the tail is far from the centre, i.e.
      ``p99 >= tail_ratio * mean`` (``tail_ratio`` option, default 3): lower the
      batch size to ``old / factor``, since items waiting for a batch to fill or
      behind a large batch make the tail. A latency with a tight distribution gets
      no proposal (a smaller batch would only add overhead). Nothing is proposed
      when p99 or the mean is unknown.

    Estimates, capped at ``max_estimate`` (0.5):

    * raising: ``overhead_share * (1 - old / new)``. If each batch pays a fixed
      overhead that is ``overhead_share`` (option, prior 0.3) of the per-item cost,
      that overhead per item shrinks by ``1 - old/new`` (doubling: 50%).
    * lowering: ``tail_elasticity * (1 - mean / p99) * (1 - new / old)``:
      ``1 - mean/p99`` is the share of the p99 that lies above the mean,
      ``1 - new/old`` the cut in batch size, ``tail_elasticity`` (option, prior 0.5)
      the part of the tail that batching causes. This is an estimate for the tail;
      the learned weight of ``batch_processing`` corrects it for the judged mean.
    """

    name = "batching"
    strategy = "batch_processing"
    default_knob = "batch.size"
    default_metrics = frozenset(
        {"command_execution_time", "parallel_execution_speedup"}
    )
    default_step = 1.0
    extra_options = frozenset(
        {"factor", "tail_ratio", "overhead_share", "tail_elasticity"}
    )

    def __init__(self, options: Mapping[str, object]) -> None:
        super().__init__(options)
        self.factor = self._option("factor", 2.0, low=1.0, low_inclusive=False)
        self.tail_ratio = self._option("tail_ratio", 3.0, low=1.0)
        self.overhead_share = self._option("overhead_share", 0.3, high=1.0)
        self.tail_elasticity = self._option("tail_elasticity", 0.5, high=1.0)

    def _tail(self, violation: Violation) -> float | None:
        """``1 - mean/p99`` when the tail is far (``p99 >= tail_ratio * mean``)."""
        mean, p99 = violation.stats.mean, violation.stats.p99
        if mean is None or p99 is None or mean <= 0 or p99 < self.tail_ratio * mean:
            return None
        return 1.0 - mean / p99

    def plan(self, violation: Violation, current: float) -> float | None:
        """Raise for lower-bound metrics; lower for upper-bound ones with a far tail."""
        if violation.bound == "lower":
            return max(current * self.factor, current + self.step)
        if self._tail(violation) is None:
            return None
        return min(current / self.factor, current - self.step)

    def estimate(
        self, violation: Violation, old: float, new: float
    ) -> tuple[float, str]:
        """Overhead amortised when raising; tail cut when lowering."""
        if new > old:
            saved = 1.0 - old / new
            return self.overhead_share * saved, f"{self.overhead_share:g} x {saved:.1%}"
        tail = self._tail(violation) or 0.0
        cut = 1.0 - new / old if old > 0 else 0.0
        how = f"{self.tail_elasticity:g} x {tail:.1%} tail x {cut:.1%} cut"
        return self.tail_elasticity * tail * cut, how
