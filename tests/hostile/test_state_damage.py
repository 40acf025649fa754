"""A read-only or tampered state directory: the daemon starts, says so, and never
moves a healthy file aside."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

KNOB = """\
version: 1
knobs:
  compression.ratio: {min: 0.1, max: 0.9, initial: 0.4}
"""


def seeded(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A daemon that saved a series and a knob value, then stopped cleanly."""
    daemon = make_daemon(KNOB).start()
    daemon.send_datagrams([f"kept:{i}|g" for i in range(10)])
    daemon.wait_received(10)
    daemon.request("knobs.set", name="compression.ratio", value=0.7)
    assert 0 == daemon.stop()
    return daemon


@pytest.fixture(name="read_only")
def _read_only() -> Iterator[Callable[[Path], None]]:
    """Remount a directory read-only (a bind mount), undone at the end."""
    mounted: list[Path] = []

    def make(path: Path) -> None:
        bind = ["mount", "--bind", str(path), str(path)]
        if os.getuid() != 0 or subprocess.run(bind, check=False).returncode:
            pytest.skip("a read-only bind mount needs root and mount(8)")
        mounted.append(path)
        remount = ["mount", "-o", "remount,bind,ro", str(path), str(path)]
        subprocess.run(remount, check=True)

    yield make
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


class TestReadOnlyState:
    def test_read_only_state_is_restored_and_left_alone(
        self,
        make_daemon: Callable[..., DaemonProcess],
        read_only: Callable[[Path], None],
    ) -> None:
        """A read-only state dir with a healthy state.db: restored, not saved,
        not moved aside, and the daemon says so."""
        daemon = seeded(make_daemon)
        before = sorted(p.name for p in daemon.state_dir.iterdir())
        read_only(daemon.state_dir)
        daemon.start()
        event = daemon.wait_log("state.read_only")
        assert event["restored"] is True
        state = daemon.request("status")["state"]
        assert state["enabled"] is False
        assert state["disabled"].startswith("read-only")
        assert "not saving: read-only" in daemon.cli("status").stdout
        assert (
            10 == daemon.request("stats", metrics=["kept"])["series"][0]["sample_size"]
        )
        knobs = daemon.request("knobs")["knobs"]
        assert 0.7 == knobs["compression.ratio"]["value"]
        daemon.send_datagrams(["after:1|g"])
        daemon.wait_received(1)
        assert 0 == daemon.stop()
        assert before == sorted(p.name for p in daemon.state_dir.iterdir())
        assert not daemon.log_events("state.discarded")


class TestTamperedState:
    def test_row_with_absurd_capacity_is_skipped(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A saved row claiming capacity 1e13 is skipped; the others restore."""
        daemon = seeded(make_daemon)
        with sqlite3.connect(daemon.state_dir / "state.db") as conn:
            conn.execute("UPDATE series SET capacity = 10000000000000")
            # a series' newest chunk carries its capacity too
            conn.execute("UPDATE samples SET capacity = 10000000000000")
            infinite = "('inf|g', 'inf', 'g', '[]', 1e999, 0, 0, NULL)"
            conn.execute(f"INSERT INTO series VALUES {infinite}")  # noqa: S608
        conn.close()
        daemon.start()
        skipped = wait_until(lambda: daemon.log_events("state.row_skipped"))
        assert {"kept|g", "inf|g"} == {event["key"] for event in skipped}
        assert daemon.request("ping")["pong"]

    def test_knobs_file_with_bad_changed_at(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A hand-edited knobs.json with bad ``changed_at`` values keeps the values."""
        daemon = make_daemon(BAD_TIMES_CONFIG).start()
        assert 0 == daemon.stop()
        path = daemon.state_dir / "knobs.json"
        document = json.loads(path.read_text())
        for index, changed_at in enumerate(BAD_TIMES):
            entry = document["knobs"][f"k{index}"]
            entry["value"], entry["changed_at"] = 7, changed_at
        path.write_text(json.dumps(document).replace("Infinity", "1e999"))
        daemon.start()
        knobs = daemon.request("knobs")["knobs"]
        for index in range(len(BAD_TIMES)):
            assert 7 == knobs[f"k{index}"]["value"]
            assert isinstance(knobs[f"k{index}"]["changed_at"], float)


BAD_TIMES: list[object] = ["yesterday", None, [1], float("inf"), True]
BAD_TIMES_CONFIG = "version: 1\nknobs:\n" + "".join(
    f"  k{i}: {{min: 1, max: 9, initial: 5}}\n" for i in range(len(BAD_TIMES))
)
