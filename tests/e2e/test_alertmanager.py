"""The Alertmanager route against a real Alertmanager.

Runs Debian's ``prometheus-alertmanager`` on a temporary config, storage and port
(clustering off, never the system service); skips when the binary is absent
(``apt-get install -y --no-install-recommends prometheus-alertmanager``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.testing import DaemonProcess, wait_until

from .test_prometheus import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

ALERTMANAGER_CONFIG = """\
route:
  receiver: nobody
  group_by: [metric]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nobody
"""


def daemon_config(port: int, resend: str) -> str:
    return f"""\
version: 1
statistics: {{window: 200, min_samples: 10}}
evaluation: {{interval: 1s, basis: ci, window: 20}}
metrics:
  context_loading_time: {{unit: ms, bound: upper, warning: 150, critical: 200}}
alertmanager:
  urls: ["http://127.0.0.1:{port}"]
  resend_interval: {resend}
  timeout: 2s
  labels: {{cluster: test}}
  external_url: "http://perfwarden.example:9464"
"""


def call(base: str, path: str, payload: object | None = None) -> tuple[int, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body = response.read()
            return response.status, json.loads(body) if body.strip() else None
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, None


@contextlib.contextmanager
def alertmanager(workdir: Path, port: int) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip(
            "no alertmanager binary (apt-get install -y --no-install-recommends "
            "prometheus-alertmanager)"
        )
    config = workdir / "alertmanager.yml"
    config.write_text(ALERTMANAGER_CONFIG)
    base = f"http://127.0.0.1:{port}"
    with (workdir / "alertmanager.log").open("ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: call(base, "/api/v2/status")[0] == 200, timeout=60)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def active(base: str) -> list[dict[str, Any]]:
    status, alerts = call(base, "/api/v2/alerts?active=true&silenced=true")
    if status != 200:
        return []
    now = datetime.now(UTC)
    return [a for a in alerts if datetime.fromisoformat(a["endsAt"]) > now]


def by_route(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["labels"]["route"]: a for a in alerts}


def test_alerts_appear_group_are_silenced_and_resolve(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """Two series fire, land in one group, one is silenced there, both resolve."""
    port = free_port()
    with alertmanager(tmp_path, port) as base:
        daemon = make_daemon(daemon_config(port, "30s")).start()
        daemon.send_datagrams(
            [
                f"context_loading_time:{250 + i % 5}|ms|#route:/{r}"
                for i in range(30)
                for r in "ab"
            ]
        )
        alerts = wait_until(lambda: len(active(base)) == 2 and active(base), timeout=60)
        alert = by_route(alerts)["/a"]
        labels = alert["labels"]
        assert {
            "alertname": "PerfwardenCritical",
            "metric": "context_loading_time",
            "severity": "critical",
            "job": "perfwarden",
            "cluster": "test",
            "route": "/a",
        }.items() <= labels.items()
        assert labels["instance"]
        notes = alert["annotations"]
        assert "252 ms" == notes["observed"]
        assert "200 ms" == notes["threshold"]
        assert notes["interval"].startswith("[")
        assert "context_loading_time is critical" in notes["summary"]
        assert alert["generatorURL"].startswith("http://perfwarden.example:9464/#")
        assert datetime.fromisoformat(alert["startsAt"]) <= datetime.now(UTC)

        status, groups = call(base, "/api/v2/alerts/groups")
        assert 200 == status
        (group,) = [g for g in groups if g["alerts"]]
        assert {"metric": "context_loading_time"} == group["labels"]
        assert 2 == len(group["alerts"])

        now = datetime.now(UTC)
        status, _ = call(
            base,
            "/api/v2/silences",
            {
                "matchers": [
                    {"name": "route", "value": "/a", "isRegex": False},
                    {
                        "name": "metric",
                        "value": "context_loading_time",
                        "isRegex": False,
                    },
                ],
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(hours=1)).isoformat(),
                "createdBy": "test",
                "comment": "muted in Alertmanager",
            },
        )
        assert 200 == status

        def states() -> dict[str, str]:
            return {r: a["status"]["state"] for r, a in by_route(active(base)).items()}

        assert {"/a": "suppressed", "/b": "active"} == wait_until(
            lambda: states() == {"/a": "suppressed", "/b": "active"} and states(),
            timeout=30,
        )
        daemon.send_datagrams(
            [
                f"context_loading_time:{50 + i % 5}|ms|#route:/{r}"
                for i in range(40)
                for r in "ab"
            ]
        )
        # Firing pushes said endsAt = now + 4 x 30 s: gone sooner, it was resolved.
        wait_until(lambda: active(base) == [], timeout=60)
        status, alerts = call(base, "/api/v2/alerts?active=true&silenced=true")
        assert all(
            datetime.fromisoformat(a["endsAt"]) <= datetime.now(UTC) for a in alerts
        )


def test_alerts_reach_an_alertmanager_that_was_down(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """Fired while Alertmanager is away, the alert arrives once it is up and is
    re-sent while it fires; the failure is logged once and counted in /metrics."""
    port = free_port()
    daemon = make_daemon(
        daemon_config(port, "1s") + 'http:\n  listen: "127.0.0.1:0"\n'
    ).start()
    daemon.send_datagrams([f"context_loading_time:{250 + i % 5}|ms" for i in range(30)])
    failed = daemon.wait_log("alertmanager.failed", timeout=60)
    assert f"http://127.0.0.1:{port}" == failed["url"]
    with alertmanager(tmp_path, port) as base:
        (alert,) = wait_until(lambda: active(base), timeout=60)
        assert "critical" == alert["labels"]["severity"]
        daemon.wait_log("alertmanager.recovered", timeout=30)
        http = int(daemon.wait_log("http.started")["port"])
        url = f'alertmanager="http://127.0.0.1:{port}"'

        def count(name: str) -> float:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{http}/metrics", timeout=10
            ) as response:
                text = response.read().decode()
            prefix = f"{name}{{{url}}} "
            (line,) = [x for x in text.splitlines() if x.startswith(prefix)]
            return float(line.removeprefix(prefix))

        # One transition, then a push every resend_interval while it fires.
        wait_until(
            lambda: count("perfwarden_alertmanager_notifications_total") >= 3,
            timeout=60,
        )
        assert count("perfwarden_alertmanager_notifications_failed_total") >= 1
    assert 1 == len(daemon.log_events("alertmanager.failed"))
