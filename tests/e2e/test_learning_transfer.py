"""``perfwarden learning export`` / ``import`` against a real daemon: the fleet
prior moves the learned weight in ``/metrics``, survives a restart, and a bad
file is refused with its name."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

from .conftest import BASE_CONFIG

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from perfwarden.testing import DaemonProcess

CONFIG = BASE_CONFIG + 'http:\n  listen: "127.0.0.1:0"\n'


def weights(daemon: DaemonProcess) -> dict[str, float]:
    daemon.wait_log("http.started")
    port = int(daemon.log_events("http.started")[-1]["port"])  # after a restart too
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    prefix = 'perfwarden_learning_weight{strategy="'
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, _, value = line.removeprefix(prefix).partition('"} ')
            out[name] = float(value)
    return out


def test_export_import_and_metrics(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """Two hosts' exports are summed into the prior; it outlives a restart."""
    daemon = make_daemon(CONFIG).start()
    exported = daemon.cli("learning", "export")
    assert 0 == exported.returncode, exported.stderr
    document = json.loads(exported.stdout)
    assert ("perfwarden-learning", 1, {}) == (
        document["format"],
        document["version"],
        document["strategies"],
    )
    assert 1.0 == weights(daemon)["context_compression"]

    for host, kept, reverted in (("a", 6, 1), ("b", 3, 0)):
        (tmp_path / f"{host}.json").write_text(
            json.dumps(
                {
                    **document,
                    "host": host,
                    "strategies": {
                        "context_compression": {
                            "successes": kept,
                            "trials": kept + reverted,
                        }
                    },
                }
            )
        )
    imported = daemon.cli(
        "learning",
        "import",
        str(tmp_path / "a.json"),
        str(tmp_path / "b.json"),
        "--weight",
        "0.5",
    )
    assert 0 == imported.returncode, imported.stderr
    assert "imported 10 trials of 1 strategies" in imported.stdout
    assert "from a, b at weight 0.5" in imported.stdout
    # Beta(1 + 0.5 * 9, 1 + 0.5 * 1): mean 5.5 / 7, relative to 0.5.
    expected = 1.0 * (5.5 / 7) / 0.5
    assert abs(weights(daemon)["context_compression"] - expected) < 1e-9
    logged = daemon.wait_log("learning.imported")
    assert ["a", "b"] == logged["hosts"]
    status = daemon.cli_json("status")["learning"]["fleet_import"]
    assert 0.5 == status["weight"]

    daemon.stop()
    daemon.start()
    assert abs(weights(daemon)["context_compression"] - expected) < 1e-9


def test_a_bad_file_is_refused_with_its_name(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """Nothing is imported when one of the files is not an export."""
    daemon = make_daemon(CONFIG).start()
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else", "version": 1}')
    result = daemon.cli("learning", "import", str(bad))
    assert 1 == result.returncode
    assert f'{bad}: "format" must be "perfwarden-learning"' in result.stderr
    missing = daemon.cli("learning", "import", str(tmp_path / "nope.json"))
    assert 1 == missing.returncode
    assert "nope.json: No such file or directory" in missing.stderr
    assert daemon.cli_json("status")["learning"]["fleet_import"] is None
