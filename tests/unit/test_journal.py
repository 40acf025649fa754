"""The write-ahead journal: durable before the knob changes, reverted at start."""

from __future__ import annotations

import importlib.metadata
import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

from perfwarden.config.load import Config
from perfwarden.optimize.experiment import Experiment, apply_proposal
from perfwarden.optimize.journal import JOURNAL_FILE, ActionJournal, revert_unfinished
from perfwarden.optimize.knobs import KnobStore
from perfwarden.optimize.plugin_handle import PluginHandle, PluginState
from perfwarden.optimize.plugin_loader import PluginSource
from perfwarden.optimize.plugin_runtime import PluginRuntime
from perfwarden.plugin_api import (
    KnobChange,
    KnobSpec,
    ObservedStats,
    Proposal,
    Violation,
)

if TYPE_CHECKING:
    from pathlib import Path


def entry(cid: str, original: int, applied: int) -> dict[str, object]:
    return {
        "correlation_id": cid,
        "metric": "latency",
        "strategy": "halve",
        "plugin": "acme",
        "originals": {"batch.size": original},
        "applied": {"batch.size": applied},
        "action": None,
        "at": 1.0,
    }


def knob_store(tmp_path: Path, value: int) -> KnobStore:
    spec = KnobSpec("batch.size", initial=64, min=1, max=256)
    knobs = KnobStore({"batch.size": spec}, tmp_path)
    knobs.set("batch.size", value, source="test")
    return knobs


class TestJournal:
    """``inflight.json`` holds exactly the experiments not yet settled."""

    def test_record_is_on_disk_before_returning(self, tmp_path: Path) -> None:
        """A second reader (the next daemon) sees the record at once."""
        journal = ActionJournal(tmp_path)
        journal.record(entry("a1", 64, 32))
        assert ["a1"] == [e["correlation_id"] for e in ActionJournal(tmp_path).load()]
        document = json.loads((tmp_path / JOURNAL_FILE).read_text())
        assert 1 == document["version"]

    def test_settle_drops_only_its_own(self, tmp_path: Path) -> None:
        """Settling one experiment keeps the others."""
        journal = ActionJournal(tmp_path)
        journal.record(entry("a1", 64, 32))
        journal.record(entry("b2", 64, 128))
        journal.settle("a1")
        journal.settle("unknown")
        assert ["b2"] == [e["correlation_id"] for e in ActionJournal(tmp_path).load()]

    def test_unwritable_record_raises_and_keeps_nothing(self, tmp_path: Path) -> None:
        """If the record cannot be made durable the caller hears of it."""
        missing = tmp_path / "gone"
        journal = ActionJournal(missing)
        with pytest.raises(OSError, match="gone"):
            journal.record(entry("a1", 64, 32))
        assert [] == journal.entries

    def test_damaged_file_reads_as_empty(self, tmp_path: Path) -> None:
        """Garbage in inflight.json is reported, not fatal."""
        (tmp_path / JOURNAL_FILE).write_text("{not json")
        (tmp_path / f".{JOURNAL_FILE}.tmp123").write_text("half")
        assert [] == ActionJournal(tmp_path).load()
        assert not (tmp_path / f".{JOURNAL_FILE}.tmp123").exists()

    def test_no_directory_no_file(self) -> None:
        """Without a state directory the journal keeps nothing on disk."""
        journal = ActionJournal(None)
        journal.record(entry("a1", 64, 32))
        assert [] == journal.load()


class TestRevertUnfinished:
    """At start, each unfinished experiment's knobs go back, unless someone else's."""

    def test_applied_value_reverted(self, tmp_path: Path) -> None:
        """Killed after the change: the original comes back, logged as reverted."""
        knobs = knob_store(tmp_path, 32)
        assert ["a1"] == revert_unfinished([entry("a1", 64, 32)], knobs, reason="r")
        assert 64 == knobs.get("batch.size")
        assert "revert" == knobs.record("batch.size").changed_by

    def test_killed_before_the_change(self, tmp_path: Path) -> None:
        """Killed between the record and the change: nothing to do."""
        knobs = knob_store(tmp_path, 64)
        version = knobs.version
        revert_unfinished([entry("a1", 64, 32)], knobs, reason="r")
        assert (64, version) == (knobs.get("batch.size"), knobs.version)

    def test_someone_elses_value_stands(self, tmp_path: Path) -> None:
        """A value neither applied nor original was set by someone since."""
        knobs = knob_store(tmp_path, 100)
        revert_unfinished([entry("a1", 64, 32)], knobs, reason="r")
        assert 100 == knobs.get("batch.size")


def experiment_for(cid: str) -> Experiment:
    entry_point = importlib.metadata.EntryPoint("acme", "a:A", "perfwarden.optimizers")
    source = PluginSource("acme", "a:A", "acme-tuner", "1", entry_point)
    violation = Violation(
        metric="latency",
        tags={},
        severity="critical",
        basis="sample",
        bound="upper",
        observed=(500.0, 500.0),
        threshold=200.0,
        target=None,
        unit=None,
        trend="flat",
        stats=ObservedStats(30, None, None, None, None, None, None, None, None),
        correlation_id=cid,
    )
    return Experiment(
        correlation_id=cid,
        violation=violation,
        series_key="latency",
        handle=PluginHandle(source, PluginState.ACTIVE),
        proposal=Proposal(
            strategy="halve",
            expected_improvement=0.2,
            rationale="",
            changes=(KnobChange("batch.size", 32),),
        ),
        score=0.2,
        started=0.0,
        start_count=0,
        before=np.empty(0),
    )


class TestWriteAhead:
    """``apply_proposal`` makes the record durable before the first knob moves."""

    async def test_record_on_disk_when_the_knob_changes(self, tmp_path: Path) -> None:
        """At the instant of the change, a fresh reader of the state dir finds the
        experiment with its original and the value being set."""
        knobs = knob_store(tmp_path, 64)
        on_disk: list[list[dict[str, object]]] = []
        knobs.subscribers.append(
            lambda _: on_disk.append(ActionJournal(tmp_path).load())
        )
        runtime = PluginRuntime(Config, environ={})
        journal = ActionJournal(tmp_path)
        await apply_proposal(experiment_for("w1"), runtime, knobs, journal, lambda: 5.0)
        ((record,),) = on_disk
        assert ({"batch.size": 64}, {"batch.size": 32}) == (
            record["originals"],
            record["applied"],
        )
        assert 32 == knobs.get("batch.size")

    async def test_no_record_no_change(self, tmp_path: Path) -> None:
        """If the journal cannot be written, the knob is not touched."""
        knobs = knob_store(tmp_path, 64)
        version = knobs.version
        runtime = PluginRuntime(Config, environ={})
        journal = ActionJournal(tmp_path / "missing")
        with pytest.raises(OSError, match="missing"):
            await apply_proposal(
                experiment_for("w2"), runtime, knobs, journal, lambda: 5.0
            )
        assert (64, version) == (knobs.get("batch.size"), knobs.version)
