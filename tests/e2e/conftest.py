"""Fixtures that run real daemon processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import DaemonProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BASE_CONFIG = """\
version: 1
statistics:
  confidence_level: 0.95
  window: 1000
  min_samples: 30
evaluation:
  interval: 1s
  basis: ci
metrics:
  context_loading_time:
    unit: ms
    bound: upper
    target: 100
    warning: 150
    critical: 200
  quality_retention_score:
    bound: lower
    target: 0.95
    warning: 0.90
    critical: 0.85
    guard: true
"""


@pytest.fixture(name="make_daemon")
def _make_daemon() -> Iterator[Callable[..., DaemonProcess]]:
    """A factory of daemon processes, all closed at the end of the test."""
    daemons: list[DaemonProcess] = []

    def make(config_text: str | None = BASE_CONFIG, **kwargs: object) -> DaemonProcess:
        daemon = DaemonProcess(config_text, **kwargs)  # type: ignore[arg-type]
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.close()


@pytest.fixture(name="daemon")
def _daemon(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """One running daemon on the base config."""
    return make_daemon().start()


ACME_DIST = Path(__file__).parent.parent / "data" / "plugins" / "acme_tuner"


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(name="pip")
def _pip_fixture() -> Callable[..., None]:
    """``pip(...)`` into the environment the daemon runs in."""
    return _pip


@pytest.fixture(name="acme_installed")
def _acme_installed(tmp_path: Path) -> Iterator[None]:
    """The acme-tuner plugin distribution pip-installed, then removed."""
    source = tmp_path / "acme_tuner"
    shutil.copytree(ACME_DIST, source)
    _pip("install", "--no-build-isolation", "--no-deps", str(source))
    try:
        yield
    finally:
        _pip("uninstall", "-y", "acme-tuner")
