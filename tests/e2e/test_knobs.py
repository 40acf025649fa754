"""Knobs through a real daemon: bounds, knobs.json, manual changes, the client."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from typing import TYPE_CHECKING

from perfwarden.client import Client
from perfwarden.control.channel import request
from perfwarden.errors import ControlError, DaemonUnreachableError
from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

CONFIG = """\
version: 1
knobs:
  compression.ratio: {min: 0.1, max: 0.9, step: 0.1, initial: 0.4}
  batch.size: {min: 1, max: 256, initial: 16}
  codec: {choices: [zlib, lz4], initial: zlib}
"""


def knob_file(daemon: DaemonProcess) -> dict[str, object]:
    data: dict[str, object] = json.loads((daemon.state_dir / "knobs.json").read_text())
    return data


class TestKnobs:
    def test_listed_and_written(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """``perfwarden knobs`` and knobs.json carry the initial values."""
        daemon = make_daemon(CONFIG).start()
        listed = daemon.cli_json("knobs")["knobs"]
        assert 0.4 == listed["compression.ratio"]["value"]
        assert "zlib" == knob_file(daemon)["knobs"]["codec"]["value"]  # type: ignore[index]
        assert "KNOB" in daemon.cli("knobs").stdout

    def test_set_clamps_and_records(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A manual value is clamped to bounds and step and recorded as manual."""
        daemon = make_daemon(CONFIG).start()
        result = daemon.cli("knobs", "set", "compression.ratio", "0.97")
        assert 0 == result.returncode, result.stderr
        knob = daemon.cli_json("knobs")["knobs"]["compression.ratio"]
        assert (0.9, "manual") == (knob["value"], knob["changed_by"])
        assert 0.9 == knob_file(daemon)["knobs"]["compression.ratio"]["value"]  # type: ignore[index]
        assert 0 == daemon.cli("knobs", "set", "batch.size", "33.4").returncode
        assert 33 == daemon.cli_json("knobs")["knobs"]["batch.size"]["value"]

    def test_clamping_is_announced(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A clamped value is set, exits 0, and says so on stderr: asked, rule, set."""
        daemon = make_daemon(CONFIG).start()
        result = daemon.cli("knobs", "set", "compression.ratio", "0.97")
        assert 0 == result.returncode
        assert "compression.ratio = 0.9 (version 1)\n" == result.stdout
        assert (
            "perfwarden knobs set: warning: compression.ratio: 0.97 is above the "
            "maximum 0.9; set to 0.9\n"
        ) == result.stderr
        low = daemon.cli("knobs", "set", "batch.size", "0")
        assert 0 == low.returncode
        assert "batch.size: 0 is below the minimum 1; set to 1" in low.stderr

    def test_adjustment_in_the_reply(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """knobs.set replies with what was asked and why the value differs, if so."""
        daemon = make_daemon(CONFIG).start()
        reply = daemon.request("knobs.set", name="batch.size", value=1000)
        assert (256, 1000, "clamped") == (
            reply["value"],
            reply["requested"],
            reply["adjusted"],
        )
        reply = daemon.request("knobs.set", name="compression.ratio", value=0.44)
        assert (0.4, "rounded") == (reply["value"], reply["adjusted"])
        assert "0.44 is not on the knob's step of 0.1; set to 0.4" in reply["message"]
        reply = daemon.request("knobs.set", name="batch.size", value=64)
        assert (64, None, None) == (reply["value"], reply["adjusted"], reply["message"])
        as_json = daemon.cli("knobs", "set", "batch.size", "33.4", "--json")
        assert "rounded" == json.loads(as_json.stdout)["adjusted"]
        assert "33.4 is not a whole number; set to 33" in as_json.stderr

    def test_exact_value_is_quiet(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A value the knob allows as given is set without a warning."""
        daemon = make_daemon(CONFIG).start()
        result = daemon.cli("knobs", "set", "compression.ratio", "0.3")
        assert (0, "") == (result.returncode, result.stderr)
        assert 0.3 == daemon.cli_json("knobs")["knobs"]["compression.ratio"]["value"]

    def test_bad_values_rejected(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """An unknown knob fails (exit 1); a word, a non-finite number or an unknown
        choice is a usage error (exit 2); each with its reason."""
        daemon = make_daemon(CONFIG).start()
        for code, args in (
            (1, ("nope", "1")),
            (2, ("batch.size", "many")),
            (2, ("batch.size", "nan")),
            (2, ("compression.ratio", "inf")),
            (2, ("codec", "brotli")),
        ):
            result = daemon.cli("knobs", "set", *args)
            assert code == result.returncode, args
            assert result.stderr
        assert 0 == daemon.cli("knobs", "set", "codec", "lz4").returncode

    def test_survives_restart(self, make_daemon: Callable[..., DaemonProcess]) -> None:
        """A knob set by hand is restored by the next daemon on the same state dir."""
        daemon = make_daemon(CONFIG).start()
        assert 0 == daemon.cli("knobs", "set", "batch.size", "64").returncode
        assert 0 == daemon.stop()
        daemon.start()
        assert 64 == daemon.cli_json("knobs")["knobs"]["batch.size"]["value"]

    def test_knobs_json_never_half_written(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """kill -9 at random moments while knobs change: knobs.json always parses."""
        daemon = make_daemon(CONFIG)
        rng = random.Random(5)
        for _ in range(8):
            daemon.start()
            stop = threading.Event()

            def hammer(stop: threading.Event = stop) -> None:
                value = 1
                while not stop.is_set():
                    value = value % 256 + 1
                    try:
                        request(
                            daemon.control_path,
                            "knobs.set",
                            name="batch.size",
                            value=value,
                        )
                    except (ControlError, DaemonUnreachableError):
                        return

            thread = threading.Thread(target=hammer)
            thread.start()
            time.sleep(rng.uniform(0.05, 0.3))
            daemon.signal(signal.SIGKILL)
            assert daemon.process is not None
            daemon.process.wait()
            stop.set()
            thread.join()
            document = knob_file(daemon)
            assert 1 <= document["knobs"]["batch.size"]["value"] <= 256  # type: ignore[index]
            leftovers = [
                p for p in daemon.state_dir.iterdir() if p.name.startswith(".")
            ]
            assert len(leftovers) <= 1  # at most the temp file of the interrupted write


class TestClientKnobs:
    def test_client_follows_changes_and_restarts(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """The client sees a change quickly, and again after the daemon restarts."""
        daemon = make_daemon(CONFIG).start()
        client = Client(daemon.socket_dir, state_dir=daemon.state_dir)
        try:
            assert 16 == client.knobs.get("batch.size")
            assert client.knobs.wait_connected(30)
            seen: list[tuple[str, object, object]] = []
            client.knobs.on_change(lambda name, old, new: seen.append((name, old, new)))
            started = time.monotonic()
            assert 0 == daemon.cli("knobs", "set", "batch.size", "128").returncode
            wait_until(lambda: client.knobs.get("batch.size") == 128)
            print(f"knob change seen after {time.monotonic() - started:.3f}s")
            assert ("batch.size", 16, 128) in seen
            assert 0 == daemon.stop()
            daemon.start()
            assert 0 == daemon.cli("knobs", "set", "batch.size", "8").returncode
            wait_until(lambda: client.knobs.get("batch.size") == 8, timeout=30)
            assert "zlib" == client.knobs.get("codec")
            assert "fallback" == client.knobs.get("missing", "fallback")
        finally:
            client.knobs.close()
