"""Judgement quality: false fires, burst detection, shift and ramp delay, per rule.

Method
------
Every scenario is replayed through perfwarden's own ``Evaluator`` (the code the
daemon runs, with a real ``MetricStore`` and a parsed configuration) on a fake
clock, one sample per second and one evaluation per sample: evenly paced data,
so the figures are about the *rule*, not about batching. Each rule is a config:

* ``multiwindow`` -- ``basis: multiwindow`` (short window 10, long window 100);
* ``per-sample``  -- ``basis: sample`` (the seed's rule);
* ``3-samples``   -- ``basis: sample`` with ``for: 3 samples`` (Prometheus-like);
* ``ci-100``      -- ``basis: ci``, ``window: 100`` (the former default).

All use ``hysteresis: 0.05`` and ``min_samples: 30``. Levels are set the way a
user does: ``warning`` = p99 and ``critical`` = 1.2 x max of a leading 15 %
"history" part of each replayed series, which holds no incident.

Noise families (location 100, scale 10): Gaussian; log-normal ``100 exp(0.5 Z)``;
Student-t with 3 df; AR(1) with phi = 0.7 and unit marginal variance. An incident
moves the mean by adding a constant to the noise:

* stationary: ``--stationary`` samples after the history; every ``alert.fired``
  after the history is a false fire (reported per 10^5 samples);
* bursts of 10, 20, 50, 100 samples whose mean is 1.2, 1.5 and 2 x the warning
  level, ``--runs`` of each per family in shuffled order, 150 quiet samples before
  and after each; *detected* = fired while the burst lasts, *samples* = burst
  samples up to and including the one after which it fired;
* level shifts: the mean moves to 1.15 and 1.30 x the warning level for 300
  samples (300 quiet after); delay in samples, undetected runs count as 300+;
* ramp: over 500 samples the mean rises linearly so that it crosses the warning
  level at sample 250, then stays 200 samples at the top; the delay is counted
  from the crossing (negative: fired before the mean crossed);
* sinusoid (Gaussian noise, period 1000 samples, amplitude 2 scales) with bursts
  of 20 samples at 1.5 and 2 x the warning on top: false fires (fired outside a
  burst) per 10^5 samples and the bursts' detection.

A burst, shift or ramp that starts while the alert is not ``ok`` (a per-sample rule
still firing on noise) is not scored and is counted as ``busy``.

Usage::

    python bench/judgement.py                      # ~2 minutes on a quiet core
    python bench/judgement.py --json /tmp/judgement.json
    python bench/judgement.py --rules multiwindow --stationary 1000000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from perfwarden.alerts.evaluator import AlertEvent, Evaluator
from perfwarden.alerts.machine import AlertState, Transition
from perfwarden.config.load import parse_config
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.series.store import MetricStore
from perfwarden.testing import FakeClock

Array = npt.NDArray[np.float64]

RULES: dict[str, str] = {
    "multiwindow": "basis: multiwindow",
    "per-sample": "basis: sample",
    "3-samples": "basis: sample, for: 3 samples",
    "ci-100": "basis: ci, window: 100",
}
FAMILIES = ("gaussian", "lognormal", "student_t3", "ar1")
BURST_LENGTHS = (10, 20, 50, 100)
BURST_LEVELS = (1.2, 1.5, 2.0)
SHIFTS = (1.15, 1.30)
QUIET = 150
SHIFT_LENGTH = 300
RAMP_LENGTH, RAMP_CROSSING, RAMP_TOP = 500, 250, 200
SINE_PERIOD, SINE_AMPLITUDE = 1000, 20.0
HISTORY_SHARE = 0.15


def noise(family: str, n: int, rng: np.random.Generator) -> Array:
    """``n`` stationary samples of a family (location 100, scale 10)."""
    if family == "gaussian":
        return 100.0 + 10.0 * rng.standard_normal(n)
    if family == "lognormal":
        return 100.0 * np.exp(0.5 * rng.standard_normal(n))
    if family == "student_t3":
        return 100.0 + 10.0 * rng.standard_t(3, n)
    if family == "ar1":
        phi = 0.7
        shocks = rng.standard_normal(n) * math.sqrt(1 - phi * phi)
        out = np.empty(n)
        previous = rng.standard_normal()
        for i in range(n):
            previous = phi * previous + shocks[i]
            out[i] = previous
        return 100.0 + 10.0 * out
    msg = f"unknown family {family!r}"
    raise ValueError(msg)


def _silence_logs() -> None:
    def drop(*_: object) -> Any:
        raise structlog.DropEvent

    structlog.configure(processors=[drop])


class Replay:
    """One series judged by one rule, sample by sample, on a fake clock."""

    def __init__(self, rule: str, warning: float, critical: float) -> None:
        text = (
            "version: 1\nstatistics: {min_samples: 30}\n"
            f"evaluation: {{{RULES[rule]}, hysteresis: 0.05}}\n"
            f"metrics:\n  m: {{bound: upper, warning: {warning!r},"
            f" critical: {critical!r}}}\n"
        )
        config = parse_config(text)
        self.clock = FakeClock()
        self.store = MetricStore(config.metric_window, 10)
        self.evaluator = Evaluator(
            self.store, lambda: config, clock=self.clock, wall=self.clock
        )
        batch = Batch()
        parse(b"m:100|ms", batch, 8192)
        self.store.ingest(batch, self.clock())
        self.series = self.store.by_name("m")[0]
        self.index = -1
        self.fires: list[int] = []
        self.evaluator.subscribers.append(self._on_event)

    def _on_event(self, event: AlertEvent) -> None:
        if event.transition is Transition.FIRED:
            self.fires.append(self.index)

    @property
    def ok(self) -> bool:
        """Is the alert ok (not pending, not firing) now?"""
        alert = self.evaluator.alerts.get(self.series.key)
        return alert is None or alert.state is AlertState.OK

    def feed(self, values: Array) -> list[int]:
        """Judge each value in turn; the fires as offsets into ``values``."""
        start = len(self.fires)
        first = self.index + 1
        window, series, evaluator, clock = (
            self.series.window,
            (self.series,),
            self.evaluator,
            self.clock,
        )
        for value in values.tolist():
            self.index += 1
            window.append(value)
            clock.now += 1.0
            self.series.last_update = clock.now
            evaluator.evaluate(series)
        return [i - first for i in self.fires[start:]]


def levels(history: Array) -> tuple[float, float]:
    """warning = p99, critical = 1.2 x max of the history."""
    return float(np.percentile(history, 99)), 1.2 * float(history.max())


@dataclass
class Scores:
    """What one rule did on one family."""

    stationary_samples: int = 0
    stationary_fires: int = 0
    bursts: dict[str, list[int | None]] = field(default_factory=dict)
    shifts: dict[str, list[int | None]] = field(default_factory=dict)
    ramp: list[int | None] = field(default_factory=list)
    busy: int = 0


def first_fire(fires: list[int], limit: int) -> int | None:
    """Samples to the first fire within ``limit`` samples (1-based), or None."""
    inside = [f for f in fires if 0 <= f < limit]
    return inside[0] + 1 if inside else None


def stationary(rule: str, family: str, n: int, seed: int, scores: Scores) -> None:
    rng = np.random.default_rng(seed)
    history_len = int(n * HISTORY_SHARE / (1 - HISTORY_SHARE))
    history = noise(family, history_len, rng)
    replay = Replay(rule, *levels(history))
    replay.feed(history)
    scores.stationary_fires += len(replay.feed(noise(family, n, rng)))
    scores.stationary_samples += n


def incidents(rule: str, family: str, runs: int, seed: int, scores: Scores) -> None:
    """Bursts, shifts and ramps on one series after one history."""
    rng = np.random.default_rng(seed)
    plan: list[tuple[str, float, int]] = [
        ("burst", level, length)
        for level in BURST_LEVELS
        for length in BURST_LENGTHS
        for _ in range(runs)
    ]
    plan += [("shift", shift, SHIFT_LENGTH) for shift in SHIFTS for _ in range(runs)]
    plan += [("ramp", 0.0, RAMP_LENGTH + RAMP_TOP) for _ in range(runs)]
    order = rng.permutation(len(plan))
    body = sum(2 * QUIET + length + SHIFT_LENGTH for _, _, length in plan)
    history = noise(family, int(body * HISTORY_SHARE / (1 - HISTORY_SHARE)), rng)
    warning, critical = levels(history)
    location = float(np.mean(history))
    replay = Replay(rule, warning, critical)
    replay.feed(history)
    for index in order.tolist():
        kind, level, length = plan[index]
        replay.feed(noise(family, QUIET, rng))
        if not replay.ok:
            scores.busy += 1
            replay.feed(noise(family, length + QUIET + SHIFT_LENGTH, rng))
            continue
        lift = np.full(length, level * warning - location)
        if kind == "ramp":
            slope = (warning - location) / RAMP_CROSSING
            lift = np.minimum(np.arange(1, length + 1), RAMP_LENGTH) * slope
        fires = replay.feed(noise(family, length, rng) + lift)
        if kind == "burst":
            scores.bursts.setdefault(f"{length}x{level}", []).append(
                first_fire(fires, length)
            )
        elif kind == "shift":
            scores.shifts.setdefault(f"{level}", []).append(first_fire(fires, length))
        else:
            found = fires[0] + 1 - RAMP_CROSSING if fires else None
            scores.ramp.append(found)
        replay.feed(noise(family, QUIET + SHIFT_LENGTH, rng))


def sinusoid(rule: str, n: int, runs: int, seed: int) -> dict[str, Any]:
    """Gaussian noise on a daily-like sinusoid with bursts on top."""
    rng = np.random.default_rng(seed)
    total = int(n / (1 - HISTORY_SHARE))
    t = np.arange(total)
    x = noise("gaussian", total, rng) + SINE_AMPLITUDE * np.sin(
        2 * np.pi * t / SINE_PERIOD
    )
    history_len = total - n
    warning, critical = levels(x[:history_len])
    starts = np.sort(
        rng.choice(np.arange(history_len + 200, total - 200, 400), 2 * runs, False)
    )
    spans = []
    for i, start in enumerate(starts.tolist()):
        level = (1.5, 2.0)[i % 2]
        x[start : start + 20] += level * warning - 100.0
        spans.append((start, level))
    replay = Replay(rule, warning, critical)
    fires = replay.feed(x)
    in_burst: set[int] = set()
    detected: dict[str, list[int | None]] = {"1.5": [], "2.0": []}
    for start, level in spans:
        inside = [f for f in fires if start <= f < start + 20]
        in_burst.update(f for f in fires if start <= f < start + 20 + 110)
        detected[str(level)].append(inside[0] - start + 1 if inside else None)
    false = [f for f in fires if f >= history_len and f not in in_burst]
    # Samples judged outside bursts and their aftermath.
    quiet = n - len(spans) * 130
    return {
        "false_fires_per_1e5": 1e5 * len(false) / quiet,
        "false_fires": len(false),
        "quiet_samples": quiet,
        "bursts": detected,
    }


def summary(values: list[int | None], cap: int) -> dict[str, Any]:
    """Share detected, median and p90 samples (undetected count as ``cap``+)."""
    found = [v for v in values if v is not None]
    filled = sorted(v if v is not None else math.inf for v in values)

    def at(q: float) -> float | None:
        if not filled:
            return None
        value = filled[min(len(filled) - 1, math.ceil(q * len(filled)) - 1)]
        return None if math.isinf(value) else value

    return {
        "runs": len(values),
        "detected": len(found) / len(values) if values else None,
        "within_10": sum(1 for v in found if v <= 10) / len(values) if values else None,
        "median": at(0.5),
        "p90": at(0.9),
        "cap": cap,
    }


def run_rule(rule: str, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    per_family: dict[str, Any] = {}
    for number, family in enumerate(FAMILIES):
        scores = Scores()
        stationary(rule, family, args.stationary, args.seed + number, scores)
        incidents(rule, family, args.runs, args.seed + 100 + number, scores)
        per_family[family] = {
            "false_fires_per_1e5": 1e5
            * scores.stationary_fires
            / scores.stationary_samples,
            "false_fires": scores.stationary_fires,
            "stationary_samples": scores.stationary_samples,
            "bursts": scores.bursts,
            "shifts": scores.shifts,
            "ramp": scores.ramp,
            "busy": scores.busy,
        }
        print(f"  {rule:12s} {family:10s} done", file=sys.stderr, flush=True)
    sine = sinusoid(rule, args.stationary, args.runs, args.seed + 200)
    return {
        "families": per_family,
        "sinusoid": {
            **sine,
            "bursts": {k: summary(v, 20) for k, v in sine["bursts"].items()},
        },
        "seconds": time.perf_counter() - started,
    }


def evaluation_cost(rounds: int, block: int = 2000) -> dict[str, Any]:
    """Microseconds per evaluation of one series per rule, measured in interleaved
    blocks of ``block`` samples (same data for every rule); medians, and the
    median per-round ratio to ``ci-100``."""
    rng = np.random.default_rng(1)
    replays = {rule: Replay(rule, 150.0, 200.0) for rule in RULES}
    warmup = noise("gaussian", 1000, rng)
    for replay in replays.values():
        replay.feed(warmup)
    times: dict[str, list[float]] = {rule: [] for rule in RULES}
    for round_number in range(rounds):
        values = noise("gaussian", block, rng)
        order = (
            list(RULES)[round_number % len(RULES) :]
            + list(RULES)[: round_number % len(RULES)]
        )
        for rule in order:
            started = time.perf_counter()
            replays[rule].feed(values)
            times[rule].append(1e6 * (time.perf_counter() - started) / block)
    return {
        rule: {
            "us_per_evaluation": float(np.median(times[rule])),
            "ratio_to_ci": float(
                np.median(np.array(times[rule]) / np.array(times["ci-100"]))
            ),
        }
        for rule in RULES
    }


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def table(results: dict[str, Any]) -> str:
    rules = list(results)
    out = ["**False fires per 10^5 stationary samples**", ""]
    out += ["| noise | " + " | ".join(rules) + " |", "|---" * (len(rules) + 1) + "|"]
    for family in FAMILIES:
        cells = [
            _fmt(results[r]["families"][family]["false_fires_per_1e5"], 1)
            for r in rules
        ]
        out.append(f"| {family} | " + " | ".join(cells) + " |")
    cells = [_fmt(results[r]["sinusoid"]["false_fires_per_1e5"], 1) for r in rules]
    out.append("| sinusoid (gaussian) | " + " | ".join(cells) + " |")
    out += [
        "",
        "**Bursts: detected within 10 samples / while it lasts, median samples"
        " to detect (all four families pooled)**",
        "",
    ]
    out += ["| burst | " + " | ".join(rules) + " |", "|---" * (len(rules) + 1) + "|"]
    for level in BURST_LEVELS:
        for length in BURST_LENGTHS:
            key = f"{length}x{level}"
            cells = []
            for r in rules:
                pooled = [
                    v
                    for family in FAMILIES
                    for v in results[r]["families"][family]["bursts"].get(key, [])
                ]
                s = summary(pooled, length)
                cells.append(
                    f"{_fmt(100 * (s['within_10'] or 0))}% / "
                    f"{_fmt(100 * (s['detected'] or 0))}%, {_fmt(s['median'])}"
                )
            out.append(f"| {length} x {level} | " + " | ".join(cells) + " |")
    for label in ("1.5", "2.0"):
        cells = []
        for r in rules:
            s = results[r]["sinusoid"]["bursts"][label]
            cells.append(
                f"{_fmt(100 * (s['within_10'] or 0))}% / "
                f"{_fmt(100 * (s['detected'] or 0))}%, {_fmt(s['median'])}"
            )
        out.append(f"| 20 x {label} on the sinusoid | " + " | ".join(cells) + " |")
    out += [
        "",
        "**Shift and ramp: samples to fire, median / p90 (all families pooled;"
        " `-`: p90 not detected within the scenario)**",
        "",
    ]
    out += ["| incident | " + " | ".join(rules) + " |", "|---" * (len(rules) + 1) + "|"]
    for shift in SHIFTS:
        cells = []
        for r in rules:
            pooled = [
                v
                for f in FAMILIES
                for v in results[r]["families"][f]["shifts"].get(str(shift), [])
            ]
            s = summary(pooled, SHIFT_LENGTH)
            cells.append(f"{_fmt(s['median'])} / {_fmt(s['p90'])}")
        out.append(f"| shift to {shift} x warning | " + " | ".join(cells) + " |")
    cells = []
    for r in rules:
        pooled = [v for f in FAMILIES for v in results[r]["families"][f]["ramp"]]
        s = summary(pooled, RAMP_LENGTH)
        early = sum(1 for v in pooled if v is not None and v < 0)
        cells.append(f"{_fmt(s['median'])} / {_fmt(s['p90'])} ({early} early)")
    out.append("| ramp, from the crossing | " + " | ".join(cells) + " |")
    busy = [
        str(sum(results[r]["families"][f]["busy"] for f in FAMILIES)) for r in rules
    ]
    out.append(
        "| incidents not scored (alert busy at start) | " + " | ".join(busy) + " |"
    )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stationary", type=int, default=100_000)
    parser.add_argument(
        "--runs", type=int, default=10, help="per incident kind and family"
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--rules", nargs="+", choices=list(RULES), default=list(RULES))
    parser.add_argument("--json", help="write the full results here")
    parser.add_argument(
        "--cost-rounds", type=int, default=15, help="interleaved cost blocks (0: skip)"
    )
    args = parser.parse_args()
    _silence_logs()
    results: dict[str, Any] = {}
    for rule in args.rules:
        results[rule] = run_rule(rule, args)
    print(table(results))
    cost: dict[str, Any] = {}
    if args.cost_rounds:
        cost = evaluation_cost(args.cost_rounds)
        print(
            "\n**Cost of one evaluation of one series (sample appended + judged),"
            " median of interleaved blocks**\n"
        )
        print("| rule | us per evaluation | ratio to ci-100 |\n|---|---|---|")
        for rule, figures in cost.items():
            print(
                f"| {rule} | {figures['us_per_evaluation']:.1f} |"
                f" {figures['ratio_to_ci']:.2f} |"
            )
    print(
        f"\npython {platform.python_version()}, {platform.machine()};"
        f" seconds per rule: "
        + ", ".join(f"{r} {results[r]['seconds']:.0f}" for r in results)
    )
    if args.json:
        if cost:
            results["evaluation_cost"] = cost
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
