"""``perfwarden learning export`` / ``import`` against a real daemon: the fleet
prior moves the learned weight in ``/metrics``, survives a restart, is weighted
by ``--weight`` or else ``optimizer.fleet_prior_weight``, and a bad file is
refused with its name; ``export --state-dir`` reads the daemon's
``state.db`` without it, or beside it, and never writes the file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING

from perfwarden.app import Daemon
from perfwarden.config.load import parse_config

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


def test_the_configured_weight_unless_the_flag_says_otherwise(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """Without ``--weight`` the import takes ``optimizer.fleet_prior_weight``;
    with it, the flag wins."""
    daemon = make_daemon(CONFIG + "optimizer:\n  fleet_prior_weight: 0.25\n").start()
    export = tmp_path / "a.json"
    export.write_text(
        json.dumps(
            {
                "format": "perfwarden-learning",
                "version": 1,
                "host": "a",
                "strategies": {"context_compression": {"successes": 8, "trials": 8}},
            }
        )
    )
    configured = daemon.cli("learning", "import", str(export))
    assert 0 == configured.returncode, configured.stderr
    assert "from a at weight 0.25" in configured.stdout
    assert 0.25 == daemon.cli_json("status")["learning"]["fleet_import"]["weight"]
    # Beta(1 + 0.25 * 8, 1): mean 3 / 4, relative to 0.5.
    assert abs(weights(daemon)["context_compression"] - 1.5) < 1e-9
    flagged = daemon.cli("learning", "import", str(export), "--weight", "2")
    assert 0 == flagged.returncode, flagged.stderr
    assert "from a at weight 2" in flagged.stdout
    assert 2.0 == daemon.cli_json("status")["learning"]["fleet_import"]["weight"]


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


def offline_export(state_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``perfwarden learning export --state-dir``, with no daemon's socket about."""
    command = ["learning", "export", "--state-dir", str(state_dir)]
    return subprocess.run(
        [sys.executable, "-m", "perfwarden", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PERFWARDEN_SOCKET_DIR": str(tmp_path / "no-daemon")},
    )


def outcomes(document: dict[str, object]) -> tuple[object, object]:
    return document["strategies"], document["by_metric"]


def test_offline_export_reads_the_state_file(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """Beside the running daemon it exports what the daemon does; with the
    daemon stopped, the same, and the state file is left byte for byte."""
    text = CONFIG + "state:\n  checkpoint_interval: 200ms\n"
    daemon = make_daemon(text)
    # Outcomes recorded and saved by the daemon's own learning and writer.
    prepared = Daemon(
        parse_config(text), tmp_path / "x.yaml", tmp_path / "x", daemon.state_dir
    )
    prepared.state.restore()
    for metric, verdict in (("context_loading_time", "kept"),) * 3 + (
        ("context_loading_time", "reverted"),
        ("quality_retention_score", "kept"),
    ):
        prepared.learning.record(
            strategy="context_compression",
            plugin="compression",
            metric=metric,
            tags={},
            verdict=verdict,
            improvement=0.2,
        )

    async def write() -> None:
        assert await prepared.state.checkpoint(final=True)
        await prepared.state.close()

    asyncio.run(write())
    daemon.start()
    online = daemon.cli("learning", "export")
    assert 0 == online.returncode, online.stderr
    expected = outcomes(json.loads(online.stdout))
    assert {"context_compression": {"successes": 4, "trials": 5}} == expected[0]
    beside = offline_export(daemon.state_dir, tmp_path)
    assert 0 == beside.returncode, beside.stderr
    assert expected == outcomes(json.loads(beside.stdout))

    assert 0 == daemon.stop()
    state = daemon.state_dir / "state.db"
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    files = sorted(p.name for p in daemon.state_dir.iterdir())
    alone = offline_export(daemon.state_dir, tmp_path)
    assert 0 == alone.returncode, alone.stderr
    document = json.loads(alone.stdout)
    assert ("perfwarden-learning", 1) == (document["format"], document["version"])
    assert expected == outcomes(document)
    assert before == hashlib.sha256(state.read_bytes()).hexdigest()
    assert files == sorted(p.name for p in daemon.state_dir.iterdir())


def test_offline_export_refuses_what_is_not_a_state_file(tmp_path: Path) -> None:
    """A directory without state.db, or a foreign file, is named in the error."""
    missing = offline_export(tmp_path, tmp_path)
    assert 1 == missing.returncode
    assert f"{tmp_path / 'state.db'}: no state file" in missing.stderr
    (tmp_path / "state.db").write_text("not a database, just text\n" * 100)
    foreign = offline_export(tmp_path, tmp_path)
    assert 1 == foreign.returncode
    assert "not a perfwarden state database" in foreign.stderr
