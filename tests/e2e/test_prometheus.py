"""``/metrics`` of a real daemon: the HTTP listener, and a real Prometheus scraping it.

The Prometheus test runs Debian's ``prometheus`` binary on a temporary config,
storage and port (never the system service); it skips when the binary is absent
(``apt-get install -y --no-install-recommends prometheus``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

from .conftest import BASE_CONFIG

HTTP_CONFIG = BASE_CONFIG + 'http:\n  listen: "127.0.0.1:0"\n'
DOCS = Path(__file__).resolve().parents[2] / "docs" / "prometheus.md"


def http_port(daemon: DaemonProcess) -> int:
    return int(daemon.wait_log("http.started")["port"])


def get(
    url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    _, _, body = get(f"http://127.0.0.1:{port}/metrics")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


@pytest.fixture(name="http_daemon")
def _http_daemon(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    return make_daemon(HTTP_CONFIG).start()


def test_metrics_reflect_the_daemon(http_daemon: DaemonProcess) -> None:
    port = http_port(http_daemon)
    http_daemon.send_datagrams(
        [f"context_loading_time:{80 + i % 10}|ms|#route:/a,my.tag:x" for i in range(40)]
        + ["garbage", "quality_retention_score:0.97|g"]
    )
    http_daemon.wait_received(42)
    stats = http_daemon.cli_json("stats", "context_loading_time")["series"][0]
    got = scrape(port)
    labels = {"metric": "context_loading_time", "type": "ms", "route": "/a"}
    labels["my_tag"] = "x"
    means = {
        tuple(sorted(lab.items())): v
        for lab, v in got["perfwarden_series_mean_seconds"]
    }
    # stats speaks the configured unit (ms), /metrics the base unit (seconds).
    assert stats["mean"] / 1000 == pytest.approx(means[tuple(sorted(labels.items()))])
    assert [({}, 42.0)] == got["perfwarden_ingest_received_lines_total"]
    assert [({"reason": "no_type"}, 1.0)] == got[
        "perfwarden_ingest_malformed_lines_total"
    ]
    ok = [
        lab
        for lab, v in got["perfwarden_alert_state"]
        if v == 1.0 and lab["metric"] == "context_loading_time"
    ]
    assert ["ok"] == [lab["state"] for lab in ok]
    plugins = {lab["plugin"] for lab, _ in got["perfwarden_plugin_actions_total"]}
    assert "compression" in plugins


def test_http_details(http_daemon: DaemonProcess) -> None:
    port = http_port(http_daemon)
    status, headers, body = get(
        f"http://127.0.0.1:{port}/metrics",
        {"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert 200 == status
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert "close" == headers["Connection"]
    assert body.endswith(b"# EOF\n")
    assert 404 == get(f"http://127.0.0.1:{port}/nope")[0]
    reply = raw(port, b"POST /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405 ")
    assert b"Allow: GET" in reply
    reply = raw(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert raw(port, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    # The daemon is unharmed.
    assert 200 == get(f"http://127.0.0.1:{port}/metrics")[0]


def test_listener_is_off_by_default_and_follows_reload(
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = make_daemon(BASE_CONFIG).start()
    assert daemon.config_path is not None
    assert not daemon.log_events("http.started")
    daemon.config_path.write_text(HTTP_CONFIG)
    assert daemon.cli("reload").returncode == 0
    port = http_port(daemon)
    # The file watcher reloads too: count at least the one asked for.
    got = scrape(port)
    reloads = {lab["result"]: v for lab, v in got["perfwarden_config_reloads_total"]}
    assert reloads["ok"] >= 1
    assert 0 == reloads["rejected"]
    assert [({}, 1.0)] == got["perfwarden_config_last_reload_successful"]
    daemon.config_path.write_text(HTTP_CONFIG + "bogus: 1\n")
    assert daemon.cli("reload").returncode == 1
    got = scrape(port)
    assert [({}, 0.0)] == got["perfwarden_config_last_reload_successful"]
    reloads = {lab["result"]: v for lab, v in got["perfwarden_config_reloads_total"]}
    assert reloads["rejected"] >= 1
    daemon.config_path.write_text(BASE_CONFIG)
    assert daemon.cli("reload").returncode == 0
    daemon.wait_log("http.stopped")
    with pytest.raises(OSError, match="refused"):
        raw(port, b"GET /metrics HTTP/1.1\r\n\r\n")


def test_probes_head_and_gzip(http_daemon: DaemonProcess) -> None:
    """Health and readiness paths, HEAD without a body, gzip when accepted."""
    port = http_port(http_daemon)
    base = f"http://127.0.0.1:{port}"
    assert (200, b"perfwarden is healthy.\n") == get(f"{base}/-/healthy")[::2]
    assert (200, b"perfwarden is ready.\n") == get(f"{base}/-/ready")[::2]
    http_daemon.send_datagrams([f"context_loading_time:{i}|ms" for i in range(50)])
    http_daemon.wait_received(50)
    _, plain_headers, plain = get(f"{base}/metrics")
    assert "Content-Encoding" not in plain_headers
    status, headers, packed = get(
        f"{base}/metrics", {"Accept-Encoding": "deflate, gzip;q=0.5"}
    )
    assert 200 == status
    assert "gzip" == headers["Content-Encoding"]
    assert int(headers["Content-Length"]) == len(packed) < len(plain)
    text = gzip.decompress(packed).decode()
    assert "perfwarden_ingest_received_lines_total 50.0" in text
    refused = get(f"{base}/metrics", {"Accept-Encoding": "gzip;q=0"})[1]
    assert "Content-Encoding" not in refused
    reply = raw(port, b"HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: " in head
    assert b"" == body


# -- a real Prometheus ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def documented_rules() -> str:
    """The alerting rules file shown in docs/prometheus.md."""
    text = DOCS.read_text()
    match = re.search(r"```yaml\n(groups:\n.*?)```", text, re.DOTALL)
    assert match, "docs/prometheus.md shows no rules file"
    return match.group(1)


@contextlib.contextmanager
def prometheus(target_port: int, workdir: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "no prometheus binary "
            "(apt-get install -y --no-install-recommends prometheus)"
        )
    (workdir / "rules.yml").write_text(documented_rules())
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs:\n"
        "  - job_name: perfwarden\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
    )
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        status, _, body = get(url)
    except OSError:
        return []  # not listening yet
    if status != 200:
        return []
    document = json.loads(body)
    assert "success" == document["status"], document
    result: list[dict[str, Any]] = document["data"]["result"]
    return result


def test_a_real_prometheus_scrapes_perfwarden(
    http_daemon: DaemonProcess, tmp_path: Path
) -> None:
    port = http_port(http_daemon)
    http_daemon.send_datagrams(
        [f"context_loading_time:{250 + i % 5}|ms|#route:/search" for i in range(60)]
    )
    http_daemon.wait_received(60)
    wait_until(
        lambda: "critical" in http_daemon.cli_json("stats")["series"][0]["status"],
        timeout=30,
    )
    with prometheus(port, tmp_path) as base:
        up = wait_until(lambda: query(base, 'up{job="perfwarden"} == 1'), timeout=60)
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        promql = 'perfwarden_series_mean_seconds{metric="context_loading_time"}'
        (mean,) = wait_until(lambda: query(base, promql), timeout=30)
        assert "/search" == mean["metric"]["route"]
        assert float(mean["value"][1]) == pytest.approx(0.252)
        # The summary: its count and sum, and its quantiles, in seconds.
        value = "perfwarden_series_value_seconds"
        rate = f"{value}_sum / {value}_count"
        (average,) = wait_until(lambda: query(base, rate), timeout=30)
        assert float(average["value"][1]) == pytest.approx(0.252)
        p99 = 'perfwarden_series_value_seconds{quantile="0.99"}'
        (quantile,) = wait_until(lambda: query(base, p99), timeout=30)
        assert float(quantile["value"][1]) == pytest.approx(0.254, abs=1e-3)
        level = 'perfwarden_alert_level{metric="context_loading_time"}'
        (firing,) = wait_until(lambda: query(base, level), timeout=30)
        assert "2" == firing["value"][1]
        # The documented alerting rules load and fire on this data.
        alerts = wait_until(
            lambda: query(base, 'ALERTS{alertname="PerfwardenCritical"}'), timeout=30
        )
        assert "context_loading_time" == alerts[0]["metric"]["metric"]
