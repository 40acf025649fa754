"""docs/grafana-dashboard.json: every PromQL query in it (panels and template
variables) runs against a real Prometheus scraping a real daemon, and returns data.

Grafana itself is not in Debian; what can break is the queries, so they are what
is checked, with Grafana's variables replaced as a dashboard with "All" selected
would (``$metric`` and ``$instance`` match everything, ``$__rate_interval`` 1m).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfwarden.testing import wait_until

from .conftest import BASE_CONFIG
from .test_prometheus import http_port, prometheus, query

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from perfwarden.testing import DaemonProcess

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
VARIABLES = {"$instance": ".+", "$metric": ".+", "$__rate_interval": "1m"}
LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+), *(?P<label>\w+)\)")


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def substituted(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def dashboard_queries() -> list[tuple[str, str, str | None]]:
    """(where, PromQL, label that must be present) for every query."""
    document = json.loads(DASHBOARD.read_text())
    out: list[tuple[str, str, str | None]] = []
    for variable in document["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = LABEL_VALUES.fullmatch(variable["query"]["query"])
        assert match, variable
        out.append(
            (
                f"variable {variable['name']}",
                substituted(match["selector"]),
                match["label"],
            )
        )
    for panel in panels(document["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert "${datasource}" == panel["datasource"]["uid"]
        out.extend(
            (f"panel {panel['title']!r}", substituted(target["expr"]), None)
            for target in panel["targets"]
        )
    return out


def test_the_dashboard_is_well_formed() -> None:
    """Unique panel ids, a uid, and every panel on the 24-column grid."""
    document = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in panels(document["panels"])]
    assert len(ids) == len(set(ids))
    assert document["uid"]
    for panel in panels(document["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_every_query_returns_data(
    make_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    daemon = make_daemon(BASE_CONFIG + 'http:\n  listen: "127.0.0.1:0"\n').start()
    port = http_port(daemon)
    daemon.send_datagrams(
        [f"context_loading_time:{250 + i % 5}|ms|#route:/search" for i in range(60)]
        + [f"quality_retention_score:{0.97 + i % 3 / 100}|g" for i in range(60)]
        + ["garbage"]
    )
    daemon.wait_received(121)
    wait_until(
        lambda: any(
            s["status"] == "critical" for s in daemon.cli_json("stats")["series"]
        ),
        timeout=30,
    )
    queries = dashboard_queries()
    assert len(queries) >= 15
    with prometheus(port, tmp_path) as base:
        wait_until(lambda: query(base, 'up{job="perfwarden"} == 1'), timeout=60)
        for where, promql, label in queries:
            result = wait_until(lambda q=promql: query(base, q), timeout=60)
            assert result, f"{where}: {promql} returned nothing"
            if label is not None:
                assert all(label in r["metric"] for r in result), (where, result)
