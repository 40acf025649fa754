"""Issue 16's ratio with its uncertainty: CPU per line at many series over CPU per
line at few, from the shared harness's ingest results.

Reads the JSON lines ``ab/ingest_ab.py`` writes (``--out``; ``FILE:KIND`` takes
that kind from that file, for a run where the build measured ran under another
kind's name), pairs each repeat's
cell at ``--many`` series with the same repeat's cell at ``--few`` (same file,
transport and kind), and prints per transport the median of those per-repeat
ratios, a bootstrap 90% interval of that median, and the share of repeats within
``--goal``. Several files pool their repeats (runs on other days, other loads).

    python bench/ratio_ci.py run1.jsonl run2.jsonl            # kind "pw"
    python bench/ratio_ci.py run.jsonl swapped.jsonl:pw-base --many 2000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import defaultdict
from pathlib import Path


def ratios(
    sources: list[str], kind: str, few: int, many: int
) -> dict[str, list[float]]:
    """Per transport, CPU per line at ``many`` over ``few`` series, per repeat."""
    pooled: dict[str, list[float]] = defaultdict(list)
    for source in sources:
        name, _, wanted = source.partition(":")
        path, kind_here = Path(name), wanted or kind
        cells: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
        for line in path.read_text().splitlines():
            run = json.loads(line)
            if run.get("kind") != kind_here or run.get("error") or not run.get("cpu_s"):
                continue
            cells[run["transport"], run["rep"]][run["names"]] = run["cpu_s"] / run["n"]
        for (transport, _), cpu in sorted(cells.items()):
            if few in cpu and many in cpu:
                pooled[transport].append(cpu[many] / cpu[few])
    return pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="FILE or FILE:KIND")
    parser.add_argument("--kind", default="pw")
    parser.add_argument("--few", type=int, default=100)
    parser.add_argument("--many", type=int, default=10_000)
    parser.add_argument("--goal", type=float, default=1.5)
    args = parser.parse_args()
    rng = random.Random(1)
    print("| transport | repeats | median ratio | 90% interval | within the goal |")
    print("| --- | ---: | ---: | --- | ---: |")
    for transport, values in sorted(
        ratios(args.results, args.kind, args.few, args.many).items()
    ):
        medians = sorted(
            statistics.median(rng.choices(values, k=len(values))) for _ in range(10_000)
        )
        within = sum(value <= args.goal for value in values) / len(values)
        print(
            f"| {transport} | {len(values)} | {statistics.median(values):.2f} | "
            f"{medians[500]:.2f}-{medians[9499]:.2f} | {within:.0%} |"
        )


if __name__ == "__main__":
    main()
