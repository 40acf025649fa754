"""An alert storm beside a git revision: 5,000 alerts firing in one evaluation
pass, how long the loop is held and by what, how long until all fire and all
are logged.

5,000 tagged series of one metric with alert levels arrive in one stream write
(``lat:250|ms|#id:N``, twice each), every one critical; plugins off, so what is
measured is the daemon's own work. For the working tree and for ``--base`` (a
``git archive`` of that revision's ``daemon/`` on ``PYTHONPATH``), alternating
fresh daemons, it prints medians of: the seconds from the write to
``alerts_firing`` = 5,000 (as ``status`` sees it) and to 5,000 ``alert.fired``
lines in the log; the loop's longest stall (``status``: ``loop.max_lag_ms``, 3 s
after all fired); and the longest single loop callback of each kind from the
write on, recorded by a ``sitecustomize`` that times every callback the loop runs
(those over 20 ms):

* ingest: the stream socket's read (parsing 10,000 lines, creating 5,000 series),
  or a piece of it;
* pass: an evaluation pass or one of its slices, with the events it publishes;
* events: the publisher's slices of waiting events (log lines, subscribers);
* alertmanager: the Alertmanager route's push (no URL configured);
* tick: the evaluation tick (every series judged each ``evaluation.interval``);
* other: anything else (the dispatcher's slices, checkpoints, commands);

and the longest loop turn (the callbacks it ran one after another, the wait for
events left out: what a timer due in it is kept waiting, preemption aside).
``loop.max_lag_ms`` is read before the write too (the start-up's).

    python bench/alert_storm.py --base main --repeats 3    # ~1 minute
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from perfwarden.control.channel import request
from perfwarden.testing import DaemonProcess, wait_until

ROOT = Path(__file__).resolve().parent.parent
SERIES = 5_000
CONFIG = """\
version: 1
statistics: {min_samples: 2}
evaluation: {basis: sample, window: 2}
metrics:
  lat: {unit: ms, bound: upper, warning: 10, critical: 20}
"""
#: Times every loop callback, and every loop turn (its callbacks one after the
#: other, without the wait for events); those over 20 ms are written out at exit.
HOOK = """
import asyncio.events, atexit, os, time
_run = asyncio.events.Handle._run
_long = []
def _timed(self):
    started = time.perf_counter()
    _run(self)
    took = time.perf_counter() - started
    if took > 0.02:
        callback = self._callback
        owner = getattr(callback, "__self__", None)
        name = repr(callback)
        if owner is not None and hasattr(owner, "get_coro"):
            name = getattr(owner.get_coro(), "__qualname__", name)
        _long.append((took * 1000, name, time.time() - took))
asyncio.events.Handle._run = _timed
import asyncio.base_events, selectors
_select = selectors.EpollSelector.select
_waited = [0.0]
def _timed_select(self, timeout=None):
    started = time.perf_counter()
    try:
        return _select(self, timeout)
    finally:
        _waited[0] += time.perf_counter() - started
selectors.EpollSelector.select = _timed_select
_run_once = asyncio.base_events.BaseEventLoop._run_once
def _timed_turn(self):
    _waited[0] = 0.0
    started = time.perf_counter()
    _run_once(self)
    took = time.perf_counter() - started - _waited[0]
    if took > 0.02:
        _long.append((took * 1000, "<loop turn>", time.time() - took))
asyncio.base_events.BaseEventLoop._run_once = _timed_turn
def _dump():
    with open(os.environ["PW_BENCH_CALLBACKS"], "w") as out:
        out.write(repr(_long))
atexit.register(_dump)
"""
KINDS = {
    "ingest": ("_read_ready", "StreamIngestProtocol._take"),
    "pass": ("EvaluationPacer._pass", "SlicedPasses._next_slice"),
    "events": ("SlicedPublisher._drain",),
    "alertmanager": ("AlertmanagerRoute.run",),
    "tick": ("_interval_loop",),
}
#: The longest loop turn: what a timer due in it waits at most (the callbacks
#: that ran one after another), preemption and the wait for events aside.
TURN = "<loop turn>"
Run = dict[str, float]


def kind_of(name: str) -> str:
    for kind, marks in KINDS.items():
        if any(mark in name for mark in marks):
            return kind
    return "other"


def fired_lines(log: Path) -> int:
    count = 0
    for line in log.read_text().splitlines():
        if '"alert.fired"' in line and json.loads(line).get("event") == "alert.fired":
            count += 1
    return count


def measure(daemon_dir: Path, hook_dir: Path, out: Path) -> Run:
    env = {
        "PYTHONPATH": f"{daemon_dir}{os.pathsep}{hook_dir}",
        "PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PW_BENCH_CALLBACKS": str(out),
    }
    with DaemonProcess(CONFIG, extra_env=env) as daemon:
        time.sleep(1)  # start-up's own callbacks settle
        status = request(daemon.control_path, "status", timeout=300)
        lag_before = float(status["loop"]["max_lag_ms"])
        started, written = time.perf_counter(), time.time()
        daemon.send_stream("".join(f"lat:250|ms|#id:{i}\n" for i in range(SERIES)) * 2)

        def firing() -> bool:
            status = request(daemon.control_path, "status", timeout=300)
            return bool(status["evaluation"]["alerts_firing"] >= SERIES)

        wait_until(firing, timeout=280)
        fired = time.perf_counter() - started
        wait_until(lambda: fired_lines(daemon.log_path) >= SERIES, timeout=280)
        logged = time.perf_counter() - started
        time.sleep(3)  # the dispatcher's work on the 5,000 violations follows
        status = request(daemon.control_path, "status", timeout=300)
        run: Run = {
            "firing_s": fired,
            "logged_s": logged,
            "max_lag_ms": float(status["loop"]["max_lag_ms"]),
            "lag_before_ms": lag_before,
        }
    run.update(dict.fromkeys((*KINDS, "other", "turn"), 0.0))
    other = ""
    for took, name, at in ast.literal_eval(out.read_text()):
        if at < written:
            continue  # the start-up's
        kind = "turn" if name == TURN else kind_of(name)
        if kind == "other" and took > run[kind]:
            other = name
        run[kind] = max(run[kind], took)
    if other:
        print(f"  longest other: {other[:90]}", flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pw-storm-") as tmp:
        base = Path(tmp)
        archive = base / "base.tar"
        command = ["git", "-C", str(ROOT), "archive", "-o", str(archive), args.base]
        subprocess.run([*command, "daemon"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(base, filter="data")
        hook = base / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HOOK)
        paths = {"base": base / "daemon", "now": ROOT / "daemon"}
        runs: dict[str, list[Run]] = {"base": [], "now": []}
        for repeat in range(args.repeats):
            order = ("base", "now") if repeat % 2 == 0 else ("now", "base")
            for name in order:
                out = base / f"callbacks-{name}-{repeat}.txt"
                runs[name].append(measure(paths[name], hook, out))
                shown = {k: round(v, 2) for k, v in runs[name][-1].items()}
                print(name, shown, flush=True)
    load = os.getloadavg()
    print(
        f"\nbase {args.base}, {args.repeats} interleaved runs each, medians "
        f"(shared machine, load average {load[0]:.1f} / {load[1]:.1f})"
    )
    print("| what | base | now | now / base |")
    print("| --- | --- | --- | --- |")
    rows = [
        ("firing_s", "write to all 5,000 firing (`status`)", "s"),
        ("logged_s", "write to all 5,000 `alert.fired` lines in the log", "s"),
        ("max_lag_ms", "the loop's longest stall (`loop.max_lag_ms`)", "ms"),
        ("lag_before_ms", "... of which before the write (start-up)", "ms"),
        ("turn", "longest loop turn (its callbacks one after another)", "ms"),
        *((kind, f"longest callback: {kind}", "ms") for kind in (*KINDS, "other")),
    ]
    for key, what, unit in rows:
        before = statistics.median(r[key] for r in runs["base"])
        now = statistics.median(r[key] for r in runs["now"])
        ratio = f"{now / before:.2f}" if before else "-"
        digits = 2 if unit == "s" else 0
        cells = " | ".join(
            # Only callbacks over 20 ms were recorded.
            f"{v:.{digits}f} {unit}" if v or unit == "s" else "< 20 ms"
            for v in (before, now)
        )
        print(f"| {what} | {cells} | {ratio} |")


if __name__ == "__main__":
    main()
