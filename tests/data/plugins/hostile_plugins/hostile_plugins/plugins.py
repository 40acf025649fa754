"""Plugins that misbehave in the ways perfwarden must survive, one way each."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING

from perfwarden.plugin_api import Action, KnobChange, Proposal

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from perfwarden.plugin_api import OptimizerContext, Violation


class _Base:
    def __init__(self, options: Mapping[str, object]) -> None:
        self.options = options

    def handles(self, violation: Violation) -> bool:
        return True


class ExitsOptimizer(_Base):
    """``sys.exit(3)`` in ``propose``."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        sys.exit(3)


class HardExitOptimizer(_Base):
    """``os._exit(7)``: no exception, the whole process ends at once."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        os._exit(7)


class BlocksLoopOptimizer(_Base):
    """An ``async def propose`` that blocks its event loop for 2 s."""

    async def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        time.sleep(2)  # noqa: ASYNC251 - the misbehaviour: blocking in a coroutine
        return []


class HoldsGilOptimizer(_Base):
    """A plain ``propose`` inside one long C call that never releases the GIL
    (about half a second of ``sum`` over a range): its worker thread stalls
    every other thread of the process, the event loop included."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        sum(range(40_000_000))
        return []


class HangsApplyOptimizer(_Base):
    """Proposes well every time; its action's ``apply`` never returns."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:

        def apply() -> None:
            time.sleep(3600)

        return [
            Proposal(
                strategy="hostile_hang",
                expected_improvement=0.9,
                rationale="an action that never finishes",
                action=Action("hang forever", apply=apply, revert=lambda: None),
            )
        ]


class AllocatesOptimizer(_Base):
    """Allocates 2 GiB (and touches it) in ``propose``."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        hoard = bytearray(2 * 1024**3)
        for offset in range(0, len(hoard), 4096):
            hoard[offset] = 1
        return [
            Proposal(
                strategy="hostile_hoard",
                expected_improvement=0.1,
                rationale=f"held {len(hoard)} bytes",
                changes=(KnobChange("batch.size", 1),),
            )
        ]


class SpinsOptimizer(_Base):
    """Leaves a thread spinning on the CPU after ``propose`` returns."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:

        def spin() -> None:
            while True:
                pass

        threading.Thread(target=spin, daemon=True).start()
        return []
