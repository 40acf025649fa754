"""What ``import perfwarden.client`` costs a fresh interpreter: time and memory.

Each repeat starts interpreters in turn (interleaved, so that drift on a shared
machine hits all alike): one that imports nothing, one that imports ``json`` (a
standard-library reference of known weight), one that imports the client, and one
that imports the client and sends a first metric (which loads ``socket``).
Each reports, from inside, the wall time of its import statement
(``time.perf_counter`` around it) and its RSS growth (``VmRSS`` before and after).
The figure is the median over repeats.

Usage::

    python bench/client_import.py --repeats 21
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import time
def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
r0 = rss(); t0 = time.perf_counter()
{statement}
t1 = time.perf_counter(); r1 = rss()
print((t1 - t0) * 1000.0, r1 - r0)
"""


def run(statement: str) -> tuple[float, int]:
    """(milliseconds, KiB) of *statement* in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def main(argv: list[str] | None = None) -> int:
    """Print medians; optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    statements = {
        "nothing": "pass",
        "json": "import json",
        "client": "import perfwarden.client",
        "client+send": (
            "import perfwarden.client; c = perfwarden.client.Client('/nonexistent');"
            " c.gauge('x', 1); c.flush()"
        ),
    }
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in statements}
    for _ in range(args.repeats):
        for name, statement in statements.items():
            samples[name].append(run(statement))
    result = {
        name: {
            "ms": round(statistics.median(ms for ms, _ in values), 2),
            "kib": statistics.median(kib for _, kib in values),
        }
        for name, values in samples.items()
    }
    for name, figures in result.items():
        print(f"{name:<12} {figures['ms']:>7.2f} ms  {figures['kib']:>6} KiB")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
