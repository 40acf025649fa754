"""Built-in ``parallelism``: more parallelism for a low speedup, less when the
seed's contention pattern applies (strategy ``parallel_execution``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._common import opt_metrics
from ._knob import KnobOptimizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.plugin_api import Violation

__all__ = ["ParallelismOptimizer"]


class ParallelismOptimizer(KnobOptimizer):
    """Turn ``parallelism.limit`` by ``step`` (default 1) around ``contention_limit``.

    The seed's failure pattern ``concurrent_tools > 6 -> resource_contention + 15%
    slowdown`` gives ``contention_limit`` (option, default 6) and
    ``contention_penalty`` (option, default 0.15). The rule:

    1. limit above ``contention_limit``: lower it by ``step``, for any violation
       (speedup, latency or memory alike suffer from contention);
    2. otherwise, for the metrics in ``speedup_metrics`` (default
       ``parallel_execution_speedup``) that are below their goal: raise it by
       ``step``, but not past ``contention_limit``;
    3. otherwise nothing (more parallelism does not cure latency or memory).

    Estimates, capped at ``max_estimate`` (0.5):

    * lowering: ``contention_penalty * min(1, (old - new) / (old - contention_limit))``
      — the seed's slowdown, in proportion to the excess removed.
    * raising: Amdahl's law. From the observed speedup ``s`` (the centre of the
      observation) at ``n = old`` workers the parallel fraction is
      ``p = (1 - 1/s) / (1 - 1/n)`` (clipped to [0, 1]; the prior
      ``parallel_fraction``, default 0.5, when ``n = 1`` or ``s`` is not
      positive); the estimate is ``S(new) / S(old) - 1`` with
      ``S(k) = 1 / ((1 - p) + p / k)``. A speedup that Amdahl says cannot grow
      (``p = 0``) gets no proposal.
    """

    name = "parallelism"
    strategy = "parallel_execution"
    default_knob = "parallelism.limit"
    default_metrics = frozenset(
        {
            "parallel_execution_speedup",
            "command_execution_time",
            "context_loading_time",
            "memory_usage_mb",
        }
    )
    default_step = 1.0
    extra_options = frozenset(
        {
            "contention_limit",
            "contention_penalty",
            "parallel_fraction",
            "speedup_metrics",
        }
    )

    def __init__(self, options: Mapping[str, object]) -> None:
        super().__init__(options)
        self.contention_limit = self._option("contention_limit", 6.0, low=1.0)
        self.contention_penalty = self._option("contention_penalty", 0.15, high=1.0)
        self.parallel_fraction = self._option("parallel_fraction", 0.5, high=1.0)
        self.speedup_metrics = opt_metrics(
            self.name,
            options,
            frozenset({"parallel_execution_speedup"}),
            "speedup_metrics",
        )

    def plan(self, violation: Violation, current: float) -> float | None:
        """Down when contended; up (to the contention limit) for a low speedup."""
        if current > self.contention_limit:
            return current - self.step
        if violation.metric in self.speedup_metrics and violation.bound == "lower":
            wanted = min(current + self.step, self.contention_limit)
            return wanted if wanted > current else None
        return None

    def _parallel_fraction(self, violation: Violation, workers: float) -> float:
        """Amdahl's ``p`` inferred from the observed speedup at ``workers``."""
        speedup = (violation.observed[0] + violation.observed[1]) / 2
        if workers <= 1 or speedup <= 0:
            return self.parallel_fraction
        fraction = (1.0 - 1.0 / speedup) / (1.0 - 1.0 / workers)
        return min(max(fraction, 0.0), 1.0)

    def estimate(
        self, violation: Violation, old: float, new: float
    ) -> tuple[float, str]:
        """The contention penalty removed, or Amdahl's predicted speedup gain."""
        if new < old:
            excess = old - self.contention_limit
            share = min(1.0, (old - new) / excess) if excess > 0 else 0.0
            how = f"{self.contention_penalty:g} x {share:.1%} of the excess"
            return self.contention_penalty * share, how
        p = self._parallel_fraction(violation, old)

        def speedup(workers: float) -> float:
            return 1.0 / ((1.0 - p) + p / workers)

        gain = speedup(new) / speedup(old) - 1.0
        return gain, f"Amdahl with p={p:.2f}: S({new:g})/S({old:g}) - 1"
