"""What the views and the control commands may see of a running daemon, and do to it.

The composition root (:class:`perfwarden.app.Daemon`) builds the components; the
outward views (``/metrics``, the web page, ``perfwarden top`` through the control
socket) and the command handlers need to read them, and the handlers to act through a
few of them. They depend on these protocols instead of on ``app``, so the layers point
one way: ``app`` → ``control``/``views`` → ``readmodel`` → components.

:class:`DaemonView` is what a reader gets: the config and where it came from, the
components whose state is shown, and the daemon's own counters. :class:`DaemonControl`
adds the one daemon-level operation a command performs, :meth:`~DaemonControl.reload`;
every other change (a knob, a silence, the overflow switch) goes through the
component that owns it, as the handlers show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from perfwarden.alerts.evaluator import Evaluator
    from perfwarden.alerts.publisher import SlicedPublisher
    from perfwarden.config.model import Config
    from perfwarden.control.server import ControlCounters
    from perfwarden.ingest.receivers import Ingestor
    from perfwarden.logs.loop_errors import LoopErrors
    from perfwarden.optimize.engine import OptimizerEngine
    from perfwarden.optimize.knobs import KnobStore
    from perfwarden.optimize.learning import Learning
    from perfwarden.optimize.plugin_runtime import PluginRuntime
    from perfwarden.recording.recorder import Recorder
    from perfwarden.routes.alertmanager import AlertmanagerRoute
    from perfwarden.sampling.loop_watch import LoopWatch
    from perfwarden.sampling.sampler import ProcessSampler
    from perfwarden.series.expiry import SeriesExpiry
    from perfwarden.series.store import MetricStore
    from perfwarden.state.persistence import StateStore


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload did: applied (with the changed keys and any warnings, such as
    options for plugins that are not installed) or rejected (with errors)."""

    ok: bool
    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class HttpCounters(Protocol):
    """What ``status`` reads of the HTTP listener (views may not be imported here:
    they import this module)."""

    @property
    def counters(self) -> Mapping[str, int]: ...


class DaemonView(Protocol):
    """The read model of one daemon: what ``status``, ``stats``, ``/metrics`` show."""

    @property
    def config(self) -> Config: ...
    @property
    def config_path(self) -> Path: ...
    @property
    def socket_dir(self) -> Path: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def started_at(self) -> float: ...
    @property
    def ticks(self) -> int: ...
    @property
    def last_reload(self) -> dict[str, Any] | None: ...
    @property
    def reload_counts(self) -> dict[str, int]: ...
    @property
    def ready(self) -> bool:
        """Config loaded and state restored, and not stopping (``/-/ready``)."""
        ...

    @property
    def store(self) -> MetricStore: ...
    @property
    def ingestor(self) -> Ingestor: ...
    @property
    def evaluator(self) -> Evaluator: ...
    @property
    def publisher(self) -> SlicedPublisher: ...
    @property
    def expiry(self) -> SeriesExpiry: ...
    @property
    def knobs(self) -> KnobStore: ...
    @property
    def plugins(self) -> PluginRuntime: ...
    @property
    def optimizer(self) -> OptimizerEngine: ...
    @property
    def learning(self) -> Learning: ...
    @property
    def sampler(self) -> ProcessSampler: ...
    @property
    def state(self) -> StateStore: ...
    @property
    def recorder(self) -> Recorder: ...
    @property
    def control_counters(self) -> ControlCounters: ...
    @property
    def loop_errors(self) -> LoopErrors: ...
    @property
    def alertmanager(self) -> AlertmanagerRoute: ...
    @property
    def loop_watch(self) -> LoopWatch: ...
    @property
    def http(self) -> HttpCounters | None:
        """The HTTP listener, once the daemon has started it."""
        ...

    def uptime(self) -> float:
        """Seconds since the daemon started."""
        ...


class DaemonControl(DaemonView, Protocol):
    """A :class:`DaemonView` that the control commands may also ask to reload."""

    async def reload(self) -> ReloadOutcome:
        """Re-read the config and swap it in only if it validates."""
        ...
