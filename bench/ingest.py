"""Ingest throughput, loss and memory of a real perfwarden daemon.

Runs ``perfwarden run`` in a subprocess (:class:`perfwarden.testing.DaemonProcess`)
and, in the same run and in rotation, measures:

* ``dgram``        N sender processes, blocking ``metrics.sock`` datagrams;
* ``dgram-nb``     the same with non-blocking senders that drop on EAGAIN, as
                   DogStatsD clients do (the drops are counted by the senders);
* ``stream``       N connections to ``metrics.stream.sock``, 64 KiB ``sendall``s;
* ``base-count``   a bare asyncio receiver (``bench/baseline_receiver.py``) that only
                   drains the datagram socket and counts lines;
* ``base-parse``   the same receiver also parsing name/value/type/tags minimally;

then the RSS of a fresh daemon holding 100 series x 1000 samples.

Rates are *accepted* lines per second from ``status`` (the daemon's ``ingest.accepted``
delta over the measured interval, after a warm-up), so nothing counts that was not
stored. Every run also checks ``received = accepted + malformed + ignored + dropped``
and, once the senders stopped and the daemon caught up, ``received == sent``.

Usage::

    python bench/ingest.py                       # ~1.5 minutes, writes
                                                 # bench/results/ingest-latest.json
    python bench/ingest.py --duration 5 --repeats 5
    python bench/ingest.py --only dgram --senders 1 --profile /tmp/pw.raw
    python bench/ingest.py --only dgram --checkpoint-interval 0   # state off
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfwarden.paths import METRICS_SOCKET, METRICS_STREAM_SOCKET
from perfwarden.testing import DaemonProcess, wait_until

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ingest-latest.json"
CONFIG = "version: 1\n"
KINDS = ("dgram", "dgram-nb", "stream", "base-count", "base-parse")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- payloads ----------


def make_lines(rng: random.Random, count: int, series: int, start: int) -> list[bytes]:
    """``count`` timing lines cycling over ``series`` tag values, from ``start``."""
    return [
        b"bench.metric:%.3f|ms|#series:%d\n"
        % (rng.uniform(1.0, 1000.0), (start + i) % series)
        for i in range(count)
    ]


def make_datagrams(seed: int, lines: int, series: int, count: int = 256) -> list[bytes]:
    rng = random.Random(seed)
    return [b"".join(make_lines(rng, lines, series, i * lines)) for i in range(count)]


def make_chunks(
    seed: int, chunk_bytes: int, series: int, count: int = 16
) -> list[tuple[bytes, int]]:
    """Stream writes of whole lines, each close to ``chunk_bytes``, with line counts."""
    rng = random.Random(seed)
    chunks = []
    start = 0
    for _ in range(count):
        lines: list[bytes] = []
        size = 0
        while True:
            (line,) = make_lines(rng, 1, series, start)
            if size + len(line) > chunk_bytes:
                break
            lines.append(line)
            size += len(line)
            start += 1
        chunks.append((b"".join(lines), len(lines)))
    return chunks


# -- sender processes ----------


@dataclass(frozen=True)
class SenderSpec:
    """What one sender process sends, where, and when (monotonic clock)."""

    path: str
    seed: int
    series: int
    t_start: float
    t_end: float
    lines: int = 32  # per datagram
    blocking: bool = True
    chunk_bytes: int = 65536  # per stream write


def _datagram_sender(spec: SenderSpec, out: Any) -> None:
    lines = spec.lines
    payloads = make_datagrams(spec.seed, lines, spec.series)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.connect(spec.path)
    sock.setblocking(spec.blocking)
    send = sock.send
    clock = time.monotonic
    t_end = spec.t_end
    sent = dropped = i = 0
    time.sleep(max(0.0, spec.t_start - clock()))
    if spec.blocking:
        while (i & 63) or clock() < t_end:
            send(payloads[i & 255])
            i += 1
        sent = i
    else:
        while (i & 63) or clock() < t_end:
            try:
                send(payloads[i & 255])
                sent += 1
            except BlockingIOError:
                dropped += 1
            i += 1
    sock.close()
    out.put({"sent": sent * lines, "dropped": dropped * lines, "datagrams": sent})


def _stream_sender(spec: SenderSpec, out: Any) -> None:
    chunks = make_chunks(spec.seed, spec.chunk_bytes, spec.series)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(spec.path)
    clock = time.monotonic
    t_end = spec.t_end
    sent = i = 0
    time.sleep(max(0.0, spec.t_start - clock()))
    while clock() < t_end:
        data, count = chunks[i & 15]
        sock.sendall(data)
        sent += count
        i += 1
    sock.close()
    out.put({"sent": sent, "dropped": 0, "datagrams": 0})


# -- targets under test ----------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class Perfwarden:
    """The daemon under test and its counters."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        assert daemon.process is not None
        self.pid = daemon.process.pid
        self.datagram_path = str(daemon.socket_dir / METRICS_SOCKET)
        self.stream_path = str(daemon.socket_dir / METRICS_STREAM_SOCKET)

    def counters(self) -> dict[str, Any]:
        status = self.daemon.request("status")
        ingest = dict(status["ingest"])
        ingest["rss_mb"] = status["memory"]["rss_mb"]
        ingest["series"] = status["series"]
        total = (
            ingest["accepted"]
            + ingest["malformed"]
            + ingest["ignored"]
            + ingest["dropped"]
        )
        ingest["unaccounted"] = ingest["received"] - total
        return ingest


class Baseline:
    """A ``baseline_receiver.py`` subprocess and its counters."""

    def __init__(self, mode: str, directory: Path) -> None:
        self.datagram_path = str(directory / f"{mode}.sock")
        self.control_path = str(directory / f"{mode}.ctl")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "baseline_receiver.py"),
                "--socket",
                self.datagram_path,
                "--control",
                self.control_path,
                "--mode",
                mode,
            ],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"READY":
            msg = f"baseline receiver {mode} did not start"
            raise RuntimeError(msg)
        self.pid = self.process.pid

    def counters(self) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(self.control_path)
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        counts = json.loads(data)
        return {
            "received": counts["lines"],
            "accepted": counts["lines"],
            "unaccounted": 0,
            "bad": counts["bad"],
        }

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- one measurement ----------


def measure(
    target: Perfwarden | Baseline,
    kind: str,
    senders: int,
    args: argparse.Namespace,
    seed: int,
) -> dict[str, Any]:
    """Run ``senders`` processes against ``target``; rate over the measured interval."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    before = target.counters()
    t_start = time.monotonic() + 0.3  # time for the senders to build their payloads
    t_measure = t_start + args.warmup
    t_end = t_measure + args.duration + 0.2
    processes = []
    for n in range(senders):
        stream = kind == "stream"
        path = target.datagram_path
        if stream:
            assert isinstance(target, Perfwarden)
            path = target.stream_path
        spec = SenderSpec(
            path=path,
            seed=seed + n,
            series=args.series,
            t_start=t_start,
            t_end=t_end,
            lines=args.lines,
            blocking=kind != "dgram-nb",
            chunk_bytes=args.chunk_bytes,
        )
        proc = ctx.Process(
            target=_stream_sender if stream else _datagram_sender, args=(spec, out)
        )
        proc.start()
        processes.append(proc)
    time.sleep(max(0.0, t_measure - time.monotonic()))
    first, cpu0, t0 = _sample(target)
    time.sleep(max(0.0, t_measure + args.duration - time.monotonic()))
    second, cpu1, t1 = _sample(target)
    results = [out.get(timeout=60 + args.duration) for _ in processes]
    for proc in processes:
        proc.join(30)
    sent = sum(r["sent"] for r in results)
    client_dropped = sum(r["dropped"] for r in results)

    # Let the target catch up with what is still queued, then compare with sent.
    def caught_up() -> dict[str, Any] | None:
        now = target.counters()
        return now if now["received"] - before["received"] >= sent else None

    try:
        after = wait_until(caught_up, timeout=30, interval=0.05)
    except TimeoutError:
        after = target.counters()
    received = after["received"] - before["received"]
    accepted = second["accepted"] - first["accepted"]
    elapsed = t1 - t0
    row: dict[str, Any] = {
        "kind": kind,
        "senders": senders,
        "elapsed_s": round(elapsed, 3),
        "lines_per_s": round(accepted / elapsed),
        "cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "unaccounted": after["unaccounted"],
        "client_dropped": client_dropped,
        "client_drop_pct": round(
            100 * client_dropped / max(client_dropped + sent, 1), 2
        ),
    }
    if isinstance(target, Perfwarden):
        row["rss_mb"] = after["rss_mb"]
        row["accepted_delta"] = after["accepted"] - before["accepted"]
        row["malformed_delta"] = after["malformed"] - before["malformed"]
        row["dropped_delta"] = after["dropped"] - before["dropped"]
    return row


def _sample(target: Perfwarden | Baseline) -> tuple[dict[str, Any], float, float]:
    t_before = time.monotonic()
    cpu = cpu_seconds(target.pid)
    counters = target.counters()
    return counters, cpu, (t_before + time.monotonic()) / 2


# -- memory ----------


def measure_rss(args: argparse.Namespace) -> dict[str, Any]:
    """RSS of a fresh daemon, idle and after 100 series x 1000 samples."""
    with DaemonProcess(CONFIG) as daemon:
        target = Perfwarden(daemon)
        idle = target.counters()
        per_series = 1000
        total = args.series * per_series
        payloads = make_datagrams(7, args.lines, args.series, total // args.lines)
        daemon.send_datagrams(payloads)
        after = daemon.wait_received(idle["received"] + len(payloads) * args.lines)
        time.sleep(0.2)
        filled = target.counters()
        stats = daemon.request("stats")
        sizes = Counter(s["sample_size"] for s in stats["series"])
        return {
            "rss_mb_idle": idle["rss_mb"],
            "rss_mb_filled": filled["rss_mb"],
            "series": filled["series"],
            "samples_accepted": after["accepted"],
            "window_sizes": {str(k): v for k, v in sizes.items()},
            "unaccounted": filled["unaccounted"],
        }


# -- profiling ----------


def profile(target: Perfwarden, args: argparse.Namespace, path: Path) -> dict[str, Any]:
    """py-spy the daemon during one datagram measurement; summarise the raw stacks."""
    py_spy = Path(sys.executable).parent / "py-spy"
    command = [
        str(py_spy if py_spy.exists() else "py-spy"),
        "record",
        "--pid",
        str(target.pid),
        "--format",
        "raw",
        "--rate",
        "250",
        "--duration",
        str(int(args.warmup + args.profile_duration + 2)),
        "--output",
        str(path),
        "--nonblocking",
    ]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    profile_args = argparse.Namespace(
        **{**vars(args), "duration": args.profile_duration}
    )
    row = measure(target, "dgram", args.senders[0], args=profile_args, seed=99)
    _, err = spy.communicate(timeout=120)
    if spy.returncode != 0:
        print(err.decode(errors="replace"), file=sys.stderr)
    summary = summarise_profile(path) if path.exists() else {}
    return {"row": row, "profile": summary}


def summarise_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive percentages per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f.rsplit(" (", 1)[0] + _short_loc(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {}

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * c / total, 1)) for f, c in counter.most_common(top)]

    return {"samples": total, "self": pct(own), "inclusive": pct(inclusive)}


def _short_loc(frame: str) -> str:
    _, _, loc = frame.rpartition(" (")
    file, _, _ = loc.rstrip(")").partition(":")
    return f" ({Path(file).name})" if file else ""


# -- reporting ----------


def median_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["kind"], row["senders"]), []).append(row)
    medians = []
    for (kind, senders), group in groups.items():
        med: dict[str, Any] = {"kind": kind, "senders": senders, "repeats": len(group)}
        for key in ("lines_per_s", "cpu_pct", "client_drop_pct", "rss_mb"):
            values = [r[key] for r in group if key in r]
            if values:
                med[key] = statistics.median(values)
        med["lines_per_s_all"] = [r["lines_per_s"] for r in group]
        med["lost_total"] = sum(r["lost"] for r in group)
        med["unaccounted_max"] = max(r["unaccounted"] for r in group)
        medians.append(med)
    by_key = {(m["kind"], m["senders"]): m for m in medians}
    for med in medians:
        if med["kind"] in {"dgram", "dgram-nb"}:
            for base in ("base-count", "base-parse"):
                ref = by_key.get((base, med["senders"]))
                if ref and ref["lines_per_s"]:
                    med[f"vs_{base}"] = round(
                        med["lines_per_s"] / ref["lines_per_s"], 3
                    )
    return medians


def print_table(medians: list[dict[str, Any]], memory: dict[str, Any] | None) -> None:
    header = (
        f"{'measurement':<12}{'senders':>8}{'lines/s':>12}{'min..max':>26}"
        f"{'cpu%':>7}{'lost':>6}{'unacc':>6}{'cl.drop%':>9}"
        f"{'/count':>8}{'/parse':>8}"
    )
    print(header)
    print("-" * len(header))
    for m in medians:
        spread = f"{min(m['lines_per_s_all']):,}..{max(m['lines_per_s_all']):,}"
        print(
            f"{m['kind']:<12}{m['senders']:>8}{round(m['lines_per_s']):>12,}"
            f"{spread:>26}{m.get('cpu_pct', 0):>7.0f}{m['lost_total']:>6}"
            f"{m['unaccounted_max']:>6}{m.get('client_drop_pct', 0):>9.1f}"
            f"{m.get('vs_base-count', ''):>8}{m.get('vs_base-parse', ''):>8}"
        )
    if memory:
        print(
            f"\nRSS: {memory['rss_mb_idle']} MB idle, {memory['rss_mb_filled']} MB "
            f"with {memory['series']} series x 1000 samples"
        )


def print_profile(summary: dict[str, Any]) -> None:
    if not summary:
        print("no profile samples")
        return
    print(f"\nprofile: {summary['samples']} samples (py-spy, idle excluded)")
    print("  self%   function")
    for name, pct in summary["self"]:
        print(f"  {pct:5.1f}   {name}")
    print("  incl%   function")
    for name, pct in summary["inclusive"]:
        print(f"  {pct:5.1f}   {name}")


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    qlen = Path("/proc/sys/net/unix/max_dgram_qlen").read_text().strip()
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "max_dgram_qlen": int(qlen),
    }


# -- main ----------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="perfwarden ingest benchmark",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=2.0, help="measured s")
    parser.add_argument("--warmup", type=float, default=0.5, help="s before measuring")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--senders",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2],
        help="comma-separated sender process counts",
    )
    parser.add_argument("--lines", type=int, default=32, help="lines per datagram")
    parser.add_argument("--series", type=int, default=100, help="distinct series")
    parser.add_argument(
        "--chunk-bytes", type=int, default=65536, help="bytes per stream sendall"
    )
    parser.add_argument(
        "--only",
        type=lambda s: s.split(","),
        default=list(KINDS),
        help=f"comma-separated subset of {','.join(KINDS)}",
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the RSS check")
    parser.add_argument(
        "--profile",
        type=Path,
        help="also py-spy one dgram run into this raw (collapsed stacks) file",
    )
    parser.add_argument(
        "--profile-duration", type=float, default=5.0, help="measured s when profiling"
    )
    parser.add_argument(
        "--checkpoint-interval",
        help="the daemon's state.checkpoint_interval (e.g. 0 = off, 2s, 250ms); "
        "default: the daemon's default",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results")
    return parser.parse_args(argv)


def daemon_config(args: argparse.Namespace) -> str:
    """The measured daemon's config: ``CONFIG`` plus the checkpoint interval."""
    if args.checkpoint_interval is None:
        return CONFIG
    return f"{CONFIG}state:\n  checkpoint_interval: {args.checkpoint_interval}\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unknown = set(args.only) - set(KINDS)
    if unknown:
        print(f"unknown measurement(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    print(f"machine: {machine()}", flush=True)
    rows: list[dict[str, Any]] = []
    profile_result: dict[str, Any] | None = None
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pwb-")))
        daemon = stack.enter_context(DaemonProcess(daemon_config(args)))
        targets: dict[str, Perfwarden | Baseline] = {}
        pw = Perfwarden(daemon)
        for kind in args.only:
            if kind.startswith("base-"):
                base = Baseline(kind.removeprefix("base-"), tmp)
                stack.callback(base.close)
                targets[kind] = base
            else:
                targets[kind] = pw
        seed = 0
        for repeat in range(args.repeats):
            for kind in args.only:
                for senders in args.senders:
                    seed += 10
                    row = measure(targets[kind], kind, senders, args, seed)
                    row["repeat"] = repeat
                    rows.append(row)
                    print(
                        f"  [{repeat + 1}/{args.repeats}] {kind:<10} x{senders}: "
                        f"{row['lines_per_s']:>9,} lines/s, cpu {row['cpu_pct']}%, "
                        f"lost {row['lost']}, unaccounted {row['unaccounted']}, "
                        f"client drops {row['client_drop_pct']}%",
                        flush=True,
                    )
        if args.profile is not None:
            profile_result = profile(pw, args, args.profile)
        final = pw.counters()
        state = daemon.request("status").get("state")
        if state is not None:
            print(
                f"state: {state['checkpoints']} checkpoints, "
                f"{state['failures']} failed, {state['skipped']} skipped; last: "
                f"snapshot {state['last_snapshot_ms']} ms (loop thread), "
                f"write {state['last_write_ms']} ms (worker), "
                f"{state['last_series_written']} series, {state['bytes']} bytes",
                flush=True,
            )
    memory = None if args.no_rss else measure_rss(args)
    medians = median_rows(rows)
    print()
    print_table(medians, memory)
    if profile_result is not None:
        print_profile(profile_result["profile"])
    result = {
        "command": " ".join(["python", "bench/ingest.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "parameters": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        },
        "medians": medians,
        "runs": rows,
        "memory": memory,
        "daemon_final_counters": final,
        "state": state,
        "profile": profile_result,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
