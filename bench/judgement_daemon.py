"""Judgement quality of a real perfwarden daemon: false fires and detection delay.

Method
------
Every configuration (``evaluation.basis`` x ``evaluation.window``) runs on a fresh
``perfwarden run`` subprocess whose JSON log goes to a file read incrementally
(``PipedDaemon(threaded=False)`` of ``bench/alert_latency.py``). The config has one
metric, ``judged_time`` (upper bound, ``critical: 100`` = the level L, no warning
level), ``for: 0s``, ``hysteresis: 0.05``, ``statistics.min_samples: 30``. Noise
is normal with sd 0.1 L.

Stationary phase (false fires)
    ``--stationary`` samples per configuration (default 10^6) of N(0.9 L, 0.1 L),
    so about one sample in six is above L, sent as fast as a blocking datagram
    socket allows (no datagram is dropped), in datagrams of one line carrying
    ``--datagram-samples`` values (default 20), round-robin over 10 series. Every
    ``alert.fired`` line of those series is a false fire; the figure is fires per
    10^6 samples. The daemon judges once per ingest batch (a drain of the datagram
    socket), not per sample, so the script also reports the daemon's evaluations
    (``status.evaluation.evaluations``) and a per-sample *replay*: the same sample
    sequences judged after every sample by the same rule (observation as in
    ``Evaluator.observe``, fire when the observation lies wholly above L, resolve
    when it lies wholly below L - 5 %), i.e. what a per-value evaluator (the seed's
    rule for ``sample``) would fire. (The replay's ``ci`` is the interval of
    independent samples; the daemon's now widens it where the samples are
    autocorrelated, so on this independent noise the two agree except where the
    lag-1 estimate happens to cross its significance bound.)

Step phase (detection delay)
    ``--runs`` runs (default 100) per step size (105 %, 110 %, 115 % of L), each on its
    own series (a fresh ``run`` tag), all in lock-step: every series first gets
    ``window + 50`` stationary samples (bulk), and a series that is firing at the step
    is first brought back to ok with single stationary samples (only ``sample`` needs
    this; the count is reported). Then post-step samples N(step L, 0.1 L) are sent
    one per series per round: each round is one datagram with one 1-value line per
    still-unfired series; the script waits until the daemon's ``ingest.received``
    has grown by that many lines, sends a ``ping`` on the control socket (the
    evaluation is queued before that reply can be written, and the log line is
    flushed during the evaluation) and then reads the new log lines. A run's
    *samples to fire* is the number of post-step samples sent up to and including
    the round after which its ``alert.fired`` line appeared: sample-exact, because
    each series receives exactly one sample per ingest batch. Runs not fired after
    ``--max-samples`` (default 1000) are reported as censored.

Usage::

    python bench/judgement_daemon.py                          # about a minute
    python bench/judgement_daemon.py --json /tmp/judgement.json
    python bench/judgement_daemon.py --basis ci --windows 100 --runs 300

``evaluation.window`` values are taken for ``mean`` and ``ci`` (default 10 30 50 100
200); ``sample`` ignores the window and runs once. Note: with ``ci`` a window below
``statistics.min_samples`` (30) gives no interval at all, so that row never fires.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# bench/ is not a package: the script's own directory is on sys.path.
from alert_latency import PipedDaemon, make_config, percentile

from perfwarden.series.tdist import two_sided_critical

METRIC = "judged_time"
LEVEL = 100.0
SD = 0.1 * LEVEL
STATIONARY_MEAN = 0.9 * LEVEL
HYSTERESIS = 0.05
MIN_SAMPLES = 30
CONFIDENCE = 0.95
STATIONARY_SERIES = 10
STEPS = (1.05, 1.10, 1.15)


# -- helpers ------------------------------------------------------------------------


def values_line(values: npt.NDArray[np.float64] | list[float], tag: str) -> bytes:
    """One timing line of ``judged_time`` with several values."""
    joined = ":".join(f"{v:.3f}" for v in values)
    return f"{METRIC}:{joined}|ms|#{tag}\n".encode()


class Link:
    """The datagram socket and the control channel of one daemon, with sync."""

    def __init__(self, daemon: PipedDaemon) -> None:
        self.daemon = daemon
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.connect(str(daemon.metrics_path))
        self.sock.setblocking(False)
        self._sends = 0
        self.lines_sent = int(daemon.call("status")["ingest"]["received"])

    def send(self, payload: bytes) -> None:
        """Send one datagram without loss and count its lines.

        Equivalent to a blocking send (a send that would block waits and is
        retried, so no datagram is dropped), reading the daemon's log meanwhile.
        """
        while True:
            try:
                self.sock.send(payload)
                break
            except BlockingIOError:
                self.daemon.poll()
                time.sleep(0.0002)
        self.lines_sent += payload.count(b"\n")
        self._sends += 1
        if self._sends % 64 == 0:
            self.daemon.poll()

    def sync(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the daemon received every line sent, its evaluation ran and
        the log lines it wrote are read. Returns ``status``."""
        deadline = time.monotonic() + timeout
        while True:
            status: dict[str, Any] = self.daemon.call("status")
            if status["ingest"]["received"] >= self.lines_sent:
                break
            if time.monotonic() > deadline:
                msg = f"daemon received {status['ingest']} of {self.lines_sent}"
                raise TimeoutError(msg)
            time.sleep(0.0005)
        self.daemon.call("ping")
        self.daemon.poll()
        return status

    def close(self) -> None:
        """Close the datagram socket."""
        self.sock.close()


def fired_tags(daemon: PipedDaemon, start: int, key: str) -> tuple[list[str], int]:
    """Values of tag ``key`` on ``alert.fired`` lines from index ``start``."""
    found = [
        str((line.record.get("tags") or {}).get(key))
        for line in daemon.lines[start:]
        if line.record.get("event") == "alert.fired"
        and key in (line.record.get("tags") or {})
    ]
    return found, len(daemon.lines)


# -- per-sample replay --------------------------------------------------------------


def observations(
    x: npt.NDArray[np.float64], basis: str, window: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-sample observation [low, high] after each sample (NaN: none)."""
    n = len(x)
    if basis == "sample":
        return x.copy(), x.copy()
    idx = np.arange(n)
    count = np.minimum(idx + 1, window).astype(np.float64)
    c1 = np.concatenate(([0.0], np.cumsum(x - STATIONARY_MEAN)))
    c2 = np.concatenate(([0.0], np.cumsum((x - STATIONARY_MEAN) ** 2)))
    lo_idx = np.maximum(idx + 1 - window, 0)
    s1 = c1[idx + 1] - c1[lo_idx]
    s2 = c2[idx + 1] - c2[lo_idx]
    mean = STATIONARY_MEAN + s1 / count
    if basis == "mean":
        return mean, mean
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(s2 - s1 * s1 / count, 0.0) / (count - 1)
    t = np.array(
        [
            two_sided_critical(CONFIDENCE, int(c) - 1) if c >= 2 else math.nan
            for c in range(window + 1)
        ]
    )
    half = t[count.astype(int)] * np.sqrt(var / count)
    low, high = mean - half, mean + half
    low[count < max(MIN_SAMPLES, 2)] = math.nan
    high[count < max(MIN_SAMPLES, 2)] = math.nan
    return low, high


def replay_fires(
    x: npt.NDArray[np.float64], basis: str, window: int
) -> tuple[int, int]:
    """Fires of the critical-only, ``for: 0s`` state machine judged per sample.

    Returns (fires, of which while the series held fewer than ``window`` samples):
    ``mean`` judges a new series from its first sample on, ``ci`` from
    ``min_samples``.
    """
    low, high = observations(x, basis, window)
    clear = LEVEL - HYSTERESIS * LEVEL
    firing = False
    fires = startup = 0
    for i, (lo, hi) in enumerate(zip(low.tolist(), high.tolist(), strict=True)):
        if math.isnan(lo):  # no observation
            continue
        if not firing and lo > LEVEL:
            firing = True
            fires += 1
            startup += basis != "sample" and i + 1 < window
        elif firing and hi < clear:
            firing = False
    return fires, startup


# -- one configuration --------------------------------------------------------------


@dataclass
class Result:
    """The figures of one basis x window."""

    basis: str
    window: int | None
    stationary_samples: int = 0
    stationary_fires: int = 0
    stationary_evaluations: int = 0
    replay_fires: int = 0
    replay_startup_fires: int = 0
    stationary_seconds: float = 0.0
    steps_seconds: float = 0.0
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    pre_step_fires: int = 0
    resolve_samples: int = 0

    def per_million(self, fires: int) -> float:
        """Fires per 10^6 stationary samples."""
        return fires * 1e6 / self.stationary_samples if self.stationary_samples else 0


def run_stationary(
    link: Link, result: Result, args: argparse.Namespace, rng: np.random.Generator
) -> None:
    """Send the stationary noise fast and count the fires."""
    daemon = link.daemon
    per = args.datagram_samples
    total = args.stationary - args.stationary % (per * STATIONARY_SERIES)
    x = rng.normal(STATIONARY_MEAN, SD, total)
    # Datagram d carries samples [d*per, (d+1)*per) of series d % STATIONARY_SERIES.
    chunks = x.reshape(-1, per)
    tags = [f"stat:{i}" for i in range(STATIONARY_SERIES)]
    before = link.sync()
    start_line = len(daemon.lines)
    t0 = time.monotonic()
    for d, chunk in enumerate(chunks):
        link.send(values_line(chunk, tags[d % STATIONARY_SERIES]))
    after = link.sync(timeout=600)
    result.stationary_seconds = time.monotonic() - t0
    fired, _ = fired_tags(daemon, start_line, "stat")
    result.stationary_samples = total
    result.stationary_fires = len(fired)
    result.stationary_evaluations = (
        after["evaluation"]["evaluations"] - before["evaluation"]["evaluations"]
    )
    # The replay judges each series' own sequence after every one of its samples.
    series_of = np.arange(len(chunks)) % STATIONARY_SERIES
    basis, window = result.basis, result.window or 1
    for i in range(STATIONARY_SERIES):
        fires, startup = replay_fires(chunks[series_of == i].reshape(-1), basis, window)
        result.replay_fires += fires - startup
        result.replay_startup_fires += startup


def run_steps(
    link: Link, result: Result, args: argparse.Namespace, rng: np.random.Generator
) -> None:
    """Lock-step post-step samples, one per series per round."""
    daemon = link.daemon
    window = result.window or 1
    runs = [(step, r) for step in STEPS for r in range(args.runs)]
    names = [f"s{round(step * 100)}-{r}" for step, r in runs]
    start_line = len(daemon.lines)
    # Pre-step: a window of stationary samples (and 50 more), in bulk.
    pre = max(window + 50, MIN_SAMPLES + 50)
    for name in names:
        values = rng.normal(STATIONARY_MEAN, SD, pre)
        lines = b"".join(
            values_line(values[i : i + 50], f"run:{name}") for i in range(0, pre, 50)
        )
        link.send(lines)
    link.sync()
    # Bring series that fired before the step back to ok (basis sample only, in
    # practice): single stationary samples until their alert is no longer firing.
    for _ in range(1000):
        fired, _ = fired_tags(daemon, start_line, "run")
        resolved = [
            str((x.record.get("tags") or {}).get("run"))
            for x in daemon.lines[start_line:]
            if x.record.get("event") == "alert.resolved"
        ]
        firing = {n for n in set(fired) if fired.count(n) > resolved.count(n)}
        if not firing:
            break
        result.pre_step_fires = len(fired)
        payload = b"".join(
            values_line([float(rng.normal(STATIONARY_MEAN, SD))], f"run:{n}")
            for n in sorted(firing)
        )
        link.send(payload)
        result.resolve_samples += len(firing)
        link.sync()
    result.pre_step_fires = len(fired_tags(daemon, start_line, "run")[0])
    # Post-step rounds.
    step_of = dict(zip(names, (step for step, _ in runs), strict=True))
    pending = set(names)
    fired_at: dict[str, int] = {}
    cursor = len(daemon.lines)
    for k in range(1, args.max_samples + 1):
        if not pending:
            break
        payload = b"".join(
            values_line([float(rng.normal(step_of[n] * LEVEL, SD))], f"run:{n}")
            for n in sorted(pending)
        )
        link.send(payload)
        link.sync()
        fired, cursor = fired_tags(daemon, cursor, "run")
        for name in fired:
            if name in pending:
                pending.discard(name)
                fired_at[name] = k
    for step in STEPS:
        mine = [n for n in names if step_of[n] == step]
        delays = [float(fired_at[n]) for n in mine if n in fired_at]
        # A censored run counts as "later than --max-samples" (infinity).
        ranked = delays + [math.inf] * (len(mine) - len(delays))
        result.steps[f"{step:.2f}"] = {
            "runs": len(mine),
            "fired": len(delays),
            "censored": len(mine) - len(delays),
            "median": _finite(statistics.median(ranked)),
            "p90": _finite(percentile(ranked, 90)),
            "min": _finite(min(ranked)),
            "max": _finite(max(ranked)),
            "samples_to_fire": delays,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_config(args: argparse.Namespace, basis: str, window: int | None) -> Result:
    """One fresh daemon, its stationary phase, then its step runs."""
    result = Result(basis, window)
    seed = random.Random(f"{basis}-{window}-{args.seed}").getrandbits(32)
    rng = np.random.default_rng(seed)
    config = make_config(
        basis,
        window or 100,
        metrics={METRIC: f"{{unit: ms, bound: upper, critical: {LEVEL:g}}}"},
        min_samples=MIN_SAMPLES,
        hysteresis=HYSTERESIS,
    )
    with PipedDaemon(config, threaded=False) as daemon:
        link = Link(daemon)
        try:
            if args.stationary > 0:
                run_stationary(link, result, args, rng)
            if args.runs > 0:
                t0 = time.monotonic()
                run_steps(link, result, args, rng)
                result.steps_seconds = time.monotonic() - t0
        finally:
            link.close()
    return result


def expected_ci_delay(step: float, window: int) -> int | None:
    """Samples after which the *expected* window makes the CI clear L (no noise)."""
    if window < MIN_SAMPLES:
        return None  # no interval at all below statistics.min_samples
    for k in range(1, 10 * window):
        p = min(k, window) / window
        mean = STATIONARY_MEAN + p * (step * LEVEL - STATIONARY_MEAN)
        var = SD**2 + p * (1 - p) * (step * LEVEL - STATIONARY_MEAN) ** 2
        half = two_sided_critical(CONFIDENCE, window - 1) * math.sqrt(var / window)
        if mean - half > LEVEL:
            return k
    return None


# -- main ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run every configuration, print the table, optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--basis",
        nargs="+",
        default=["sample", "mean", "ci"],
        choices=["sample", "mean", "ci"],
    )
    p.add_argument(
        "--windows",
        type=int,
        nargs="+",
        default=[30, 50, 100, 200],
        help="evaluation.window values for mean and ci",
    )
    p.add_argument(
        "--stationary",
        type=int,
        default=1_000_000,
        help="stationary samples per configuration (default 10^6)",
    )
    p.add_argument(
        "--datagram-samples",
        type=int,
        default=20,
        help="samples per stationary datagram",
    )
    p.add_argument("--runs", type=int, default=100, help="runs per step size")
    p.add_argument(
        "--max-samples",
        type=int,
        default=1000,
        help="post-step samples before a run counts as censored",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, metavar="PATH", help="write results here")
    args = p.parse_args(argv)

    configs: list[tuple[str, int | None]] = []
    for basis in args.basis:
        if basis == "sample":
            configs.append((basis, None))
        else:
            configs.extend((basis, w) for w in args.windows)
    results = []
    t_start = time.monotonic()
    for basis, window in configs:
        t0 = time.monotonic()
        print(f"... basis={basis} window={window or '-'}", end="", flush=True)
        results.append(run_config(args, basis, window))
        print(f"  ({time.monotonic() - t0:.1f} s)", flush=True)

    step_cols = "".join(f"  {f'{round(s * 100)}%: med/p90':>16}" for s in STEPS)
    header = (
        f"{'basis':<6} {'window':>6} {'fires/1e6':>10} {'replay/1e6':>11} "
        f"{'startup':>7} {'smp/eval':>8}{step_cols}"
    )
    print(
        f"\nstationary: {args.stationary:,} samples per configuration, "
        f"{args.datagram_samples} per datagram ({STATIONARY_SERIES} series); "
        f"steps: {args.runs} runs each; "
        f"samples from the step to alert.fired (median / p90; '>N': not fired)"
    )
    print(
        "fires/1e6: alert.fired lines from the daemon; replay/1e6: the same samples"
        " judged after every sample, startup fires (series younger than the window)"
        " counted apart; smp/eval: samples per daemon evaluation\n"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        cells = ""
        for step in STEPS:
            s = r.steps.get(f"{step:.2f}")
            if not s:
                cells += f"  {'-':>16}"
                continue
            cell = " / ".join(
                f"{v:g}" if v is not None else f">{args.max_samples}"
                for v in (s["median"], s["p90"])
            )
            cells += f"  {cell:>16}"
        per_eval = (
            r.stationary_samples / r.stationary_evaluations
            if r.stationary_evaluations
            else float("nan")
        )
        print(
            f"{r.basis:<6} {r.window or '-':>6} "
            f"{r.per_million(r.stationary_fires):>10,.1f} "
            f"{r.per_million(r.replay_fires):>11,.1f} {r.replay_startup_fires:>7} "
            f"{per_eval:>8.1f}{cells}"
        )
    print(f"\n(total {time.monotonic() - t_start:.0f} s)")
    print("no-noise CI expectation (samples after the step), for reference:")
    for window in args.windows:
        expect = ", ".join(
            f"{round(s * 100)}%: {expected_ci_delay(s, window)}" for s in STEPS
        )
        print(f"  window {window}: {expect}")
    if args.json:
        document = {
            "bench": "judgement",
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "args": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            },
            "level": LEVEL,
            "results": [
                {
                    "basis": r.basis,
                    "window": r.window,
                    "stationary_samples": r.stationary_samples,
                    "stationary_fires": r.stationary_fires,
                    "false_fires_per_million": r.per_million(r.stationary_fires),
                    "stationary_evaluations": r.stationary_evaluations,
                    "replay_fires": r.replay_fires,
                    "replay_fires_per_million": r.per_million(r.replay_fires),
                    "replay_startup_fires": r.replay_startup_fires,
                    "steps_seconds": r.steps_seconds,
                    "stationary_seconds": r.stationary_seconds,
                    "pre_step_fires": r.pre_step_fires,
                    "resolve_samples": r.resolve_samples,
                    "steps": r.steps,
                }
                for r in results
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
