"""The demo's example workload: real work whose cost depends on perfwarden's knobs.

Each request "loads a context" the way an agent runtime might: it takes
``context.layers`` layers of documents, drops a ``compression.ratio`` share of their
sentences (semantic compression), and deflates what is left with zlib; an LRU cache
of ``cache.size`` processed chunks saves repeated work. It reports, through
:mod:`perfwarden.client`:

- ``context_loading_time`` (ms): the wall time of the request;
- ``token_efficiency_ratio``: the share of tokens the compression removed;
- ``quality_retention_score``: what survives of the context's information, falling
  once compression or layer reduction goes too far (the guard metric that makes
  perfwarden revert an over-eager optimization).

Nothing is simulated: the time is measured on real zlib work, so the effect of each
knob change is what the daemon's statistical test sees.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

# The workload's randomness shapes text and access patterns; nothing secret.
# ruff: noqa: S311

if TYPE_CHECKING:
    from perfwarden.client import Client

__all__ = ["BAD_KNOBS", "GOOD_KNOBS", "Workload", "demo_config"]

_WORDS: Final = [
    "agent",
    "context",
    "token",
    "layer",
    "cache",
    "parallel",
    "batch",
    "latency",
    "quality",
    "score",
    "memory",
    "request",
    "response",
    "model",
    "prompt",
    "tool",
    "result",
    "plan",
    "step",
    "search",
    "index",
    "document",
    "summary",
    "detail",
    "signal",
    "window",
    "interval",
    "confidence",
    "threshold",
    "target",
    "warning",
]
_LAYER_CHUNKS: Final = 24
_CHUNK_SENTENCES: Final = 40

#: The knobs the demo starts from: deliberately bad.
BAD_KNOBS: Final = {"compression.ratio": 0.1, "cache.size": 0, "context.layers": 8}
#: Knobs a good tuning reaches (used only to calibrate the thresholds).
GOOD_KNOBS: Final = {"compression.ratio": 0.5, "cache.size": 256, "context.layers": 4}


def _corpus(seed: int = 7) -> list[list[list[str]]]:
    """Layers of chunks of sentences of deterministic pseudo-text."""
    rng = random.Random(seed)
    return [
        [
            [
                " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 16))) + "."
                for _ in range(_CHUNK_SENTENCES)
            ]
            for _ in range(_LAYER_CHUNKS)
        ]
        for _ in range(8)
    ]


class Workload:
    """Runs requests in a thread, reading knobs live, reporting metrics."""

    def __init__(self, client: Client, seed: int = 1) -> None:
        self._client = client
        self._corpus = _corpus()
        self._rng = random.Random(seed)
        self._cache: OrderedDict[tuple[int, int, float], bytes] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.requests = 0

    def knob(self, name: str, default: float) -> float:
        """The live value of a knob (the default while unknown)."""
        value = self._client.knobs.get(name, default)
        return float(value) if isinstance(value, int | float) else default

    def request(
        self, ratio: float, cache_size: int, layers: int
    ) -> tuple[float, float]:
        """One request; returns (milliseconds, token efficiency)."""
        started = time.perf_counter()
        kept_words = total_words = 0
        for layer in range(layers):
            # Requests touch a skewed subset of chunks: a cache helps, more with size.
            for _ in range(6):
                chunk = min(int(self._rng.paretovariate(1.2)) - 1, _LAYER_CHUNKS - 1)
                key = (layer, chunk, ratio)
                cached = self._cache.get(key)
                sentences = self._corpus[layer][chunk]
                words = sum(len(s.split()) for s in sentences)
                total_words += words
                keep = sentences[: max(1, round(len(sentences) * (1 - ratio)))]
                kept_words += sum(len(s.split()) for s in keep)
                if cached is not None:
                    self._cache.move_to_end(key)
                    continue
                data = zlib.compress(" ".join(keep).encode() * 3, 6)
                if cache_size > 0:
                    self._cache[key] = data
                    while len(self._cache) > cache_size:
                        self._cache.popitem(last=False)
        elapsed = (time.perf_counter() - started) * 1000.0
        return elapsed, 1.0 - kept_words / total_words

    def quality(self, ratio: float, layers: int) -> float:
        """Information retained: fine up to 50% compression and 4 layers, then less."""
        score = 0.975 - 0.6 * max(0.0, ratio - 0.5) - 0.04 * max(0, 4 - layers)
        return max(0.0, score + self._rng.uniform(-0.01, 0.01))

    def step(self) -> None:
        """One request with the current knobs, and its metrics sent."""
        ratio = round(self.knob("compression.ratio", BAD_KNOBS["compression.ratio"]), 3)
        cache_size = int(self.knob("cache.size", BAD_KNOBS["cache.size"]))
        layers = int(self.knob("context.layers", BAD_KNOBS["context.layers"]))
        elapsed, efficiency = self.request(ratio, cache_size, layers)
        client = self._client
        client.timing("context_loading_time", elapsed)
        client.gauge("token_efficiency_ratio", efficiency)
        client.gauge("quality_retention_score", self.quality(ratio, layers))
        self.requests += 1

    def calibrate(self, repeats: int = 40) -> tuple[float, float]:
        """Median request time (ms) with the bad and with the good knobs."""

        def median(knobs: dict[str, float]) -> float:
            self._cache.clear()
            times = sorted(
                self.request(
                    knobs["compression.ratio"],
                    int(knobs["cache.size"]),
                    int(knobs["context.layers"]),
                )[0]
                for _ in range(repeats)
            )
            return times[len(times) // 2]

        bad, good = median(BAD_KNOBS), median(GOOD_KNOBS)
        self._cache.clear()
        return bad, good

    def start(self, pause: float = 0.002) -> None:
        """Run requests in a background thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(pause):
                self.step()

        self._thread = threading.Thread(target=loop, name="demo-workload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the request thread and flush the client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._client.flush()


def demo_config(bad_ms: float, good_ms: float) -> str:
    """The demo daemon's config, with latency levels set from the calibration."""
    target = good_ms * 1.3
    critical = max(bad_ms * 0.75, target * 1.6)
    warning = (target + critical) / 2
    ratio = BAD_KNOBS["compression.ratio"]
    return f"""\
version: 1
statistics: {{min_samples: 20, window: 1000}}
evaluation: {{interval: 0.5s, basis: ci, window: 60, hysteresis: 0.05}}
optimizer:
  validation_samples: 80
  significance: 0.01
  cooldown: 0.5s
  validation_timeout: 20s
  max_actions_per_hour: 60
knobs:
  compression.ratio: {{min: 0.1, max: 0.9, step: 0.1, initial: {ratio}}}
  cache.size: {{min: 0, max: 512, step: 64, initial: {BAD_KNOBS["cache.size"]}}}
  context.layers: {{min: 1, max: 8, initial: {BAD_KNOBS["context.layers"]}}}
metrics:
  context_loading_time:
    unit: ms
    bound: upper
    target: {target:.3f}
    warning: {warning:.3f}
    critical: {critical:.3f}
    optimizers: [compression, context_layers, caching]
  token_efficiency_ratio:
    unit: ratio
    bound: lower
    target: 0.40
    warning: 0.35
    critical: 0.30
    optimizers: [compression]
  quality_retention_score:
    unit: ratio
    bound: lower
    target: 0.95
    warning: 0.90
    critical: 0.85
    guard: true
plugins:
  exec: {{enabled: false}}
  webhook: {{enabled: false}}
"""
