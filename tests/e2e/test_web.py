"""The web dashboard of a real daemon, in headless Chromium.

Chromium (Debian's ``chromium``: ``apt-get install -y --no-install-recommends
chromium``) loads ``/`` with ``--dump-dom --virtual-time-budget``: the page must
show the metrics sent, keep polling ``/api/state``, and show new data on the next
load. Skips when no Chromium is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import wait_until

from .conftest import BASE_CONFIG

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from perfwarden.testing import DaemonProcess

CONFIG = (
    BASE_CONFIG
    + "knobs:\n  demo.level: {min: 0, max: 10, initial: 4}\n"
    + 'http:\n  listen: "127.0.0.1:0"\n'
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("no chromium (apt-get install -y --no-install-recommends chromium)")


def dump_dom(url: str, profile: Path, budget_ms: int = 4000) -> str:
    """The DOM after ``budget_ms`` of virtual time."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=90, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def card(dom: str, series: str) -> str:
    match = re.search(
        rf'<div class="card"[^>]*data-series="{re.escape(series)}".*?</div></div>',
        dom,
        re.DOTALL,
    )
    assert match, f"no card for {series}"
    return match.group(0)


@pytest.fixture(name="web")
def _web(make_daemon: Callable[..., DaemonProcess]) -> tuple[DaemonProcess, str]:
    daemon = make_daemon(CONFIG).start()
    port = int(daemon.wait_log("http.started")["port"])
    return daemon, f"http://127.0.0.1:{port}"


def test_api_state(web: tuple[DaemonProcess, str]) -> None:
    daemon, base = web
    daemon.send_datagrams([f"context_loading_time:{i % 100}|ms" for i in range(300)])
    daemon.wait_received(300)
    with urllib.request.urlopen(f"{base}/api/state", timeout=10) as response:  # noqa: S310
        assert "application/json" == response.headers["Content-Type"]
        state = json.loads(response.read())
    (series,) = [s for s in state["series"] if s["metric"] == "context_loading_time"]
    assert 240 == len(series["points"])
    assert 99.0 == series["points"][-1]
    assert 300 == series["sample_size"]
    assert 150 == series["warning"]
    assert 4 == state["knobs"]["demo.level"]["value"]
    assert 300 <= state["status"]["ingest"]["accepted"]


def test_dashboard_in_chromium(web: tuple[DaemonProcess, str], tmp_path: Path) -> None:
    daemon, base = web
    daemon.send_datagrams([f"context_loading_time:{90 + i % 7}|ms" for i in range(40)])
    daemon.wait_received(40)
    first = dump_dom(f"{base}/", tmp_path / "profile1")
    cloading = card(first, "context_loading_time|ms")
    assert '<span class="n">40</span>' in cloading
    assert 'class="ci"' in cloading  # the confidence band
    assert 'class="thr warning"' in cloading  # the thresholds
    assert 'class="thr critical"' in cloading
    assert "demo.level" in first  # the knobs table
    assert 'id="conn" class="">live' in first
    polls = int(re.search(r'data-polls="(\d+)"', first).group(1))  # type: ignore[union-attr]
    assert polls >= 2, "the page did not keep polling /api/state"

    # New data: the next load shows it (the count, a new metric, a firing alert).
    daemon.send_datagrams(
        [f"context_loading_time:{300 + i % 3}|ms" for i in range(200)]
        + [f"quality_retention_score:{0.97 + i % 2 / 100}|g" for i in range(35)]
    )
    daemon.wait_received(275)
    wait_until(
        lambda: (
            "critical"
            == daemon.request("stats", metrics=["context_loading_time"])["series"][0][
                "status"
            ]
        )
    )
    second = dump_dom(f"{base}/", tmp_path / "profile2")
    assert '<span class="n">240</span>' in card(second, "context_loading_time|ms")
    assert "quality_retention_score" in card(second, "quality_retention_score|g")
    assert '<span class="st critical">critical</span>' in second
