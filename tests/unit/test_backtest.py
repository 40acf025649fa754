"""The backtest: inputs and their problems, the replay's judgement, the command."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

import pytest

from perfwarden.backtest.replay import Replay
from perfwarden.backtest.sources import Problems, parse_time, read_csv, read_statsd
from perfwarden.backtest.timeline import compare, timelines
from perfwarden.cli import main
from perfwarden.config.load import parse_config
from perfwarden.recording.silences import SILENCES_PREFIX, encode_silences

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_765_000_000
CONFIG = """\
version: 1
statistics: {min_samples: 5}
evaluation: {interval: 1s, basis: mean, window: 5, missing_after: 30s}
metrics:
  latency: {bound: upper, warning: 150, critical: 250, for: FOR}
"""


def config(hold: str = "5s", **levels: float) -> str:
    text = CONFIG.replace("FOR", hold)
    for name, value in levels.items():
        text = text.replace(
            f"{name}: {150 if name == 'warning' else 250}", f"{name}: {value}"
        )
    return text


def write_statsd(path: Path, values: list[float], start: int = T0) -> Path:
    path.write_text(
        "".join(f"latency:{v}|ms|T{start + i}\n" for i, v in enumerate(values))
    )
    return path


def step_values(ok: int, bad: int, after: int, level: float = 200.0) -> list[float]:
    return [100.0] * ok + [level] * bad + [100.0] * after


class TestSources:
    def test_csv_shapes(self, tmp_path: Path) -> None:
        """Two columns (metric from the file name), three with Prometheus labels."""
        two = tmp_path / "lat.csv"
        two.write_text("timestamp,value\n1765000000,1.5\n2025-12-06T05:46:41,2\n")
        three = tmp_path / "export.csv"
        with three.open("w", newline="") as file:
            csv.writer(file).writerow([T0, 'latency{route="/a",__name__="x"}', 3])
        problems = Problems()
        assert [
            (1765000000.0, "lat|g", [1.5], None),
            (1765000001.0, "lat|g", [2.0], None),
        ] == list(read_csv(two, problems))
        assert [(1765000000.0, "latency|g|#route:/a", [3.0], None)] == list(
            read_csv(three, problems)
        )
        assert 0 == problems.count

    def test_csv_bad_rows_named_by_line(self, tmp_path: Path) -> None:
        """Bad rows and rows out of order are reported by line; the rest is read."""
        path = tmp_path / "lat.csv"
        path.write_text(
            "1765000005,1\n1765000006,x\nsoon,1\n1765000001,2\n1,2,3,4\n1765000007,3\n"
        )
        problems = Problems()
        assert [[1.0], [3.0]] == [c[2] for c in read_csv(path, problems)]
        assert 4 == problems.count
        assert [f"{path}:{n}" for n in (2, 3, 4, 5)] == [
            m.split(": ")[0] for m in problems.messages
        ]
        assert "before the previous line's" in problems.messages[2]

    def test_statsd_lines(self, tmp_path: Path) -> None:
        """Stamped lines are read; malformed, unstamped and late ones are reported."""
        path = tmp_path / "lines.statsd"
        path.write_text(
            f"latency:1|ms|T{T0}\nlatency:x|ms|T{T0}\nlatency:2|ms\n"
            f"latency:3|ms|T{T0 - 5}\n_e{{1,1}}:a|b\nlatency:4:5|ms|#a:b|T{T0 + 1}\n"
        )
        problems = Problems()
        chunks = list(read_statsd(path, problems))
        assert [
            (float(T0), "latency|ms", [1.0], float(T0)),
            (float(T0 + 1), "latency|ms|#a:b", [4.0, 5.0], float(T0 + 1)),
        ] == chunks
        assert [2, 3, 4] == [int(m.split(":")[1]) for m in problems.messages]
        assert "bad_value" in problems.messages[0]
        assert "no |T timestamp" in problems.messages[1]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1765000000", 1765000000.0),
            ("2025-12-06T05:46:40", 1765000000.0),
            ("2025-12-06T06:46:40+01:00", 1765000000.0),
            ("2h ago", 1_000_000.0 - 7200),
        ],
    )
    def test_times(self, text: str, expected: float) -> None:
        """Unix seconds, ISO 8601 (naive is UTC) and ``DURATION ago``."""
        assert expected == parse_time(text, now=1_000_000.0)

    def test_bad_time(self) -> None:
        """A time that is none of these says which forms work."""
        with pytest.raises(ValueError, match="unix seconds, ISO 8601"):
            parse_time("tomorrow")


def replay(text: str, path: Path, **options: float) -> Replay:
    engine = Replay(parse_config(text), **options)  # type: ignore[arg-type]
    engine.run(read_statsd(path, Problems()))
    return engine


class TestReplay:
    def test_for_holds_on_simulated_ticks(self, tmp_path: Path) -> None:
        """Pending when the mean crosses; fired ``for`` later on a tick; resolved."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        engine = replay(config(), path)
        steps = [(e.transition.value, e.at - T0) for e in engine.result.events]
        # Mean of 5 crosses 150 with the third 200 (t=12); fires 5 s later at a
        # tick; back under 150*(1-0.05) with the third 100 after (t=32).
        assert [("pending", 12.0), ("fired", 17.0), ("resolved", 32.0)] == steps

    def test_missing_after_gives_no_data(self, tmp_path: Path) -> None:
        """A silent series goes ``no_data`` after missing_after, on the ticks."""
        path = write_statsd(tmp_path / "l.statsd", [100.0] * 10)
        engine = Replay(parse_config(config()), end=T0 + 60)
        engine.run(read_statsd(path, Problems()))
        assert [("no_data", 40.0)] == [
            (e.transition.value, e.at - T0) for e in engine.result.events
        ]

    def test_from_to_and_metric_filters(self, tmp_path: Path) -> None:
        """--from/--to cut the history, --metric keeps only those names."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        cut = replay(config(), path, start=T0 + 20, end=T0 + 25)
        assert 6 == cut.result.samples
        engine = Replay(parse_config(config()), metrics=["other"])
        engine.run(read_statsd(path, Problems()))
        assert (0, []) == (engine.result.samples, engine.result.events)

    def test_compare_states_the_difference(self, tmp_path: Path) -> None:
        """Earlier, more and never-resolving fires are each said in a sentence."""
        values = step_values(10, 20, 10) + [300.0] * 20
        path = write_statsd(tmp_path / "l.statsd", values)
        new = replay(config("1s"), path).result
        current = replay(config("5s", critical=400), path).result
        differences = compare(
            timelines(new.events, new.end), timelines(current.events, current.end)
        )
        messages = [d["message"] for d in differences]
        assert "latency|ms would have fired 4s earlier" in messages
        kinds = {d["kind"] for d in differences}
        assert {"first_fire", "firing_time"} <= kinds


class TestCommand:
    def test_json_report_and_nothing_written(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Timelines, summary and difference; nothing lands in the state dir."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        new, cur = tmp_path / "new.yaml", tmp_path / "cur.yaml"
        new.write_text(config("1s"))
        cur.write_text(config("5s"))
        state = tmp_path / "state"
        state.mkdir()
        argv = ["backtest", "--config", str(new), "--against", str(cur)]
        argv += ["--input", str(path), "--state-dir", str(state), "--json"]
        assert 0 == main(argv)
        report = json.loads(capsys.readouterr().out)
        line = report["series"]["latency|ms"]
        assert ["pending", "fired", "resolved"] == [
            s["transition"] for s in line["transitions"]
        ]
        assert 1 == report["summary"]["fires"]
        assert "latency|ms would have fired 4s earlier" in [
            d["message"] for d in report["difference"]
        ]
        assert [] == list(state.iterdir())

    def test_text_report(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The text form lists transitions with their observations and durations."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        new = tmp_path / "new.yaml"
        new.write_text(config("1s"))
        assert 0 == main(["backtest", "--config", str(new), "--input", str(path)])
        out = capsys.readouterr().out
        assert "fired        warning   observed 160  threshold 150  after 1s" in out
        assert "summary: 1 fires on 1 series" in out

    def test_no_recording_is_a_clear_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without a recording or --input the command says how to get one."""
        assert 1 == main(["backtest", "--state-dir", str(tmp_path)])
        assert "turn it on with `recording: {enabled: true}`" in capsys.readouterr().err


class TestCheckConfig:
    def test_backtest_prints_the_difference(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """check-config NEW --backtest INPUT --against CURRENT: ok, then the change."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        new, cur = tmp_path / "new.yaml", tmp_path / "cur.yaml"
        new.write_text(config("1s"))
        cur.write_text(config("5s", warning=210))
        argv = ["check-config", str(new), "--backtest", str(path)]
        assert 0 == main([*argv, "--against", str(cur)])
        out = capsys.readouterr().out
        assert f"{new}: ok (1 metrics, 0 knobs)" in out
        assert "1 more fire on latency|ms (1, not 0)" in out
        assert "pending" not in out  # totals and difference only


class TestProgress:
    def test_share_of_input_read(self, tmp_path: Path) -> None:
        """The progress line shows the share of the inputs' bytes read so far."""
        from perfwarden.commands.backtest import _Progress

        path = tmp_path / "in.statsd"
        path.write_bytes(b"x" * 1000)
        stream = io.StringIO()
        progress = _Progress([path], stream)
        progress.add(250)
        progress.show(float(T0))
        progress.done()
        assert "\rreplaying (pass 1)  25%  at 2025-12-06 05:46:40Z" in stream.getvalue()


def silenced_replay(
    path: Path, records: list[tuple[float, list[dict[str, object]]]], **options: float
) -> list[tuple[str, float, bool]]:
    """The replay's ``(transition, at - T0, silenced)`` with silence records."""
    chunks = [
        (T0 + at, encode_silences(active), [], None) for at, active in records
    ] + list(read_statsd(path, Problems()))
    chunks.sort(key=lambda chunk: chunk[0])  # stable: a record before its sample
    engine = Replay(parse_config(config()), **options)  # type: ignore[arg-type]
    engine.run(chunks)
    return [(e.transition.value, e.at - T0, e.silenced) for e in engine.result.events]


def muted(until: float = T0 + 3600, metric: str = "latency") -> dict[str, object]:
    return {
        "id": "s1",
        "metric": metric,
        "matchers": {},
        "until": until,
        "created": T0,
        "comment": "",
    }


class TestSilences:
    def test_recorded_silence_mutes_until_lifted(self, tmp_path: Path) -> None:
        """Events under a silence are kept and flagged; lifting it unmutes."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        steps = silenced_replay(path, [(0.5, [muted()]), (20.5, [])])
        assert [
            ("pending", 12.0, True),
            ("fired", 17.0, True),
            ("resolved", 32.0, False),
        ] == steps

    def test_a_silence_ends_at_its_until(self, tmp_path: Path) -> None:
        """Expiry is the silence's own ``until`` on the simulated clock."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        steps = silenced_replay(path, [(0.5, [muted(until=T0 + 15)])])
        assert [True, False, False] == [flag for *_, flag in steps]

    def test_silence_noted_before_from_applies(self, tmp_path: Path) -> None:
        """A silence in force at ``--from`` mutes, though noted before it."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        steps = silenced_replay(path, [(0.5, [muted()])], start=T0 + 5)
        assert [True, True, True] == [flag for *_, flag in steps]

    def test_other_metrics_and_bad_records(self, tmp_path: Path) -> None:
        """Another metric's silence mutes nothing; unreadable records are counted."""
        path = write_statsd(tmp_path / "l.statsd", step_values(10, 20, 10))
        chunks = [
            (T0 + 0.5, encode_silences([muted(metric="other")]), [], None),
            (T0 + 0.6, SILENCES_PREFIX + "{not json", [], None),
            (T0 + 0.7, encode_silences([{"id": "x"}]), [], None),
            *read_statsd(path, Problems()),
        ]
        chunks.sort(key=lambda chunk: chunk[0])
        engine = Replay(parse_config(config()))
        engine.run(chunks)
        assert [False, False, False] == [e.silenced for e in engine.result.events]
        assert 2 == engine.result.bad_silence_records
        assert ["s1"] == list(engine.result.silences)
