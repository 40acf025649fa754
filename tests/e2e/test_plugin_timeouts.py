"""exec and webhook overrunning through a real daemon: killed, reported, counted.

A command that sleeps far longer than a plugin call may run, and an HTTP endpoint
that never answers, each driven by a real alert: the plugin stops at the call's
deadline (``plugin_timeout`` less the grace), kills the command's whole process
group or drops the request, and the daemon logs a timeout the plugin handled
(``plugin.timed_out``, ``abandoned: false``), counted as the docs say: one
timeout and one failure for the circuit breaker.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.testing import (
    SlowEndpoint,
    process_running,
    slow_http_endpoint,
    wait_until,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from perfwarden.testing import DaemonProcess

#: plugin_timeout 2 s: the call's deadline is 1.8 s after it starts.
CONFIG = """\
version: 1
evaluation: {{interval: 0.5s, basis: sample}}
optimizer: {{plugin_timeout: 2s, max_failures: {max_failures}, cooldown: 0.2s}}
metrics:
  latency:
    bound: upper
    warning: 150
    critical: 200
    optimizers: [{plugin}]
plugins:
{plugins}
"""

#: The command and a background child of it both record their pids, then wait.
SCRIPT = 'sleep 60 & echo $! > "$1/grandchild"; echo $$ > "$1/child"; wait'


def exec_config(work: Path, max_failures: int = 3, timeout: str = "") -> str:
    plugins = (
        f"  exec:\n    command: [sh, -c, '{SCRIPT}', sh, '{work}']\n"
        "    revert_command: ['true']\n"
    )
    if timeout:
        plugins += f"    timeout: {timeout}\n"
    return CONFIG.format(max_failures=max_failures, plugin="exec", plugins=plugins)


def violate(daemon: DaemonProcess) -> None:
    """Enough critical samples for an alert and the optimizer's baseline."""
    daemon.send_datagrams(["latency:500|ms"] * 25)


def plugin(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    plugins = {p["name"]: p for p in daemon.cli_json("plugins")["plugins"]}
    found: dict[str, Any] = plugins[name]
    return found


class TestExecOverrun:
    def test_killed_reported_and_counted_once(
        self, make_daemon: Callable[..., DaemonProcess], tmp_path: Path
    ) -> None:
        """The command and its background child are killed at the deadline; the
        log says timeout, not abandoned; exec stays active with one failure."""
        daemon = make_daemon(exec_config(tmp_path)).start()
        violate(daemon)
        event = daemon.wait_log("plugin.timed_out")
        assert ("exec", "apply", False) == (
            event["plugin"],
            event["call"],
            event["abandoned"],
        )
        assert event["error"].startswith("CommandTimedOut: sh: timed out after 1.8s")
        assert "(the call's deadline); process group" in event["error"]
        assert 1.7 <= event["seconds"] < 2.0  # before the daemon's 2 s
        pids = [int((tmp_path / name).read_text()) for name in ("child", "grandchild")]
        wait_until(
            lambda: not [pid for pid in pids if process_running(pid)], timeout=30
        )
        failed = daemon.wait_log("optimizer.apply_failed")
        assert "exec.apply timed out" in failed["error"]
        record = plugin(daemon, "exec")
        assert ("active", 1, 1, 1) == (
            record["state"],
            record["timeouts"],
            record["failures"],
            record["consecutive_failures"],
        )
        assert not daemon.log_events("plugin.disabled")

    def test_breaker_as_documented(
        self, make_daemon: Callable[..., DaemonProcess], tmp_path: Path
    ) -> None:
        """A timeout is a failure: with max_failures 1, exec is disabled."""
        daemon = make_daemon(exec_config(tmp_path, max_failures=1)).start()
        violate(daemon)
        disabled = daemon.wait_log("plugin.disabled")
        assert "exec" == disabled["plugin"]
        assert "disabled" == plugin(daemon, "exec")["state"]
        assert [False] == [
            e["abandoned"] for e in daemon.log_events("plugin.timed_out")
        ]

    def test_timeout_beyond_the_call_rejected(
        self, make_daemon: Callable[..., DaemonProcess], tmp_path: Path
    ) -> None:
        """A timeout the daemon cannot allow is a config error, at start and on
        reload (the running config stays)."""
        daemon = make_daemon(exec_config(tmp_path, timeout="1s")).start()
        assert daemon.config_path is not None
        daemon.config_path.write_text(exec_config(tmp_path, timeout="10s"))
        checked = daemon.cli("check-config", str(daemon.config_path))
        assert 1 == checked.returncode
        line = f"{daemon.config_path}:14: plugins.exec.timeout: 10s is longer than"
        assert line in checked.stdout + checked.stderr
        reloaded = daemon.cli("reload")
        assert 1 == reloaded.returncode
        assert "plugins.exec.timeout" in reloaded.stdout + reloaded.stderr
        assert "active" == plugin(daemon, "exec")["state"]


@pytest.fixture(name="slow_endpoint")
def _slow_endpoint() -> Iterator[SlowEndpoint]:
    """A local HTTP endpoint that does not answer a POST in time."""
    with slow_http_endpoint() as endpoint:
        yield endpoint


class TestWebhookOverrun:
    def test_request_dropped_at_the_deadline(
        self,
        make_daemon: Callable[..., DaemonProcess],
        slow_endpoint: SlowEndpoint,
    ) -> None:
        """With the default options one attempt gets the whole call; there is
        no time for a retry; the log says timeout, not abandoned."""
        url, handler = slow_endpoint.url, slow_endpoint
        plugins = f"  webhook: {{url: '{url}', expected_improvement: 0.1}}\n"
        config = CONFIG.format(max_failures=3, plugin="webhook", plugins=plugins)
        daemon = make_daemon(config).start()
        violate(daemon)
        event = daemon.wait_log("plugin.timed_out")
        assert ("webhook", "apply", False) == (
            event["plugin"],
            event["call"],
            event["abandoned"],
        )
        assert "WebhookTimedOut" in event["error"]
        # The limit is what was left of the call's 2 s when the request went out:
        # a little less on a loaded machine.
        assert re.search(
            r"no answer within 1(\.\d+)?s \(after 1 attempt\(s\); no time for retry 1",
            event["error"],
        ), event["error"]
        assert 1.5 <= event["seconds"] < 4.0
        assert 1 == len(handler.requests)
        record = plugin(daemon, "webhook")
        assert ("active", 1, 1) == (
            record["state"],
            record["timeouts"],
            record["failures"],
        )
