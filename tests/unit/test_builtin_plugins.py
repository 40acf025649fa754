"""perfwarden_optimizers: the seven built-ins, called as the daemon calls them."""

from __future__ import annotations

import json
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfwarden.plugin_api import (
    ENTRY_POINT_GROUP,
    KnobChange,
    KnobSpec,
    KnobValue,
    ObservedStats,
    Optimizer,
    OptimizerContext,
    Proposal,
    Violation,
)
from perfwarden_optimizers._common import OptionError, violation_payload
from perfwarden_optimizers.batching import BatchingOptimizer
from perfwarden_optimizers.caching import CachingOptimizer
from perfwarden_optimizers.compression import CompressionOptimizer
from perfwarden_optimizers.context_layers import ContextLayersOptimizer
from perfwarden_optimizers.exec_action import CommandFailed, ExecOptimizer
from perfwarden_optimizers.parallelism import ParallelismOptimizer
from perfwarden_optimizers.webhook import WebhookFailed, WebhookOptimizer, post_json

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from perfwarden_optimizers._knob import KnobOptimizer

BUILTINS = {
    "compression",
    "context_layers",
    "caching",
    "batching",
    "parallelism",
    "exec",
    "webhook",
}

#: The knobs of config/perfwarden.yaml.
SPECS = {
    "compression.ratio": KnobSpec("compression.ratio", 0.4, 0.1, 0.9, 0.1),
    "batch.size": KnobSpec("batch.size", 16, 1, 256),
    "parallelism.limit": KnobSpec("parallelism.limit", 4, 1, 16),
    "cache.size": KnobSpec("cache.size", 256, 0, 4096),
    "context.layers": KnobSpec("context.layers", 4, 1, 8),
}

BOUNDS = {
    "context_loading_time": ("upper", 100.0),
    "command_execution_time": ("upper", 2000.0),
    "memory_usage_mb": ("upper", 50.0),
    "token_efficiency_ratio": ("lower", 0.40),
    "parallel_execution_speedup": ("lower", 2.0),
    "quality_retention_score": ("lower", 0.95),
}


def make_violation(
    metric: str = "context_loading_time",
    observed: float = 180.0,
    *,
    mean: float | None = None,
    p99: float | None = None,
    tags: Mapping[str, str] | None = None,
) -> Violation:
    """A violation of one of the default metrics, observed as a mean."""
    bound, target = BOUNDS[metric]
    stats = ObservedStats(
        sample_size=100,
        mean=observed if mean is None else mean,
        ci_low=observed * 0.95,
        ci_high=observed * 1.05,
        p50=observed,
        p95=observed * 1.5,
        p99=p99,
        min=0.0,
        max=observed * 3,
    )
    return Violation(
        metric=metric,
        tags=MappingProxyType(dict(tags or {})),
        severity="warning",
        basis="mean",
        bound=bound,
        observed=(observed, observed),
        threshold=target * (1.5 if bound == "upper" else 0.8),
        target=target,
        unit=None,
        trend="stable",
        stats=stats,
        correlation_id="c-1",
    )


def make_context(**knobs: KnobValue) -> OptimizerContext:
    """The default specs with the knobs' current values (dotted names as ``a__b``)."""
    values = {name.replace("__", "."): value for name, value in knobs.items()}
    return OptimizerContext(knobs=MappingProxyType(values), specs=SPECS)


def only_change(proposals: list[Proposal]) -> tuple[Proposal, KnobChange]:
    """The single proposal and its single knob change."""
    assert 1 == len(proposals)
    (proposal,) = proposals
    assert 1 == len(proposal.changes)
    assert proposal.action is None
    return proposal, proposal.changes[0]


class TestCompression:
    """compression: one step up the compression ratio."""

    def test_raises_ratio_one_step(self) -> None:
        """0.4 -> 0.5 with the documented estimate 0.5 x 25%."""
        proposal, change = only_change(
            CompressionOptimizer({}).propose(
                make_violation(), make_context(compression__ratio=0.4)
            )
        )
        assert KnobChange("compression.ratio", 0.5) == change
        assert "context_compression" == proposal.strategy
        assert 0.125 == pytest.approx(proposal.expected_improvement)

    def test_token_efficiency_also_raises(self) -> None:
        """A lower-bound token efficiency violation also asks for more compression."""
        _, change = only_change(
            CompressionOptimizer({}).propose(
                make_violation("token_efficiency_ratio", 0.3),
                make_context(compression__ratio=0.4),
            )
        )
        assert 0.5 == change.value

    def test_handles_default_metrics(self) -> None:
        """Latency, memory and token efficiency by default; quality never."""
        plugin = CompressionOptimizer({})
        assert plugin.handles(make_violation("memory_usage_mb", 70))
        assert plugin.handles(make_violation("token_efficiency_ratio", 0.3))
        assert not plugin.handles(make_violation("quality_retention_score", 0.8))

    def test_metrics_option_restricts(self) -> None:
        """``metrics`` replaces the default set."""
        plugin = CompressionOptimizer({"metrics": ("memory_usage_mb",)})
        assert plugin.handles(make_violation("memory_usage_mb", 70))
        assert not plugin.handles(make_violation())

    def test_knob_and_step_options(self) -> None:
        """A renamed knob and a bigger step are used."""
        spec = KnobSpec("zip.level", 3, 1, 9)
        context = OptimizerContext(knobs={"zip.level": 3}, specs={"zip.level": spec})
        _, change = only_change(
            CompressionOptimizer({"knob": "zip.level", "step": 2}).propose(
                make_violation(), context
            )
        )
        assert KnobChange("zip.level", 5) == change

    def test_current_value_defaults_to_initial(self) -> None:
        """A declared knob without a current value starts from its initial value."""
        _, change = only_change(
            CompressionOptimizer({}).propose(make_violation(), make_context())
        )
        assert 0.5 == change.value

    def test_missing_knob_proposes_nothing(self) -> None:
        """No spec for the knob: no proposal."""
        context = OptimizerContext(knobs={}, specs={})
        assert [] == CompressionOptimizer({}).propose(make_violation(), context)

    def test_knob_at_bound_proposes_nothing(self) -> None:
        """At the maximum the clamped value equals the current one."""
        assert [] == CompressionOptimizer({}).propose(
            make_violation(), make_context(compression__ratio=0.9)
        )

    def test_step_clamped_to_bound(self) -> None:
        """A step past the bound stops at the bound, with the smaller estimate."""
        proposal, change = only_change(
            CompressionOptimizer({"step": 0.3}).propose(
                make_violation(), make_context(compression__ratio=0.8)
            )
        )
        assert 0.9 == change.value
        assert 0.5 * 0.1 / 0.8 == pytest.approx(proposal.expected_improvement)

    def test_choice_knob_proposes_nothing(self) -> None:
        """The built-ins turn numeric knobs only."""
        spec = KnobSpec("compression.ratio", "low", choices=("low", "high"))
        context = OptimizerContext(
            knobs={"compression.ratio": "low"}, specs={"compression.ratio": spec}
        )
        assert [] == CompressionOptimizer({}).propose(make_violation(), context)

    @pytest.mark.parametrize(
        "options",
        [
            {"stpe": 0.1},
            {"step": 0},
            {"step": "big"},
            {"elasticity": -1},
            {"max_estimate": 2},
            {"metrics": "context_loading_time"},
            {"knob": ""},
        ],
    )
    def test_bad_options_rejected(self, options: dict[str, object]) -> None:
        """A bad or unknown option fails the plugin at construction."""
        with pytest.raises(OptionError, match="compression: option"):
            CompressionOptimizer(options)


class TestContextLayers:
    """context_layers: one layer fewer."""

    def test_lowers_layers_by_one(self) -> None:
        """4 -> 3 layers, estimate 0.5 x 25%."""
        proposal, change = only_change(
            ContextLayersOptimizer({}).propose(
                make_violation(), make_context(context__layers=4)
            )
        )
        assert KnobChange("context.layers", 3) == change
        assert "context_layer_reduction" == proposal.strategy
        assert 0.125 == pytest.approx(proposal.expected_improvement)

    def test_at_minimum_proposes_nothing(self) -> None:
        """One layer is the floor."""
        assert [] == ContextLayersOptimizer({}).propose(
            make_violation(), make_context(context__layers=1)
        )

    def test_elasticity_option(self) -> None:
        """The elasticity prior scales the estimate."""
        proposal, _ = only_change(
            ContextLayersOptimizer({"elasticity": 1.0}).propose(
                make_violation(), make_context(context__layers=4)
            )
        )
        assert 0.25 == pytest.approx(proposal.expected_improvement)


class TestCaching:
    """caching: double the cache, halve it for memory."""

    def test_doubles_cache(self) -> None:
        """256 -> 512, estimate 0.3 x 50%."""
        proposal, change = only_change(
            CachingOptimizer({}).propose(
                make_violation(), make_context(cache__size=256)
            )
        )
        assert KnobChange("cache.size", 512) == change
        assert "cache_optimization" == proposal.strategy
        assert 0.15 == pytest.approx(proposal.expected_improvement)

    def test_empty_cache_grows_by_step(self) -> None:
        """From 0 the cache grows by ``step``; all misses counted as removable."""
        proposal, change = only_change(
            CachingOptimizer({}).propose(make_violation(), make_context(cache__size=0))
        )
        assert 64 == change.value
        assert 0.3 == pytest.approx(proposal.expected_improvement)

    def test_growth_clamped_to_max(self) -> None:
        """3000 doubles past 4096 and stops there."""
        proposal, change = only_change(
            CachingOptimizer({}).propose(
                make_violation(), make_context(cache__size=3000)
            )
        )
        assert 4096 == change.value
        assert 0.3 * (1 - 3000 / 4096) == pytest.approx(proposal.expected_improvement)

    def test_at_max_proposes_nothing(self) -> None:
        """A full-size cache cannot grow."""
        assert [] == CachingOptimizer({}).propose(
            make_violation(), make_context(cache__size=4096)
        )

    def test_memory_violation_halves_cache(self) -> None:
        """Memory over budget: 256 -> 128, estimate 0.2 x 50%."""
        proposal, change = only_change(
            CachingOptimizer({}).propose(
                make_violation("memory_usage_mb", 70), make_context(cache__size=256)
            )
        )
        assert 128 == change.value
        assert 0.1 == pytest.approx(proposal.expected_improvement)

    def test_shrink_metrics_option(self) -> None:
        """With no shrink metrics a memory violation grows the cache too."""
        _, change = only_change(
            CachingOptimizer({"shrink_metrics": ()}).propose(
                make_violation("memory_usage_mb", 70), make_context(cache__size=256)
            )
        )
        assert 512 == change.value


class TestBatching:
    """batching: bigger for throughput, smaller for latency tails."""

    def test_throughput_raises_batch(self) -> None:
        """A low speedup doubles the batch, estimate 0.3 x 50%."""
        proposal, change = only_change(
            BatchingOptimizer({}).propose(
                make_violation("parallel_execution_speedup", 1.4),
                make_context(batch__size=16),
            )
        )
        assert KnobChange("batch.size", 32) == change
        assert "batch_processing" == proposal.strategy
        assert 0.15 == pytest.approx(proposal.expected_improvement)

    def test_far_tail_lowers_batch(self) -> None:
        """p99 = 5 x mean halves the batch, estimate 0.5 x 80% x 50%."""
        violation = make_violation("command_execution_time", 2500, p99=12500)
        proposal, change = only_change(
            BatchingOptimizer({}).propose(violation, make_context(batch__size=16))
        )
        assert 8 == change.value
        assert 0.2 == pytest.approx(proposal.expected_improvement)

    def test_tight_latency_proposes_nothing(self) -> None:
        """p99 below tail_ratio x mean: nothing to gain from batching."""
        violation = make_violation("command_execution_time", 2500, p99=4000)
        assert [] == BatchingOptimizer({}).propose(violation, make_context())

    def test_unknown_p99_proposes_nothing(self) -> None:
        """Without a p99 the tail rule cannot be judged."""
        violation = make_violation("command_execution_time", 2500, p99=None)
        assert [] == BatchingOptimizer({}).propose(violation, make_context())

    def test_tail_ratio_option(self) -> None:
        """A lower tail_ratio lets a milder tail count."""
        violation = make_violation("command_execution_time", 2500, p99=4000)
        _, change = only_change(
            BatchingOptimizer({"tail_ratio": 1.5}).propose(
                violation, make_context(batch__size=16)
            )
        )
        assert 8 == change.value

    def test_at_minimum_proposes_nothing(self) -> None:
        """A batch of one cannot shrink."""
        violation = make_violation("command_execution_time", 2500, p99=12500)
        assert [] == BatchingOptimizer({}).propose(
            violation, make_context(batch__size=1)
        )


class TestParallelism:
    """parallelism: Amdahl below the contention limit, back off above it."""

    def test_low_speedup_raises_limit(self) -> None:
        """Speedup 1.5 at 4 workers: p = 4/9, S(5)/S(4) - 1 = 45/43.5 - 1."""
        proposal, change = only_change(
            ParallelismOptimizer({}).propose(
                make_violation("parallel_execution_speedup", 1.5),
                make_context(parallelism__limit=4),
            )
        )
        assert KnobChange("parallelism.limit", 5) == change
        assert "parallel_execution" == proposal.strategy
        assert (45 / 29) / 1.5 - 1 == pytest.approx(proposal.expected_improvement)

    def test_above_contention_limit_lowers(self) -> None:
        """Speedup low at 8 workers: back off to 7, half the excess removed."""
        proposal, change = only_change(
            ParallelismOptimizer({}).propose(
                make_violation("parallel_execution_speedup", 1.5),
                make_context(parallelism__limit=8),
            )
        )
        assert 7 == change.value
        assert 0.075 == pytest.approx(proposal.expected_improvement)

    def test_at_contention_limit_proposes_nothing(self) -> None:
        """At 6 a raise would enter the contention zone."""
        assert [] == ParallelismOptimizer({}).propose(
            make_violation("parallel_execution_speedup", 1.5),
            make_context(parallelism__limit=6),
        )

    @pytest.mark.parametrize("metric", ["command_execution_time", "memory_usage_mb"])
    def test_latency_above_contention_lowers(self, metric: str) -> None:
        """Latency or memory with 7 workers: back to 6, the whole 15%."""
        proposal, change = only_change(
            ParallelismOptimizer({}).propose(
                make_violation(metric, 9000), make_context(parallelism__limit=7)
            )
        )
        assert 6 == change.value
        assert 0.15 == pytest.approx(proposal.expected_improvement)

    def test_latency_below_contention_proposes_nothing(self) -> None:
        """More parallelism is no cure for latency."""
        assert [] == ParallelismOptimizer({}).propose(
            make_violation("command_execution_time", 9000),
            make_context(parallelism__limit=4),
        )

    def test_no_parallel_gain_proposes_nothing(self) -> None:
        """A speedup below 1 at 4 workers means p = 0: Amdahl predicts nothing."""
        assert [] == ParallelismOptimizer({}).propose(
            make_violation("parallel_execution_speedup", 0.9),
            make_context(parallelism__limit=4),
        )

    def test_single_worker_uses_prior(self) -> None:
        """From one worker p is the prior 0.5: S(2) = 4/3."""
        proposal, change = only_change(
            ParallelismOptimizer({}).propose(
                make_violation("parallel_execution_speedup", 1.0),
                make_context(parallelism__limit=1),
            )
        )
        assert 2 == change.value
        assert 1 / 3 == pytest.approx(proposal.expected_improvement)

    def test_contention_limit_option(self) -> None:
        """A raised contention limit lets the limit grow past 6."""
        _, change = only_change(
            ParallelismOptimizer({"contention_limit": 12}).propose(
                make_violation("parallel_execution_speedup", 1.5),
                make_context(parallelism__limit=8),
            )
        )
        assert 9 == change.value


KNOB_PLUGINS: list[type[KnobOptimizer]] = [
    CompressionOptimizer,
    ContextLayersOptimizer,
    CachingOptimizer,
    BatchingOptimizer,
    ParallelismOptimizer,
]


class TestKnobInvariants:
    """Whatever the violation and knob value, proposals stay within the contract."""

    @given(
        plugin_index=st.integers(0, len(KNOB_PLUGINS) - 1),
        metric=st.sampled_from(sorted(BOUNDS)),
        observed=st.floats(0.0, 1e5, allow_nan=False),
        p99_factor=st.floats(0.0, 100.0, allow_nan=False),
        position=st.floats(0.0, 1.0),
    )
    def test_proposals_in_bounds(
        self,
        plugin_index: int,
        metric: str,
        observed: float,
        p99_factor: float,
        position: float,
    ) -> None:
        """Estimates lie in [0, 1] and proposed values within the knob's bounds."""
        plugin = KNOB_PLUGINS[plugin_index]({})
        spec = SPECS[plugin.knob]
        assert spec.min is not None
        assert spec.max is not None
        current = spec.clamp(spec.min + position * (spec.max - spec.min))
        violation = make_violation(metric, observed, p99=observed * p99_factor)
        context = OptimizerContext(knobs={plugin.knob: current}, specs=SPECS)
        for proposal in plugin.propose(violation, context):
            assert 0.0 < proposal.expected_improvement <= 0.5
            (change,) = proposal.changes
            assert isinstance(change.value, int | float)
            assert spec.min <= change.value <= spec.max
            assert current != change.value

    @pytest.mark.parametrize("cls", KNOB_PLUGINS)
    def test_max_estimate_caps(self, cls: type[KnobOptimizer]) -> None:
        """``max_estimate`` caps every knob plugin's estimate."""
        plugin = cls({"max_estimate": 0.01})
        violation = make_violation(
            "parallel_execution_speedup", 1.0, mean=1.0, p99=10.0
        )
        context = make_context(parallelism__limit=1, context__layers=8)
        for proposal in plugin.propose(violation, context):
            assert proposal.expected_improvement <= 0.01


@pytest.fixture(name="out_dir")
def _out_dir(tmp_path: Path) -> Path:
    return tmp_path


def write_to(path: Path) -> tuple[str, ...]:
    """An argv writing its stdin and ``$PERFWARDEN_EVENT`` to ``path``."""
    script = 'cat > "$1"; printf "%s" "$PERFWARDEN_EVENT" > "$1.event"'
    return ("sh", "-c", script, "sh", str(path))


class TestExec:
    """exec: a command with the violation on stdin, and its revert."""

    def test_apply_and_revert_run_commands(self, out_dir: Path) -> None:
        """apply and revert each get the violation JSON and their event name."""
        applied, reverted = out_dir / "apply.json", out_dir / "revert.json"
        plugin = ExecOptimizer(
            {"command": write_to(applied), "revert_command": write_to(reverted)}
        )
        (proposal,) = plugin.propose(make_violation(tags={"host": "a"}), make_context())
        assert proposal.action is not None
        assert not applied.exists()  # proposing runs nothing
        result = proposal.action.apply()
        assert 0 == getattr(result, "returncode", None)
        data = json.loads(applied.read_text())
        assert "context_loading_time" == data["metric"]
        assert {"host": "a"} == data["tags"]
        assert "apply" == (out_dir / "apply.json.event").read_text()
        proposal.action.revert()
        assert "c-1" == json.loads(reverted.read_text())["correlation_id"]
        assert "revert" == (out_dir / "revert.json.event").read_text()

    def test_strategy_and_estimate(self) -> None:
        """Strategy defaults to ``exec:<basename>``; the estimate is the option."""
        plugin = ExecOptimizer(
            {"command": ("/usr/bin/true",), "revert_command": ("true",)}
        )
        (proposal,) = plugin.propose(make_violation(), make_context())
        assert "exec:true" == proposal.strategy
        assert 0.1 == proposal.expected_improvement
        named = ExecOptimizer(
            {
                "command": ("true",),
                "revert_command": ("true",),
                "strategy": "restart-worker",
                "expected_improvement": 0.3,
            }
        )
        (proposal,) = named.propose(make_violation(), make_context())
        assert ("restart-worker", 0.3) == (
            proposal.strategy,
            proposal.expected_improvement,
        )

    def test_failing_command_raises_with_stderr(self) -> None:
        """A non-zero exit raises with the status and the stderr tail."""
        plugin = ExecOptimizer(
            {
                "command": ("sh", "-c", "echo boom >&2; exit 3"),
                "revert_command": ("true",),
            }
        )
        (proposal,) = plugin.propose(make_violation(), make_context())
        assert proposal.action is not None
        with pytest.raises(CommandFailed, match="exit status 3: boom") as info:
            proposal.action.apply()
        assert 3 == info.value.result.returncode

    def test_timeout_raises(self) -> None:
        """A command outliving ``timeout`` is killed and the call fails."""
        plugin = ExecOptimizer(
            {
                "command": ("sleep", "5"),
                "revert_command": ("true",),
                "timeout": 0.2,
            }
        )
        (proposal,) = plugin.propose(make_violation(), make_context())
        assert proposal.action is not None
        with pytest.raises(CommandFailed, match="timed out"):
            proposal.action.apply()

    def test_missing_program_raises(self) -> None:
        """A command that cannot be started fails the call, not the process."""
        plugin = ExecOptimizer(
            {"command": ("/nonexistent/pw-cmd",), "revert_command": ("true",)}
        )
        (proposal,) = plugin.propose(make_violation(), make_context())
        assert proposal.action is not None
        with pytest.raises(CommandFailed, match="could not run"):
            proposal.action.apply()

    def test_metrics_option(self) -> None:
        """All metrics by default, only the listed ones with ``metrics``."""
        options: dict[str, object] = {"command": ("true",), "revert_command": ("true",)}
        assert ExecOptimizer(options).handles(make_violation())
        restricted = ExecOptimizer({**options, "metrics": ("memory_usage_mb",)})
        assert not restricted.handles(make_violation())

    @pytest.mark.parametrize(
        "options",
        [
            {"revert_command": ("true",)},
            {"command": ("true",)},
            {"command": "true", "revert_command": ("true",)},
            {"command": (), "revert_command": ("true",)},
            {"command": ("true",), "revert_command": ("true",), "timeout": 0},
            {"command": ("true",), "revert_command": ("true",), "shell": True},
        ],
    )
    def test_bad_options_rejected(self, options: dict[str, object]) -> None:
        """Required argv lists, positive timeout, no unknown keys."""
        with pytest.raises(OptionError, match="exec: option"):
            ExecOptimizer(options)


class _Recorder(BaseHTTPRequestHandler):
    """Records POST bodies; answers with the queued statuses, then 200."""

    bodies: ClassVar[list[dict[str, object]]]
    headers_seen: ClassVar[list[dict[str, str]]]
    statuses: ClassVar[list[int]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        type(self).headers_seen.append(dict(self.headers.items()))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture(name="server")
def _server() -> Iterator[tuple[str, type[_Recorder]]]:
    """A real HTTP server on 127.0.0.1 in a thread; yields its URL and recorder."""

    class Handler(_Recorder):
        bodies: ClassVar[list[dict[str, object]]] = []
        headers_seen: ClassVar[list[dict[str, str]]] = []
        statuses: ClassVar[list[int]] = []

    handler = Handler
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class TestWebhook:
    """webhook: the violation POSTed as JSON, with retries."""

    def test_apply_and_revert_post(self, server: tuple[str, type[_Recorder]]) -> None:
        """apply posts a violation event, revert a revert event, with headers."""
        url, recorder = server
        plugin = WebhookOptimizer({"url": url, "headers": {"X-Token": "t0k"}})
        (proposal,) = plugin.propose(make_violation(tags={"a": "b"}), make_context())
        assert (0.0, "webhook") == (proposal.expected_improvement, proposal.strategy)
        assert proposal.action is not None
        assert 200 == proposal.action.apply()
        proposal.action.revert()
        assert ["violation", "revert"] == [b["event"] for b in recorder.bodies]
        first = recorder.bodies[0]["violation"]
        assert isinstance(first, dict)
        assert ("context_loading_time", {"a": "b"}) == (first["metric"], first["tags"])
        assert "t0k" == recorder.headers_seen[0]["X-Token"]
        assert "application/json" == recorder.headers_seen[0]["Content-Type"]

    def test_retries_after_server_error(
        self, server: tuple[str, type[_Recorder]]
    ) -> None:
        """A 500 then a 200: two POSTs, success."""
        url, recorder = server
        recorder.statuses.append(500)
        plugin = WebhookOptimizer({"url": url, "backoff": 0.01})
        (proposal,) = plugin.propose(make_violation(), make_context())
        assert proposal.action is not None
        assert 200 == proposal.action.apply()
        assert 2 == len(recorder.bodies)

    def test_backoff_doubles_then_raises(
        self, server: tuple[str, type[_Recorder]]
    ) -> None:
        """Three 500s with two retries: sleeps 0.5 s and 1 s, then raises."""
        url, recorder = server
        recorder.statuses.extend([500, 500, 500])
        slept: list[float] = []
        with pytest.raises(WebhookFailed, match=r"HTTP 500 \(after 3 attempt"):
            post_json(
                url,
                {},
                timeout=2,
                retries=2,
                backoff=0.5,
                headers={},
                sleep=slept.append,
            )
        assert [0.5, 1.0] == slept

    def test_client_error_not_retried(
        self, server: tuple[str, type[_Recorder]]
    ) -> None:
        """A 404 fails at once."""
        url, recorder = server
        recorder.statuses.append(404)
        slept: list[float] = []
        with pytest.raises(WebhookFailed, match="HTTP 404"):
            post_json(
                url,
                {},
                timeout=2,
                retries=2,
                backoff=0.5,
                headers={},
                sleep=slept.append,
            )
        assert ([], 1) == (slept, len(recorder.bodies))

    def test_unreachable_raises_after_retries(self) -> None:
        """A refused connection is retried, then raises."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))  # bound, not listening: connect is refused
            port = sock.getsockname()[1]
            slept: list[float] = []
            with pytest.raises(WebhookFailed, match="after 2 attempt"):
                post_json(
                    f"http://127.0.0.1:{port}/",
                    {},
                    timeout=2,
                    retries=1,
                    backoff=0.5,
                    headers={},
                    sleep=slept.append,
                )
        assert [0.5] == slept

    @pytest.mark.parametrize(
        "options",
        [
            {},
            {"url": "ftp://example.org/x"},
            {"url": "file:///etc/passwd"},
            {"url": "http://example.org", "retries": -1},
            {"url": "http://example.org", "headers": {"a": 1}},
            {"url": "http://example.org", "expected_improvement": 1.5},
        ],
    )
    def test_bad_options_rejected(self, options: dict[str, object]) -> None:
        """URL required and http(s); counts and headers checked."""
        with pytest.raises(OptionError, match="webhook: option"):
            WebhookOptimizer(options)


class TestViolationPayload:
    """The shared JSON form of a violation."""

    def test_plain_json(self) -> None:
        """Tags become a dict, stats a dict, NaN a null; the gap is included."""
        violation = make_violation(tags={"k": "v"}, p99=math.nan)
        data = violation_payload(violation)
        text = json.dumps(data, allow_nan=False)
        back = json.loads(text)
        assert {"k": "v"} == back["tags"]
        assert back["stats"]["p99"] is None
        assert [180.0, 180.0] == back["observed"]
        assert 0.8 == pytest.approx(back["gap"])


class TestEntryPoints:
    """The built-ins are found exactly as a third-party plugin is."""

    def test_all_seven_registered(self) -> None:
        """The perfwarden.optimizers group lists the seven built-ins."""
        eps = entry_points(group=ENTRY_POINT_GROUP)
        ours = {ep.name for ep in eps if ep.value.startswith("perfwarden_optimizers.")}
        assert BUILTINS == ours

    def test_each_loads_and_conforms(self) -> None:
        """Each entry point loads, builds from options and satisfies Optimizer."""
        options: dict[str, Mapping[str, object]] = {
            "exec": {"command": ("true",), "revert_command": ("true",)},
            "webhook": {"url": "http://127.0.0.1:9/"},
        }
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in BUILTINS:
                plugin = ep.load()(MappingProxyType(dict(options.get(ep.name, {}))))
                assert isinstance(plugin, Optimizer), ep.name
