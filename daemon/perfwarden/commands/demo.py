"""``perfwarden demo``: a daemon and an example workload it tunes live, then a report.

The demo calibrates the workload on this machine (request time with deliberately bad
knobs and with good ones), writes a config whose latency levels sit between the two,
starts ``perfwarden run`` on a temporary directory, and runs the workload against it
with the bad knobs. The daemon's decision log is narrated as it happens (alerts,
actions applied, kept or reverted, learning) with the metric's mean every few
seconds, and the final ``perfwarden report`` is printed at the end.

Only what happened is narrated. The plugins propose far more than is applied (each
alert asks every plugin, and a proposal is passed over when another scores higher,
an action is already being validated, or a cooldown runs), so proposals get no line
of their own: an applied action says how many proposals it was chosen from, and the
ones passed over are counted by reason in one line at the end.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from perfwarden.alerts.report import format_apart
from perfwarden.client import Client
from perfwarden.commands.demo_workload import Workload, demo_config
from perfwarden.control.channel import request
from perfwarden.errors import PerfwardenError
from perfwarden.paths import CONTROL_SOCKET

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

__all__ = ["Narration", "narrate", "run"]

_STATUS_EVERY: Final = 5.0
_CHOSEN_OVER: Final = "another proposal scored higher"
#: The longest first word, INCONCLUSIVE.
_LABEL_WIDTH: Final = 12


def _label(word: str) -> str:
    """A line's first word, padded so that the rest of the lines align."""
    return f"{word:<{_LABEL_WIDTH}}"


def narrate(
    event: dict[str, Any], units: Mapping[str, str | None] | None = None
) -> str | None:
    """A human line for one decision-log event (None for events not narrated);
    ``units`` (metric -> unit) formats the observed values of alerts."""
    name = event.get("event", "")
    cid = event.get("correlation_id", "")
    tag = f" [{cid}]" if cid else ""
    metric = event.get("metric", "")
    if name in {"alert.fired", "alert.escalated"}:
        unit = (units or {}).get(metric)
        judged = _judged(event, unit)
        return (
            f"{_label('ALERT')} {metric} {event['severity'].upper()}: "
            f"{judged} -> {event['action']}"
        )
    if name == "alert.resolved":
        return f"{_label('ALERT')} {metric} resolved"
    if name == "optimizer.applied":
        return _applied(event, tag, 1)
    if name == "optimizer.apply_failed":
        return f"{_label('FAILED')}{tag} {event['strategy']}: {event['error']}"
    if name in {"optimizer.kept", "optimizer.reverted", "optimizer.inconclusive"}:
        verdict = name.split(".")[1].upper()
        effect = event.get("effect_percent")
        shown = f", median {_change(effect)}" if effect is not None else ""
        return f"{_label(verdict)}{tag} {event['strategy']}: {event['reason']}{shown}"
    if name == "learning.updated" and event.get("counted"):
        weight = event["weight"]
        return (
            f"{_label('LEARN')}{tag} {event['strategy']} on {metric}: "
            f"weight {weight:.2f}"
        )
    return None


def _change(effect_percent: float) -> str:
    """A verdict's effect in the report's words: ``53.2% better``, ``120.3% worse``
    (positive is better, whichever way the metric's bound points)."""
    word = "better" if effect_percent >= 0 else "worse"
    return f"{abs(effect_percent):.1f}% {word}"


def _judged(event: Mapping[str, Any], unit: str | None) -> str:
    """What the alert judged, against its level, rounded so that a value shown
    beyond a level reads beyond it: ``ci [1.93ms, 2.10ms] beyond 1.90ms``."""
    low, high = event.get("observed") or [0.0, 0.0]
    if low == high:
        (value,), level = format_apart([low], event["threshold"], unit)
        return f"{event.get('basis', 'value')} {value} beyond {level}"
    (shown_low, shown_high), level = format_apart([low, high], event["threshold"], unit)
    return f"{event.get('basis', 'ci')} [{shown_low}, {shown_high}] beyond {level}"


def _applied(event: dict[str, Any], tag: str, chosen_from: int) -> str:
    changes = ", ".join(
        f"{k} {v['from']:g} -> {v['to']:g}" for k, v in event["changes"].items()
    )
    best = f", best of {chosen_from} proposals" if chosen_from > 1 else ""
    return (
        f"{_label('APPLY')}{tag} {event['strategy']}: {changes} "
        f"(score {event['score']:.3f}{best})"
    )


class Narration:
    """The demo's lines for a stream of log events, proposals folded in.

    ``optimizer.proposed`` events are held per correlation id until the decision
    on them arrives: ``optimizer.applied`` gets its line with the number of
    proposals it was chosen from; ``optimizer.skipped`` and ``optimizer.dry_run``
    print nothing and count the proposals passed over, by reason, for
    :meth:`summary`.
    """

    def __init__(self, units: Mapping[str, str | None] | None = None) -> None:
        self.units = dict(units or {})
        self._waiting: dict[str, int] = {}
        self.proposals = 0
        self.applied = 0
        self.failed = 0
        self.passed_over: Counter[str] = Counter()

    def line(self, event: dict[str, Any]) -> str | None:
        """The line for ``event`` (None: nothing to show for it)."""
        name = event.get("event", "")
        cid = str(event.get("correlation_id", ""))
        if name == "optimizer.proposed":
            self.proposals += 1
            self._waiting[cid] = self._waiting.get(cid, 0) + 1
            return None
        if name in {"optimizer.skipped", "optimizer.dry_run"}:
            waiting = self._waiting.pop(cid, 0)
            if waiting:
                reason = event.get("reason") or "dry run"
                self.passed_over[str(reason)] += waiting
            return None
        if name in {"optimizer.applied", "optimizer.apply_failed"}:
            waiting = self._waiting.pop(cid, 1)
            if waiting > 1:
                self.passed_over[_CHOSEN_OVER] += waiting - 1
            if name == "optimizer.apply_failed":
                self.failed += 1
            else:
                self.applied += 1
                return _applied(event, f" [{cid}]" if cid else "", waiting)
        return narrate(event, self.units)

    def summary(self) -> str:
        """One line: proposals made, applied, and passed over by reason."""
        passed = sum(self.passed_over.values())
        reasons = ", ".join(f"{n} {why}" for why, n in self.passed_over.most_common())
        text = f"the plugins made {self.proposals} proposal(s): {self.applied} applied"
        if self.failed:
            text += f", {self.failed} failed to apply"
        if passed:
            text += f"; {passed} passed over ({reasons})"
        return text


class _Narrator(threading.Thread):
    """Reads the daemon's JSON log lines and prints the interesting ones."""

    def __init__(
        self,
        stream: Any,
        started: float,
        echo: Callable[[str], None],
        units: Mapping[str, str | None],
    ) -> None:
        super().__init__(name="demo-narrator", daemon=True)
        self._stream = stream
        self.started = started
        self._echo = echo
        self.events: list[dict[str, Any]] = []
        self.narration = Narration(units)

    def run(self) -> None:
        for raw in self._stream:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            self.events.append(event)
            line = self.narration.line(event)
            if line is not None:
                self._echo(f"{time.monotonic() - self.started:6.1f}s  {line}")


def _wait_ready(control: Path, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = "the demo daemon exited during start-up"
            raise PerfwardenError(msg)
        with contextlib.suppress(PerfwardenError):
            request(control, "ping", timeout=1)
            return
        time.sleep(0.05)
    msg = "the demo daemon did not start in time"
    raise PerfwardenError(msg)


def run(args: argparse.Namespace) -> int:
    """Run the demo for ``--duration`` seconds."""
    echo = print
    with tempfile.TemporaryDirectory(prefix="pw-demo-", dir="/tmp") as tmp:
        base = Path(tmp)
        echo("perfwarden demo: calibrating the example workload on this machine...")
        probe = Workload(Client(base / "none", state_dir=base / "none"))
        bad_ms, good_ms = probe.calibrate()
        echo(
            f"  a request takes {bad_ms:.2f} ms with bad knobs, {good_ms:.2f} ms tuned"
        )
        config_path = base / "demo.yaml"
        config_text = demo_config(bad_ms, good_ms)
        config_path.write_text(config_text)
        units = {
            name: metric.get("unit")
            for name, metric in yaml.safe_load(config_text)["metrics"].items()
        }
        socket_dir, state_dir = base / "run", base / "state"
        command = [
            sys.executable,
            "-m",
            "perfwarden",
            "run",
            "--config",
            str(config_path),
            "--socket-dir",
            str(socket_dir),
            "--state-dir",
            str(state_dir),
            "--log-format",
            "json",
        ]
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE
        narrator = _Narrator(process.stdout, started, echo, units)
        narrator.start()
        control = socket_dir / CONTROL_SOCKET
        try:
            _wait_ready(control, process, 60)
            echo(f"  daemon up on {socket_dir}; workload starts with bad knobs\n")
            return _drive(args.duration, control, socket_dir, state_dir, echo, narrator)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            narrator.join(5)


def _drive(  # noqa: PLR0917 - private; one call site
    duration: float,
    control: Path,
    socket_dir: Path,
    state_dir: Path,
    echo: Callable[[str], None],
    narrator: _Narrator,
) -> int:
    client = Client(socket_dir, state_dir=state_dir)
    client.knobs.wait_connected(10)
    workload = Workload(client)
    workload.start()
    deadline = time.monotonic() + duration
    next_status = time.monotonic() + _STATUS_EVERY
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if time.monotonic() >= next_status:
                next_status += _STATUS_EVERY
                echo(_status_line(control, narrator))
    finally:
        workload.stop()
        client.knobs.close()
    report = request(control, "report")
    for internal in ("unknown", "total", "next_offset", "paged"):  # pages joined
        report.pop(internal, None)
    # The readable lines say it; the raw records are for --json and `top`.
    report.get("validation_results", {}).pop("recent_actions", None)
    knobs = request(control, "knobs")["knobs"]
    in_flight = request(control, "status")["optimizer"]["in_flight"]
    validating = {knob for action in in_flight for knob in action.get("knobs", ())}
    echo("\n=== final knobs ===")
    for name, knob in knobs.items():
        note = (
            "; still under validation: reverted when the daemon stops"
            if name in validating
            else ""
        )
        echo(
            f"  {name}: {knob['initial']} -> {knob['value']} "
            f"(last change: {knob['changed_by']}{note})"
        )
    echo("\n=== perfwarden report ===")
    echo(yaml.safe_dump(report, sort_keys=False, allow_unicode=True, width=100))
    kept = sum(1 for e in narrator.events if e.get("event") == "optimizer.kept")
    reverted = sum(1 for e in narrator.events if e.get("event") == "optimizer.reverted")
    unsure = sum(
        1 for e in narrator.events if e.get("event") == "optimizer.inconclusive"
    )
    echo(narrator.narration.summary())
    echo(_ending(report))
    echo(
        f"demo finished: {workload.requests} requests, {kept} action(s) kept, "
        f"{reverted} reverted, {unsure} inconclusive, {len(in_flight)} still "
        "under validation (reverted as the daemon stops)"
    )
    return 0


def _ending(report: Mapping[str, Any]) -> str:
    """Where the headline metric ends, on the evidence its status was judged on
    (the newest ``evaluation.window`` samples), beside its whole-window mean."""
    name = "context_loading_time"
    entry = report.get("monitoring_dashboard", {}).get("metrics", {}).get(name)
    if not entry or not entry.get("sample_size"):
        return f"{name} ends with no samples"
    judged = entry.get("status_judged_on") or "no judgement yet"
    return (
        f"{name} ends {str(entry['status']).upper()}, judged on {judged} "
        f"(target {entry['target']}; the whole window's mean "
        f"{entry['current_average']}, 95% interval "
        f"{entry['confidence_interval_95']})"
    )


def _status_line(control: Path, narrator: _Narrator) -> str:
    stats = request(control, "stats", metrics=["context_loading_time"])["series"]
    knobs = request(control, "knobs")["knobs"]
    values = ", ".join(f"{n}={k['value']:g}" for n, k in knobs.items())
    if not stats:
        return f"        (no samples yet) knobs: {values}"
    record = stats[0]
    mean = record["mean"] or 0.0
    elapsed = time.monotonic() - narrator.started
    return (
        f"{elapsed:6.1f}s  context_loading_time mean {mean:.2f} ms "
        f"[{record['status']}]  knobs: {values}"
    )
