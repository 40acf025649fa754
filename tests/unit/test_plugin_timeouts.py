"""exec and webhook inside a call's deadline: limits, killed groups, cut retries."""

from __future__ import annotations

import math
import socket
import time
from types import MappingProxyType
from typing import TYPE_CHECKING

import pytest

from perfwarden.plugin_api import ObservedStats, OptimizerContext, Violation
from perfwarden.testing import (
    FakeClock,
    SlowEndpoint,
    plugin_deadline,
    process_running,
    slow_http_endpoint,
    wait_until,
)
from perfwarden_optimizers._common import OptionError, call_limit, opt_seconds
from perfwarden_optimizers.exec_action import (
    CommandFailed,
    CommandTimedOut,
    ExecOptimizer,
)
from perfwarden_optimizers.webhook import (
    WebhookFailed,
    WebhookOptimizer,
    WebhookTimedOut,
    post_json,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from perfwarden.plugin_api import Action


VIOLATION = Violation(
    metric="latency",
    tags=MappingProxyType({}),
    severity="critical",
    basis="sample",
    bound="upper",
    observed=(500.0, 500.0),
    threshold=200.0,
    target=None,
    unit="ms",
    trend="rising",
    stats=ObservedStats(30, 500.0, None, None, None, None, None, None, None),
    correlation_id="c-timeout",
)
CONTEXT = OptimizerContext(knobs=MappingProxyType({}), specs=MappingProxyType({}))


def action(plugin: ExecOptimizer | WebhookOptimizer) -> Action:
    (proposal,) = plugin.propose(VIOLATION, CONTEXT)
    assert proposal.action is not None
    return proposal.action


def exec_plugin(*command: str, **options: object) -> ExecOptimizer:
    return ExecOptimizer({"command": command, "revert_command": ("true",), **options})


class TestCallLimit:
    """The shorter of a plugin's own timeout and the call's time left."""

    @pytest.mark.parametrize(
        ("own", "left", "expected"),
        [
            (None, math.inf, (None, "no limit")),
            (None, 3.0, (3.0, "the call's deadline")),
            (2.0, 5.0, (2.0, "its timeout option")),
            (5.0, 2.0, (2.0, "the call's deadline")),
            (2.0, 2.0, (2.0, "its timeout option")),
            (2.0, math.inf, (2.0, "its timeout option")),
            (None, 0.0, (0.0, "the call's deadline")),
        ],
    )
    def test_limit(
        self, own: float | None, left: float, expected: tuple[float | None, str]
    ) -> None:
        """Each case names what set the limit, for the error message."""
        assert expected == call_limit(own, left)

    @pytest.mark.parametrize(
        ("value", "seconds"), [(3, 3.0), (0.25, 0.25), ("250ms", 0.25), ("2s", 2.0)]
    )
    def test_durations_as_in_the_config(self, value: object, seconds: float) -> None:
        """``timeout: 5s`` works in a plugin's options as everywhere in the config."""
        assert seconds == opt_seconds("exec", {"timeout": value}, "timeout", None)

    @pytest.mark.parametrize("value", [0, "0s", "soon", True, -1, (1,)])
    def test_bad_durations(self, value: object) -> None:
        """Zero, words, booleans, negatives and lists are rejected at load."""
        with pytest.raises(OptionError, match="exec: option 'timeout'"):
            opt_seconds("exec", {"timeout": value}, "timeout", None)

    def test_zero_allowed_where_it_means_none(self) -> None:
        """``backoff: 0`` (retry at once) is a valid choice."""
        assert 0.0 == opt_seconds("webhook", {"backoff": 0}, "backoff", 0.5, zero=True)


class TestExecDeadline:
    """exec finishes within the call's deadline, killing what it started."""

    def test_deadline_caps_the_command(self) -> None:
        """Without a timeout option, the call's deadline is the limit."""
        apply = action(exec_plugin("sleep", "30")).apply
        started = time.monotonic()
        with plugin_deadline(0.3), pytest.raises(CommandTimedOut) as info:
            apply()
        assert time.monotonic() - started < 2
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, CommandFailed)
        assert "timed out after 0.3s (the call's deadline)" in str(info.value)

    def test_own_timeout_when_shorter(self) -> None:
        """A shorter ``timeout`` option wins, and the message says so."""
        apply = action(exec_plugin("sleep", "30", timeout="200ms")).apply
        with plugin_deadline(10), pytest.raises(CommandTimedOut, match="its timeout"):
            apply()

    def test_whole_process_group_killed(self, tmp_path: Path) -> None:
        """The command and what it started in the background are all killed."""
        script = 'sleep 30 & echo $! > "$1/grandchild"; echo $$ > "$1/child"; wait'
        apply = action(exec_plugin("sh", "-c", script, "sh", str(tmp_path))).apply
        with plugin_deadline(1.0), pytest.raises(CommandTimedOut, match="killed"):
            apply()
        pids = [int((tmp_path / name).read_text()) for name in ("child", "grandchild")]
        # SIGKILL is delivered asynchronously: on a busy machine the orphaned
        # grandchild can still show as running for a moment after killpg returns.
        wait_until(
            lambda: not [pid for pid in pids if process_running(pid)], timeout=30
        )

    def test_output_kept_on_timeout(self) -> None:
        """What the command wrote before it was killed is in the error."""
        apply = action(exec_plugin("sh", "-c", "echo halfway >&2; sleep 30")).apply
        with plugin_deadline(0.5), pytest.raises(CommandTimedOut) as info:
            apply()
        assert "halfway\n" == info.value.result.stderr_tail
        assert str(info.value).endswith("halfway\n")

    def test_no_time_left_runs_nothing(self, tmp_path: Path) -> None:
        """Past the deadline the command is not even started."""
        marker = tmp_path / "ran"
        apply = action(exec_plugin("touch", str(marker))).apply
        with plugin_deadline(0), pytest.raises(CommandTimedOut, match="not started"):
            apply()
        assert not marker.exists()

    def test_fast_command_unaffected(self) -> None:
        """A command well inside its deadline succeeds as before."""
        apply = action(exec_plugin("true")).apply
        with plugin_deadline(5):
            assert 0 == getattr(apply(), "returncode", None)


@pytest.fixture(name="slow_server")
def _slow_server() -> Iterator[SlowEndpoint]:
    """A real HTTP server that does not answer until the test ends."""
    with slow_http_endpoint(patience=30.0) as endpoint:
        yield endpoint


class TestWebhookDeadline:
    """webhook attempts and backoffs all end by the call's deadline."""

    def test_slow_endpoint_times_out_at_the_deadline(
        self, slow_server: SlowEndpoint
    ) -> None:
        """Without a timeout option one attempt may use the whole call; then
        there is no time to retry, and the error is a timeout."""
        url, handler = slow_server.url, slow_server
        apply = action(WebhookOptimizer({"url": url})).apply
        started = time.monotonic()
        with plugin_deadline(0.5), pytest.raises(WebhookTimedOut) as info:
            apply()
        assert 0.4 < time.monotonic() - started < 1.5
        assert isinstance(info.value, TimeoutError)
        assert "no answer within 0.5s (after 1 attempt(s); no time for retry 1" in str(
            info.value
        )
        assert 1 == len(handler.requests)

    def test_own_timeout_leaves_room_for_retries(
        self, slow_server: SlowEndpoint
    ) -> None:
        """A short per-attempt timeout: every retry fits in the deadline."""
        url, handler = slow_server.url, slow_server
        plugin = WebhookOptimizer(
            {"url": url, "timeout": "200ms", "retries": 2, "backoff": "50ms"}
        )
        with plugin_deadline(5), pytest.raises(WebhookTimedOut, match="3 attempt"):
            action(plugin).apply()
        assert 3 == len(handler.requests)

    def test_retries_cut_at_the_deadline(self) -> None:
        """A backoff that would end past the deadline is not slept; the last
        problem (a refused connection) is reported, not a timeout."""
        clock = FakeClock(0.0)
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            clock.advance(seconds)

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))  # bound, not listening: connect is refused
            with pytest.raises(WebhookFailed) as info:
                post_json(
                    f"http://127.0.0.1:{sock.getsockname()[1]}/",
                    {},
                    timeout=None,
                    retries=5,
                    backoff=0.4,
                    headers={},
                    deadline=1.0,
                    clock=clock,
                    sleep=sleep,
                )
        assert [0.4] == slept
        assert not isinstance(info.value, TimeoutError)
        assert "after 2 attempt(s); no time for retry 2" in str(info.value)

    def test_no_time_left_sends_nothing(self, slow_server: SlowEndpoint) -> None:
        """Past the deadline nothing is sent."""
        url, handler = slow_server.url, slow_server
        apply = action(WebhookOptimizer({"url": url})).apply
        with plugin_deadline(0), pytest.raises(WebhookTimedOut, match="not sent"):
            apply()
        assert not handler.requests
