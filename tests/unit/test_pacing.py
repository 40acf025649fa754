"""perfwarden.alerts.pacing: evaluation passes coalesced after ingest commits."""

from __future__ import annotations

import asyncio

import pytest

from perfwarden.alerts.pacing import EvaluationPacer
from perfwarden.config.load import ConfigError, parse_config

HOUR = 3600.0


async def turns(count: int = 3) -> None:
    """Let the loop run a few turns (call_soon callbacks run on the next one)."""
    for _ in range(count):
        await asyncio.sleep(0)


class TestPacer:
    async def test_first_request_runs_on_the_next_loop_turn(self) -> None:
        """After a quiet spell a request is not delayed: a lone crossing is judged
        right after the batch that carries it."""
        runs: list[int] = []
        pacer = EvaluationPacer(
            lambda: runs.append(1), asyncio.get_running_loop(), lambda: HOUR
        )
        pacer.request()
        assert pacer.due
        await turns()
        assert (1, False) == (len(runs), pacer.due)

    async def test_requests_within_the_gap_make_one_pass(self) -> None:
        """Batches arriving within the gap are judged together, once; flush() runs
        the waiting pass at once."""
        runs: list[int] = []
        pacer = EvaluationPacer(
            lambda: runs.append(1), asyncio.get_running_loop(), lambda: HOUR
        )
        pacer.request()
        await turns()
        for _ in range(5):
            pacer.request()
            await turns()
        assert (1, True, 4) == (len(runs), pacer.due, pacer.coalesced)
        pacer.flush()
        assert (2, False, 2) == (len(runs), pacer.due, pacer.passes)
        pacer.flush()
        assert len(runs) == 2

    async def test_a_waiting_pass_runs_when_the_gap_has_passed(self) -> None:
        """A coalesced pass is not lost: it runs once the gap has elapsed."""
        runs: list[int] = []
        pacer = EvaluationPacer(
            lambda: runs.append(1), asyncio.get_running_loop(), lambda: 0.02
        )
        pacer.request()
        await turns()
        pacer.request()
        pacer.request()
        for _ in range(500):
            if len(runs) == 2:
                break
            await asyncio.sleep(0.01)
        assert (2, False) == (len(runs), pacer.due)

    async def test_zero_gap_is_a_pass_per_loop_turn(self) -> None:
        """coalesce 0: every request after a pass gets its own pass."""
        runs: list[int] = []
        pacer = EvaluationPacer(
            lambda: runs.append(1), asyncio.get_running_loop(), lambda: 0.0
        )
        for _ in range(3):
            pacer.request()
            await turns()
        assert len(runs) == 3

    async def test_an_urgent_request_skips_the_gap(self) -> None:
        """A batch with a value past a level is judged on the next loop turn even
        when a coalesced pass is waiting for its gap."""
        runs: list[int] = []
        pacer = EvaluationPacer(
            lambda: runs.append(1), asyncio.get_running_loop(), lambda: HOUR
        )
        pacer.request()
        await turns()
        pacer.request()
        await turns()
        assert (1, True) == (len(runs), pacer.due)
        pacer.request(urgent=True)
        pacer.request(urgent=True)
        await turns()
        assert (2, False, 1) == (len(runs), pacer.due, pacer.coalesced)

    async def test_cancel_drops_the_waiting_pass(self) -> None:
        """cancel() (shutdown) leaves nothing scheduled."""
        runs: list[int] = []
        pacer = EvaluationPacer(
            lambda: runs.append(1), asyncio.get_running_loop(), lambda: HOUR
        )
        pacer.request()
        pacer.cancel()
        await turns()
        assert (0, False) == (len(runs), pacer.due)


class TestConfig:
    def test_coalesce_defaults_to_200ms_and_takes_durations(self) -> None:
        """evaluation.coalesce: 200 ms unless set; durations such as 5ms or 0."""
        assert parse_config("version: 1\n").evaluation.coalesce == 0.2
        for text, expected in (("5ms", 0.005), ("0", 0.0), ("1s", 1.0)):
            config = parse_config(f"version: 1\nevaluation: {{coalesce: {text}}}\n")
            assert expected == config.evaluation.coalesce, text

    def test_coalesce_beyond_a_second_is_refused(self) -> None:
        """A coalescing gap longer than a second would delay every alert: refused."""
        with pytest.raises(ConfigError) as info:
            parse_config("version: 1\nevaluation: {coalesce: 2s}\n", source="t.yaml")
        assert ["t.yaml:2: evaluation.coalesce: must be between 0 and 1s"] == [
            str(problem) for problem in info.value.problems
        ]
