"""``ingest.max_timestamp_age`` / ``max_timestamp_ahead``: the ``|T`` skew limits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

CONFIG = """\
version: 1
metrics:
  latency: {bound: upper, warning: 150, critical: 200}
"""


class TestSkewLimits:
    def test_limits_apply_on_reload(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A stamp 20 min old is late by default and accepted once the age allows."""
        daemon = make_daemon(CONFIG).start()
        old = int(time.time()) - 1200
        ahead = int(time.time()) + 600
        lines = f"latency:100|ms|T{old}\nlatency:101|ms|T{ahead}"
        daemon.send_datagrams([lines])
        ingest = daemon.wait_received(2)
        assert {"late_timestamp": 1, "future_timestamp": 1} == ingest[
            "dropped_by_reason"
        ]
        assert daemon.config_path is not None
        daemon.config_path.write_text(
            CONFIG + "ingest: {max_timestamp_age: 1h, max_timestamp_ahead: 15m}\n"
        )
        reloaded = daemon.cli("reload")
        assert 0 == reloaded.returncode, reloaded.stderr
        daemon.send_datagrams([lines])
        ingest = daemon.wait_received(4)
        assert 2 == ingest["accepted"]
        assert 2 == sum(ingest["dropped_by_reason"].values())

    def test_bad_limits_are_refused_by_line(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A negative or malformed limit is a PATH:LINE problem, the config kept."""
        daemon = make_daemon(CONFIG)
        assert daemon.config_path is not None
        daemon.config_path.write_text(
            CONFIG + "ingest:\n  max_timestamp_age: 0\n  max_timestamp_ahead: soon\n"
        )
        checked = daemon.cli("check-config", str(daemon.config_path))
        assert 1 == checked.returncode
        assert f"{daemon.config_path}:5: ingest.max_timestamp_age:" in checked.stderr
        assert f"{daemon.config_path}:6: ingest.max_timestamp_ahead:" in checked.stderr
