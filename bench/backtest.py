"""What the recording costs the daemon, and how fast ``perfwarden backtest`` replays.

Two measurements, each beside its baseline in the same run:

* ``recording``: datagram ingest of two real daemons, identical but for
  ``recording: {enabled: true}``, measured in alternation (off, on, off, on, ...)
  with ``bench/ingest.py``'s senders (32 lines per datagram, 100 series, blocking
  sends). Reported: accepted lines/s of each, the per-pair ratio on/off (median),
  and the share of accepted samples the recording wrote (it drops, and counts,
  rather than slow the loop).
* ``replay``: the recording the daemon just made, replayed through the backtest
  engine (the daemon's own store, evaluator and ticks) with the same config; and a
  synthetic recording with a chosen number of samples per series per batch (a
  quieter daemon gives smaller batches, which cost more per sample). Reported:
  samples/s of the whole replay (reading, decompressing, replaying), beside the
  rate of only reading and decompressing the same recording.

Usage::

    python bench/backtest.py                 # ~2 minutes
    python bench/backtest.py --repeats 3 --duration 2 --only replay
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ingest  # noqa: E402 - bench/ingest.py: the senders and the measurement

from perfwarden.alerts.evaluator import Evaluator  # noqa: E402
from perfwarden.backtest.replay import Replay  # noqa: E402
from perfwarden.config.load import parse_config  # noqa: E402
from perfwarden.ingest.receivers import Ingestor  # noqa: E402
from perfwarden.recording.reader import read_recording  # noqa: E402
from perfwarden.recording.recorder import TICK_KEY, Recorder  # noqa: E402
from perfwarden.recording.segments import MAGIC, encode_block  # noqa: E402
from perfwarden.series.store import MetricStore  # noqa: E402
from perfwarden.testing import DaemonProcess  # noqa: E402

# The metric carries levels so that every batch is judged (live and in replay);
# ingest's values are uniform on [1, 1000], so these never fire.
CONFIG = """\
version: 1
metrics:
  bench.metric: {bound: upper, warning: 900, critical: 950}
"""
RECORDING = "recording: {enabled: true}\n"


def measure_recording(args: argparse.Namespace, keep: Path) -> dict[str, Any]:
    """Alternate off/on datagram runs; return rows, ratios and what was recorded."""
    rows: list[dict[str, Any]] = []
    with (
        DaemonProcess(CONFIG) as off_daemon,
        DaemonProcess(CONFIG + RECORDING) as on_daemon,
    ):
        targets = {
            "off": ingest.Perfwarden(off_daemon),
            "on": ingest.Perfwarden(on_daemon),
        }
        seed = 0
        for repeat in range(args.repeats):
            order = ("off", "on") if repeat % 2 == 0 else ("on", "off")
            pair = {}
            for name in order:
                seed += 10
                row = ingest.measure(targets[name], "dgram", 1, args, seed)
                row["recording"] = name
                row["repeat"] = repeat
                pair[name] = row
                rows.append(row)
                print(
                    f"  [{repeat + 1}/{args.repeats}] recording {name:<3}: "
                    f"{row['lines_per_s']:>9,} lines/s, lost {row['lost']}",
                    flush=True,
                )
            pair["on"]["ratio"] = pair["on"]["lines_per_s"] / pair["off"]["lines_per_s"]
            pair["on"]["cpu_ratio"] = _cpu_per_line(pair["on"]) / _cpu_per_line(
                pair["off"]
            )
        status = on_daemon.request("status")
        recording = status["recording"]
        accepted = status["ingest"]["accepted"]
        on_daemon.stop()
        # The recording outlives the daemon's temporary directory: copy it.
        shutil.copytree(on_daemon.state_dir / "recording", keep)
    recording = {**recording, "accepted_total": accepted}
    ratios = [row["ratio"] for row in rows if "ratio" in row]
    cpu_ratios = [row["cpu_ratio"] for row in rows if "cpu_ratio" in row]
    return {
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "cpu_ratios": [round(r, 3) for r in cpu_ratios],
        "rows": rows,
        "off_median": statistics.median(
            r["lines_per_s"] for r in rows if r["recording"] == "off"
        ),
        "on_median": statistics.median(
            r["lines_per_s"] for r in rows if r["recording"] == "on"
        ),
        "ratio_median": statistics.median(ratios),
        "ratios": [round(r, 3) for r in ratios],
        "recording": recording,
        "recorded_share": recording["samples_written"] / max(accepted, 1),
    }


def measure_inprocess(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The loop's ingest path in one process, recording off and on alternately:
    the daemon's Ingestor, MetricStore and Evaluator on ``bench/ingest.py``'s
    datagrams (one commit and evaluation per 256 datagrams, as a saturated daemon's
    drain of up to 512 gets), with the
    recorder's writer thread running beside it. Less exposed to the other work on
    the machine than two daemons taking turns."""
    datagrams = ingest.make_datagrams(1, args.lines, args.series, 256)
    lines = args.lines * len(datagrams)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu_per_line: dict[str, list[float]] = {"off": [], "on": []}
    written = dropped = 0
    config = parse_config(CONFIG + RECORDING)
    for repeat in range(args.repeats):
        order = ("off", "on") if repeat % 2 == 0 else ("on", "off")
        for name in order:
            store = MetricStore(config.metric_window, config.statistics.max_series)
            evaluator = Evaluator(store, lambda: config)
            ingestor = Ingestor(store, config.ingest.max_line_bytes)
            recorder = None
            if name == "on":
                recorder = Recorder(tmp / f"inproc-{repeat}", lambda: config.recording)
                recorder.apply()
                store.on_ingest = recorder.on_ingest
            rounds = 0
            cpu = time.process_time()
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < args.duration:
                for datagram in datagrams:
                    ingestor.feed(datagram)
                ingestor.commit()
                evaluator.evaluate_updated()
                if recorder is not None:
                    recorder.on_tick(time.monotonic())
                rounds += 1
            rates[name].append(rounds * lines / elapsed)
            # CPU of every thread of the process (the writer's too), per line.
            cpu_per_line[name].append((time.process_time() - cpu) / (rounds * lines))
            if recorder is not None:
                recorder.close()
                written += recorder.written
                dropped += recorder.dropped
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    cpu_ratios = [
        on / off
        for on, off in zip(cpu_per_line["on"], cpu_per_line["off"], strict=True)
    ]
    return {
        "cpu_ns_per_line": {
            name: round(statistics.median(values) * 1e9, 1)
            for name, values in cpu_per_line.items()
        },
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "cpu_ratios": [round(r, 3) for r in cpu_ratios],
        "off_median": statistics.median(rates["off"]),
        "on_median": statistics.median(rates["on"]),
        "ratio_median": statistics.median(ratios),
        "ratios": [round(r, 3) for r in ratios],
        "written": written,
        "dropped": dropped,
    }


def _cpu_per_line(row: dict[str, Any]) -> float:
    """The daemon's CPU seconds (all threads) per accepted line."""
    return float(row["cpu_pct"]) / 100 / max(float(row["lines_per_s"]), 1.0)


def synthetic_recording(
    directory: Path, series: int, per_batch: int, seconds: int, interval: float = 1.0
) -> int:
    """A recording of ``series`` series, one batch of ``per_batch`` values per
    series per second, with tick marks; return the sample count."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(7)
    keys = [f"bench.metric|ms|#series:{i}" for i in range(series)]
    start = 1_765_000_000.0
    blocks = []
    samples = 0
    for second in range(seconds):
        at = start + second
        values = rng.uniform(1.0, 1000.0, series * per_batch)
        key_index = [*range(series), 0]
        times = [at] * series + [at + interval / 2]
        counts = [per_batch] * series + [0]
        all_keys = [*keys, TICK_KEY]
        key_index[-1] = series
        blocks.append(
            encode_block(all_keys, key_index, times, [math.nan] * (series + 1),
                         counts, values.tolist())
        )  # fmt: skip
        samples += series * per_batch
    (directory / "00000001.pwrec").write_bytes(MAGIC + b"".join(blocks))
    return samples


def time_replay(directory: Path, repeats: int) -> dict[str, Any]:
    """Samples/s, medians of ``repeats``, of: reading only; replaying chunks already
    in memory (the daemon's store, evaluator and ticks: the floor); both."""
    config = parse_config(CONFIG)
    read_rates, memory_rates, replay_rates = [], [], []
    samples = 0
    for _ in range(repeats):
        started = time.perf_counter()
        chunks = list(read_recording(directory, _fail))
        samples = sum(len(c[2]) for c in chunks)
        read_rates.append(samples / (time.perf_counter() - started))
        started = time.perf_counter()
        Replay(config).run(chunks)
        memory_rates.append(samples / (time.perf_counter() - started))
        del chunks
        started = time.perf_counter()
        result = Replay(config).run(read_recording(directory, _fail))
        replay_rates.append(result.samples / (time.perf_counter() - started))
        assert result.samples == samples
    return {
        "samples": samples,
        "read_only_per_s": round(statistics.median(read_rates)),
        "from_memory_per_s": round(statistics.median(memory_rates)),
        "replay_per_s": round(statistics.median(replay_rates)),
        "replay_runs": [round(r) for r in replay_rates],
    }


def _fail(path: Path, where: str, message: str) -> None:
    msg = f"{path}:{where}: {message}"
    raise AssertionError(msg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="measured s")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=8, help="off/on pairs")
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--lines", type=int, default=32, help="lines per datagram")
    parser.add_argument("--chunk-bytes", type=int, default=65536)
    parser.add_argument(
        "--per-batch",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 10],
        help="synthetic recordings: values per series per batch",
    )
    parser.add_argument("--seconds", type=int, default=300, help="synthetic length")
    parser.add_argument("--replay-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    structlog.configure(
        processors=[_drop], logger_factory=structlog.ReturnLoggerFactory()
    )
    print(f"machine: {ingest.machine()} (shared with other work: figures are noisy)")
    with tempfile.TemporaryDirectory(prefix="pwbt-") as tmp:
        recorded = Path(tmp) / "recorded"
        cost = measure_recording(args, recorded)
        print(
            f"\nrecording cost: off {cost['off_median']:,.0f} lines/s, "
            f"on {cost['on_median']:,.0f} lines/s; on/off per pair: median "
            f"{cost['ratio_median']:.3f} {cost['ratios']}"
        )
        print(
            f"daemon CPU per accepted line, on/off per pair: median "
            f"{cost['cpu_ratio_median']:.3f} {cost['cpu_ratios']}"
        )
        rec = cost["recording"]
        print(
            f"recorded {rec['samples_written']:,} of {rec['accepted_total']:,} "
            "accepted "
            f"({cost['recorded_share']:.1%}), dropped {rec['dropped']:,}, "
            f"{rec['bytes'] / 2**20:.1f} MiB in {rec['segments']} segments "
            f"({8 * rec['bytes'] / max(rec['samples_written'], 1):.1f} bits/sample)"
        )
        inproc = measure_inprocess(args, Path(tmp))
        print(
            f"in-process ingest path: off {inproc['off_median']:,.0f} lines/s, on "
            f"{inproc['on_median']:,.0f} lines/s; on/off per pair: median "
            f"{inproc['ratio_median']:.3f} {inproc['ratios']}; recorded "
            f"{inproc['written']:,}, dropped {inproc['dropped']:,}"
        )
        print(
            f"in-process CPU per line (all threads): {inproc['cpu_ns_per_line']} ns;"
            f" on/off per pair: median {inproc['cpu_ratio_median']:.3f} "
            f"{inproc['cpu_ratios']}"
        )
        print("\nreplay (samples/s, medians):")
        runs = {"daemon's recording": time_replay(recorded, args.replay_repeats)}
        for per_batch in args.per_batch:
            directory = Path(tmp) / f"synthetic-{per_batch}"
            synthetic_recording(directory, args.series, per_batch, args.seconds)
            runs[f"{args.series} series x {per_batch}/batch"] = time_replay(
                directory, args.replay_repeats
            )
        for name, run in runs.items():
            print(
                f"  {name:<28} {run['samples']:>10,} samples: replay "
                f"{run['replay_per_s']:>10,}/s (from memory "
                f"{run['from_memory_per_s']:,}/s, read only "
                f"{run['read_only_per_s']:,}/s) {run['replay_runs']}"
            )
    return 0


def _drop(logger: Any, name: str, event: Any) -> Any:
    raise structlog.DropEvent


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
