"""The Prometheus exposition: label sanitising, values read from a real daemon's
state (not running: its store, evaluator, knobs and counters), the text format, and
the ``http:`` config section."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from perfwarden.app import Daemon
from perfwarden.config.load import ConfigError, parse_config
from perfwarden.series.stats import mean_interval, summarize
from perfwarden.views.exposition import (
    Exposition,
    label_name,
    quantiles,
    series_labels,
)
from perfwarden.views.http_server import dashboard_state

if TYPE_CHECKING:
    from pathlib import Path

CONFIG = """\
version: 1
statistics: {min_samples: 10, window: 100}
evaluation: {window: 20}
metrics:
  latency: {unit: ms, bound: upper, target: 100, warning: 150, critical: 200}
knobs:
  compression.ratio: {min: 0.1, max: 0.9, step: 0.1, initial: 0.4}
  mode: {choices: [fast, safe], initial: safe}
http:
  listen: "127.0.0.1:9464"
"""


@pytest.fixture(name="daemon")
def _daemon(tmp_path: Path) -> Daemon:
    config = parse_config(CONFIG)
    return Daemon(config, tmp_path / "perfwarden.yaml", tmp_path / "run", tmp_path)


def feed(daemon: Daemon, *lines: str) -> None:
    daemon.ingestor.feed("\n".join(lines).encode())
    daemon.ingestor.commit()
    daemon.evaluator.evaluate(list(daemon.store))


def samples(daemon: Daemon) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Exposition text parsed back: sample name -> [(labels, value)]."""
    body, _ = Exposition(daemon).scrape_now()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


@pytest.mark.parametrize(
    ("tag", "label"),
    [
        ("route", "route"),
        ("my.tag", "my_tag"),
        ("My-Tag", "My_Tag"),
        ("0day", "_0day"),
        ("région", "r_gion"),
        ("", "_"),
        ("__name__", "tag___name__"),
        ("metric", "tag_metric"),
        ("type", "tag_type"),
        ("state", "tag_state"),
        ("quantile", "tag_quantile"),
        ("job", "tag_job"),
        ("instance", "tag_instance"),
    ],
)
def test_label_names_follow_prometheus_rules(tag: str, label: str) -> None:
    assert label == label_name(tag)


def test_series_labels_handle_collisions_and_bare_tags(daemon: Daemon) -> None:
    feed(daemon, "latency:1|ms|#a.b:1,a-b:2,a_b:3,canary,empty:,metric:x")
    (series,) = list(daemon.store)
    labels = series_labels(series)
    assert {
        "metric": "latency",
        "type": "ms",
        "a_b": "2",  # a-b sorts first
        "a_b_2": "1",
        "a_b_3": "3",
        "canary": "true",
        "empty": "",
        "tag_metric": "x",
    } == labels


def test_values_match_the_store(daemon: Daemon) -> None:
    values = np.arange(90.0, 120.0)
    feed(daemon, *(f"latency:{v}|ms|#route:/search" for v in values))
    got = samples(daemon)
    labels = {"metric": "latency", "type": "ms", "route": "/search"}

    def one(name: str, extra: dict[str, str] | None = None) -> float:
        want = {**labels, **(extra or {})}
        (value,) = [v for lab, v in got[name] if lab == want]
        return value

    # Configured in ms, exposed in seconds.
    seconds = values / 1000
    assert math.isclose(one("perfwarden_series_mean_seconds"), float(seconds.mean()))
    assert one("perfwarden_series_samples") == 30
    assert one("perfwarden_series_received_samples_total") == 30
    low = one("perfwarden_series_ci_low_seconds")
    high = one("perfwarden_series_ci_high_seconds")
    assert low < seconds.mean() < high
    for q in ("0.5", "0.95", "0.99"):
        expected = float(np.percentile(seconds, float(q) * 100))
        assert math.isclose(
            one("perfwarden_series_value_seconds", {"quantile": q}), expected
        )
    assert 30 == one("perfwarden_series_value_seconds_count")
    assert math.isclose(one("perfwarden_series_value_seconds_sum"), seconds.sum())
    states = {
        lab["state"]: v for lab, v in got["perfwarden_alert_state"] if lab["type"]
    }
    assert 1.0 == states.pop("ok")
    assert set(states.values()) == {0.0}
    assert 0.0 == one("perfwarden_alert_level")


def test_many_wrapped_windows_match_their_own_statistics(tmp_path: Path) -> None:
    """Series computed in several blocks, their windows wrapped, some of them
    autocorrelated: each one's mean, interval and quantiles are the window's."""
    config = parse_config("version: 1\nstatistics: {window: 1100, min_samples: 10}\n")
    daemon = Daemon(config, tmp_path / "p.yaml", tmp_path / "run", tmp_path)
    rng = np.random.default_rng(5)
    count = 70  # blocks of 29 windows of 1100 samples: 29 + 29 + 12
    walk = np.cumsum(rng.normal(size=(count, 1300)), axis=1).round(3)
    noise = rng.normal(100.0, 10.0, size=(count, 1300))
    data = np.where(np.arange(count)[:, np.newaxis] % 2 == 0, walk, noise)
    for column in data.T:
        daemon.ingestor.feed(
            "".join(f"g:{v!r}|g|#n:{i}\n" for i, v in enumerate(column)).encode()
        )
        daemon.ingestor.commit()
    got = samples(daemon)

    def one(name: str, series: str, extra: dict[str, str] | None = None) -> float:
        want = {"metric": "g", "type": "g", "n": series, **(extra or {})}
        (value,) = [v for lab, v in got[name] if lab == want]
        return value

    for series in daemon.store:
        key = series.tags[0].partition(":")[2]
        held = series.window.values()
        assert 1100 == held.shape[0]
        want = mean_interval(held, 0.95)
        scale = float(np.abs(held).max())
        for name, value in (
            ("perfwarden_series_mean", series.window.mean()),
            ("perfwarden_series_ci_low", want.low),
            ("perfwarden_series_ci_high", want.high),
        ):
            assert math.isclose(value, one(name, key), abs_tol=1e-12 * scale)
        percentiles = np.percentile(held, [50, 95, 99]).tolist()
        exposed = [
            one("perfwarden_series_value", key, {"quantile": q})
            for q in ("0.5", "0.95", "0.99")
        ]
        assert percentiles == exposed


def test_alert_state_and_level_when_firing(daemon: Daemon) -> None:
    feed(daemon, *(f"latency:{250 + i % 3}|ms" for i in range(30)))
    got = samples(daemon)
    state = {lab["state"]: v for lab, v in got["perfwarden_alert_state"]}
    assert 1.0 == state["critical"]
    assert [({"metric": "latency", "type": "ms"}, 2.0)] == got["perfwarden_alert_level"]


def test_unconfigured_series_have_no_alert_state(daemon: Daemon) -> None:
    feed(daemon, "other:1|g")
    got = samples(daemon)
    assert "perfwarden_alert_state" not in got
    assert [({"metric": "other", "type": "g"}, 1.0)] == got["perfwarden_series_mean"]
    # one sample: no interval yet
    assert "perfwarden_series_ci_low" not in got


def test_duplicate_label_sets_get_a_series_label(daemon: Daemon) -> None:
    feed(daemon, "latency:1|ms|#a.b:1", "latency:2|ms|#a_b:1")
    got = samples(daemon)["perfwarden_series_mean_seconds"]
    assert 2 == len(got)
    assert len({tuple(sorted(lab.items())) for lab, _ in got}) == 2
    assert any("series" in lab for lab, _ in got)


def test_counters_knobs_thresholds_and_reloads(daemon: Daemon) -> None:
    feed(daemon, "latency:1|ms", "bad", "latency:x|ms", "_e{1,1}:a|b")
    daemon.knobs.set("compression.ratio", 0.7, source="manual")
    daemon.last_reload = {"ok": False, "at": 123.0, "errors": ["x"]}
    got = samples(daemon)
    assert [({}, 4.0)] == got["perfwarden_ingest_received_lines_total"]
    assert [({}, 1.0)] == got["perfwarden_ingest_accepted_lines_total"]
    assert [({}, 1.0)] == got["perfwarden_ingest_ignored_lines_total"]
    malformed = {
        lab["reason"]: v for lab, v in got["perfwarden_ingest_malformed_lines_total"]
    }
    assert 2.0 == sum(malformed.values())
    assert [({"knob": "compression.ratio"}, 0.7)] == got["perfwarden_knob_value"]
    choices = {lab["choice"]: v for lab, v in got["perfwarden_knob_choice"]}
    assert {"fast": 0.0, "safe": 1.0} == choices
    thresholds = {
        lab["level"]: v for lab, v in got["perfwarden_metric_threshold_seconds"]
    }
    assert {"target": 0.1, "warning": 0.15, "critical": 0.2} == thresholds
    assert [({}, 0.0)] == got["perfwarden_config_last_reload_successful"]
    assert [({}, 123.0)] == got["perfwarden_config_last_reload_timestamp_seconds"]


def test_expired_series_leave_and_are_counted(daemon: Daemon) -> None:
    feed(daemon, "gone:1|g|#pid:7", "kept:1|g")
    series = daemon.store.get("gone|g|#pid:7")
    assert series is not None
    series.last_update -= 2 * daemon.config.statistics.expire_after
    daemon.expiry.sweep()
    got = samples(daemon)
    assert [({}, 1.0)] == got["perfwarden_series_expired_total"]
    assert [({}, 1.0)] == got["perfwarden_series"]
    assert [{"metric": "kept", "type": "g"}] == [
        labels for labels, _ in got["perfwarden_series_mean"]
    ]


def test_reload_counts_when_the_daemon_keeps_them(daemon: Daemon) -> None:
    daemon.reload_counts = {"ok": 3, "rejected": 1}  # type: ignore[attr-defined,unused-ignore]
    got = samples(daemon)
    reloads = {lab["result"]: v for lab, v in got["perfwarden_config_reloads_total"]}
    assert {"ok": 3.0, "rejected": 1.0} == reloads


def _without_clocks(body: bytes) -> list[str]:
    """Exposition lines without those that change between two scrapes."""
    return [
        line
        for line in body.decode().splitlines()
        if not line.startswith(("process_", "perfwarden_scrape_timestamp"))
    ]


def test_async_scrape_in_chunks_matches_one_go(daemon: Daemon) -> None:
    feed(daemon, *(f"m{i}:{i}|g" for i in range(50)))
    feed(daemon, *(f"latency:{v}|ms|#route:r{v % 3}" for v in range(60)))
    whole, _ = Exposition(daemon).scrape_now()
    chunked, _ = asyncio.run(Exposition(daemon, chunk=7).scrape())
    assert _without_clocks(whole) == _without_clocks(chunked)
    means = [
        s for s in _without_clocks(whole) if s.startswith("perfwarden_series_mean")
    ]
    assert 3 == len([s for s in means if s.startswith("perfwarden_series_mean_sec")])
    assert 53 == len(means)


def test_quantiles_follow_new_samples_between_scrapes(daemon: Daemon) -> None:
    exposition = Exposition(daemon)

    def median() -> float:
        body, _ = exposition.scrape_now()
        (family,) = [
            f
            for f in text_string_to_metric_families(body.decode())
            if f.name == "perfwarden_series_value_seconds"
        ]
        (value,) = [
            s.value for s in family.samples if s.labels.get("quantile") == "0.5"
        ]
        return round(value * 1000, 9)  # in ms again

    feed(daemon, *(f"latency:{v}|ms" for v in range(10)))
    assert 4.5 == median()
    assert 4.5 == median()  # remembered, unchanged
    feed(daemon, *(f"latency:{v}|ms" for v in range(100, 120)))
    assert float(np.percentile([*range(10), *range(100, 120)], 50)) == median()


def test_openmetrics_is_negotiated(daemon: Daemon) -> None:
    feed(daemon, "latency:1|ms")
    exposition = Exposition(daemon)
    body, content_type = exposition.scrape_now(
        "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
    )
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    body, content_type = exposition.scrape_now("*/*")
    assert content_type.startswith("text/plain; version=0.0.4")
    assert b"process_resident_memory_bytes" in body


def test_both_formats_parse_with_prometheus_client(daemon: Daemon) -> None:
    feed(
        daemon,
        *(f'latency:{v}|ms|#path:/a\\b"c,канал:ü' for v in range(30)),
        "hits:3|c",
        "users:alice|s",
    )
    daemon.store.roll_interval(1.0)
    exposition = Exposition(daemon)
    text, _ = exposition.scrape_now()
    openmetrics, _ = exposition.scrape_now("application/openmetrics-text")
    plain = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    strict = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in openmetrics_families(openmetrics.decode())
        for s in family.samples
    }
    clocks = ("process_", "perfwarden_scrape_timestamp")
    assert {k: v for k, v in plain.items() if not k[0].startswith(clocks)} == {
        k: v for k, v in strict.items() if not k[0].startswith(clocks)
    }
    labels = {"metric": "latency", "type": "ms", "path": '/a\\b"c', "tag______": "ü"}
    key = ("perfwarden_series_samples", tuple(sorted(labels.items())))
    assert 30.0 == plain[key]
    types = {f.name: f.type for f in openmetrics_families(openmetrics.decode())}
    assert "counter" == types["perfwarden_ingest_received_lines"]
    assert "gauge" == types["perfwarden_series_mean_seconds"]
    assert "summary" == types["perfwarden_series_value_seconds"]
    units = {f.name: f.unit for f in openmetrics_families(openmetrics.decode())}
    assert "seconds" == units["perfwarden_series_value_seconds"]
    assert "" == units["perfwarden_series_value"]  # the count and the set


@pytest.mark.parametrize(
    ("unit", "line", "name", "value"),
    [
        ("ms", "x:250|g", "perfwarden_series_mean_seconds", 0.25),
        ("us", "x:250|g", "perfwarden_series_mean_seconds", 0.00025),
        ("s", "x:2|ms", "perfwarden_series_mean_seconds", 2.0),
        ("MB", "x:3|g", "perfwarden_series_mean_bytes", 3 * 2.0**20),
        ("KiB", "x:2|g", "perfwarden_series_mean_bytes", 2048.0),
        ("percent", "x:40|g", "perfwarden_series_mean_ratio", 0.4),
        ("ratio", "x:0.4|g", "perfwarden_series_mean_ratio", 0.4),
        ("x", "x:3.5|g", "perfwarden_series_mean", 3.5),
        (None, "x:7|ms", "perfwarden_series_mean_seconds", 0.007),
        (None, "x:7|g", "perfwarden_series_mean", 7.0),
    ],
)
def test_values_in_base_units(
    tmp_path: Path, unit: str | None, line: str, name: str, value: float
) -> None:
    """The configured unit (or a timer's ms) becomes seconds, bytes or a ratio."""
    spec = f"unit: {unit}, " if unit else ""
    config = parse_config(f"version: 1\nmetrics:\n  x: {{{spec}bound: upper}}\n")
    daemon = Daemon(config, tmp_path / "c.yaml", tmp_path / "run", tmp_path)
    feed(daemon, line)
    ((_, got),) = samples(daemon)[name]
    assert math.isclose(value, got)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 6),
    data=st.data(),
)
def test_quantiles_equal_numpy_percentile(rows: int, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 300))
    values = data.draw(
        st.lists(
            st.floats(-1e12, 1e12, allow_nan=False),
            min_size=rows * n,
            max_size=rows * n,
        )
    )
    stacked = np.array(values, dtype=np.float64).reshape(rows, n)
    expected = np.percentile(stacked, [50, 95, 99], axis=1).T
    assert np.array_equal(expected, quantiles(stacked.copy()))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 6),
    data=st.data(),
)
def test_quantiles_of_float32_exact_values_equal_numpy_percentile(
    rows: int, data: st.DataObject
) -> None:
    """Values exact in float32 (sorted as float32) give np.percentile's result."""
    n = data.draw(st.integers(1, 300))
    values = data.draw(
        st.lists(
            st.integers(-(2**24), 2**24).map(lambda v: v / 4),
            min_size=rows * n,
            max_size=rows * n,
        )
    )
    stacked = np.array(values, dtype=np.float64).reshape(rows, n)
    expected = np.percentile(stacked, [50, 95, 99], axis=1).T
    assert np.array_equal(expected, quantiles(stacked.copy()))


def test_dashboard_state_holds_points_and_thresholds(daemon: Daemon) -> None:
    feed(daemon, *(f"latency:{v}|ms" for v in range(300)))
    state = asyncio.run(dashboard_state(daemon))
    (series,) = state["series"]
    assert 100 == len(series["points"])  # the window holds 100
    assert 299.0 == series["points"][-1]
    assert (100, 150, 200) == (series["target"], series["warning"], series["critical"])
    assert {"compression.ratio", "mode"} == set(state["knobs"])
    assert [] == state["actions"]


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ('"127.0.0.1:9464"', ("127.0.0.1", 9464)),
        ('"[::1]:0"', ("::1", 0)),
        ('"localhost:80"', ("localhost", 80)),
        ("null", None),
    ],
)
def test_http_listen_is_parsed(listen: str, expected: object) -> None:
    assert (
        expected == parse_config(f"version: 1\nhttp:\n  listen: {listen}\n").http.listen
    )


def test_http_is_off_by_default() -> None:
    assert parse_config("version: 1\n").http.listen is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  listen: 9464", "<string>:3: http.listen: must be a string"),
        ('  listen: "::1:80"', "<string>:3: http.listen: write an IPv6 address"),
        ('  listen: ":80"', '<string>:3: http.listen: must be "host:port"'),
        ('  listen: "a:65536"', '<string>:3: http.listen: must be "host:port"'),
        ('  listen: "a:http"', '<string>:3: http.listen: must be "host:port"'),
        (
            '  lisen: "a:1"',
            "<string>:3: http.lisen: unknown key; did you mean 'listen'?",
        ),
    ],
)
def test_bad_http_sections_are_reported_with_lines(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"version: 1\nhttp:\n{section}\n")
    assert str(caught.value).startswith(message)


def test_a_duration_interval_is_the_one_stats_gives(daemon: Daemon) -> None:
    """A skewed timing whose symmetric interval dips below zero is exposed with
    the log-scale interval `stats` shows (``ci_method: log-t``), never below 0,
    while a metric without a unit keeps the symmetric one."""
    skewed = [1.0] * 40 + [4000.0]
    feed(
        daemon,
        *(f"latency:{v}|ms" for v in skewed),
        *(f"queue:{v}|g" for v in skewed),
    )
    exposed = samples(daemon)
    (latency,) = [s for s in daemon.store if s.name == "latency"]
    shown = summarize(latency.window, 0.95, 10, non_negative=True)
    assert shown.ci_method == "log-t"
    (low,) = [v for labels, v in exposed["perfwarden_series_ci_low_seconds"]]
    (high,) = [v for labels, v in exposed["perfwarden_series_ci_high_seconds"]]
    assert low == pytest.approx(shown.ci_low / 1000, rel=1e-9)
    assert high == pytest.approx(shown.ci_high / 1000, rel=1e-9)
    (plain_low,) = [v for labels, v in exposed["perfwarden_series_ci_low"]]
    assert plain_low < 0.0
