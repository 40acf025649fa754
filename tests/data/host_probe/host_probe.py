"""A plugin for the plugin-host tests: its options say how to misbehave."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from perfwarden.plugin_api import Action, KnobChange, Proposal, time_left

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from perfwarden.plugin_api import OptimizerContext, Violation


class Probe:
    """``mode`` option: ``knob``, ``action``, ``sleep``, ``hoard``, ``huge``."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self.mode = str(options.get("mode", "knob"))
        self.marks = Path(str(options.get("marks", ".")))
        self.options = options

    def handles(self, violation: Violation) -> bool:
        return violation.metric == "latency"

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        rationale = f"pid={os.getpid()} left={time_left():.3f}"
        if self.mode == "sleep":
            time.sleep(30)
        if self.mode == "hoard":
            hoard = bytearray(256 * 1024 * 1024)
            rationale += f" {len(hoard)}"
        if self.mode == "huge":
            rationale = "x" * (5 * 1024 * 1024)
        if self.mode == "action":

            def apply() -> None:
                (self.marks / "applied").write_text(f"{time_left():.3f}")

            def revert() -> None:
                (self.marks / "reverted").write_text(violation.correlation_id)

            return [
                Proposal(
                    strategy="probe_action",
                    expected_improvement=0.5,
                    rationale=rationale,
                    action=Action("write a mark", apply=apply, revert=revert),
                )
            ]
        current = context.knobs["batch.size"]
        assert isinstance(current, int)
        assert context.specs["batch.size"].max == 256
        return [
            Proposal(
                strategy="probe_knob",
                expected_improvement=0.25,
                rationale=rationale,
                changes=(KnobChange("batch.size", current // 2),),
            )
        ]
