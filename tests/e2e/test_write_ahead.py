"""``kill -9`` at random instants after an optimizer's knob change: always reverted.

The knob change is write-ahead: the experiment is in ``inflight.json`` before the
knob reaches ``knobs.json``, so whatever instant the daemon dies at, the next start
puts the original value back. Each round: start (restoring), fire an alert on a
fresh series, wait until ``knobs.json`` shows the optimizer's value, wait a random
0-300 ms, ``kill -9``. ``PERFWARDEN_KILL_ROUNDS`` sets the number of rounds: 10 in
CI (a round is a daemon start, 1-2 s, several on a loaded machine);
``bench/hostile.md`` quotes a run of 100.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("acme_installed")]

ROUNDS = int(os.environ.get("PERFWARDEN_KILL_ROUNDS", "10"))
INITIAL = 64

CONFIG = f"""\
version: 1
statistics: {{min_samples: 10}}
evaluation: {{interval: 0.1s, basis: sample}}
state: {{checkpoint_interval: 0.2s}}
optimizer:
  validation_samples: 100000
  validation_timeout: 1h
  cooldown: 0.1s
  max_actions_per_hour: 100000
knobs:
  batch.size: {{min: 1, max: 256, initial: {INITIAL}}}
metrics:
  latency: {{bound: upper, warning: 150, critical: 200, optimizers: [acme]}}
plugins:
  acme: {{}}
"""


def knob_on_disk(daemon: DaemonProcess) -> tuple[float, str] | None:
    """``batch.size`` and who set it, as ``knobs.json`` says now."""
    try:
        document = json.loads((daemon.state_dir / "knobs.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    record = document["knobs"]["batch.size"]
    return float(record["value"]), str(record["changed_by"])


@pytest.mark.timeout(60 + 30 * ROUNDS)
def test_every_kill_after_a_knob_change_comes_back_reverted(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    """N kills at random instants after the change: N starts with the original."""
    rng = random.Random(15)
    daemon = make_daemon(CONFIG).start()
    killed_with_change = 0
    for round_number in range(ROUNDS):
        assert knob_on_disk(daemon) in {None, (INITIAL, "config"), (INITIAL, "revert")}
        assert INITIAL == daemon.request("knobs")["knobs"]["batch.size"]["value"]
        # A fresh series fires a fresh alert; 30 samples make the baseline.
        daemon.send_datagrams([f"latency:500|ms|#round:{round_number}"] * 30)
        changed = wait_until(
            lambda: (
                (k := knob_on_disk(daemon)) is not None
                and k[1].startswith("optimizer:")
                and k
            ),
            timeout=30,
        )
        assert INITIAL / 2 == changed[0]
        time.sleep(rng.uniform(0.0, 0.3))
        daemon.signal(signal.SIGKILL)
        assert daemon.process is not None
        daemon.process.wait(10)
        killed_with_change += knob_on_disk(daemon) == changed
        daemon.start()
    assert INITIAL == daemon.request("knobs")["knobs"]["batch.size"]["value"]
    # The change was on disk at the kill every time; every start reverted it once.
    assert ROUNDS == killed_with_change
    reverted = daemon.log_events("optimizer.reverted")
    assert ROUNDS == len(reverted)
    assert len({e["correlation_id"] for e in reverted}) == ROUNDS
    assert all("restored at start" in e["reason"] for e in reverted)
