"""The composition root: builds the daemon's components from a config and runs them.

Start order: lock the socket directory, bind the sockets, restore knob values and
the saved state (``state.db``), start ingest and the control server, start the
interval and checkpoint tasks, hand the start-up's freed memory back to the kernel
(:mod:`perfwarden.heap`), then ``READY=1`` and ``daemon.started``.
Stop order (SIGTERM / SIGINT): ``daemon.stopping``, ``STOPPING=1``, stop accepting,
drain what the datagram socket already holds, revert unvalidated actions, write a
last checkpoint, close, remove the socket files.
One loop thread owns every mutable structure; signal handlers only set events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import time
from typing import TYPE_CHECKING, Any

from perfwarden import __version__
from perfwarden.alerts.evaluator import Evaluator
from perfwarden.alerts.pacing import EvaluationPacer
from perfwarden.alerts.passes import SlicedPasses
from perfwarden.alerts.publisher import SlicedPublisher
from perfwarden.alerts.tick import sliced_evaluation_tick
from perfwarden.config.changes import describe_changes
from perfwarden.config.load import Config, ConfigError, SignedGauges, load_config
from perfwarden.config.plugin_names import warn_unknown_plugins
from perfwarden.config.watcher import ConfigWatcher
from perfwarden.control.handlers import build_commands
from perfwarden.control.server import ControlCounters, ControlServer, judged_first
from perfwarden.errors import PerfwardenError
from perfwarden.heap import freeze_startup, trim
from perfwarden.ingest.receivers import DatagramReceiver, Ingestor
from perfwarden.ingest.sockets import (
    BoundSockets,
    DirectoryLock,
    apply_modes,
    bind_sockets,
    prepare_directory,
)
from perfwarden.ingest.statsd import Batch, set_tag_limits
from perfwarden.ingest.stream import StreamIngestServer
from perfwarden.logs.loop_errors import LoopErrors
from perfwarden.logs.setup import begin_shutdown, get_logger, set_log_level
from perfwarden.optimize.dispatch import Dispatcher
from perfwarden.optimize.engine import OptimizerEngine
from perfwarden.optimize.journal import ActionJournal
from perfwarden.optimize.knobs import KnobStore, spec_of
from perfwarden.optimize.learning import Learning
from perfwarden.optimize.plugin_runtime import PluginRuntime
from perfwarden.paths import RECORDING_DIR
from perfwarden.readmodel import ReloadOutcome
from perfwarden.recording.recorder import Recorder
from perfwarden.routes.alertmanager import AlertmanagerRoute
from perfwarden.sampling.loop_watch import LoopWatch
from perfwarden.sampling.sampler import ProcessSampler
from perfwarden.sampling.self_monitor import SelfMonitor
from perfwarden.series.bands import bands_of
from perfwarden.series.ceiling import MemoryCeiling
from perfwarden.series.expiry import SeriesExpiry
from perfwarden.series.store import MetricStore
from perfwarden.state.persistence import StateStore
from perfwarden.systemd import Notifier, monotonic_usec, watchdog
from perfwarden.views.http_server import HttpServer

if TYPE_CHECKING:
    from pathlib import Path

    from perfwarden.plugin_api import KnobSpec

__all__ = ["Daemon", "ReloadOutcome"]

_log = get_logger("perfwarden")


class Daemon:
    """One perfwarden daemon: its config, store, sockets and tasks."""

    def __init__(
        self,
        config: Config,
        config_path: Path,
        socket_dir: Path,
        state_dir: Path,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.socket_dir = socket_dir
        self.state_dir = state_dir
        self.notifier = notifier or Notifier()
        self.store = MetricStore(
            config.metric_window, config.statistics.max_series, bands_of(config)
        )
        self.ingestor = Ingestor(self.store, config.ingest.max_line_bytes)
        self.ceiling = MemoryCeiling(
            self.store, lambda: self.config.statistics.max_memory_mb
        )
        self._apply_ingest_limits(config)
        self.evaluator = Evaluator(self.store, lambda: self.config)
        self.passes = SlicedPasses(self.store, self.evaluator)
        self.publisher = SlicedPublisher(
            self.evaluator.publish, judged=self.passes.settled
        )
        self.evaluator.deliver = self.publisher.put
        self.ingestor.on_commit = self._schedule_evaluation
        self.knobs = KnobStore(_knob_specs(config), state_dir)
        self.plugins = PluginRuntime(lambda: self.config)
        self.dispatcher = Dispatcher(
            self.store, self.plugins, self.knobs, lambda: self.config, self.evaluator
        )
        self.learning = Learning()
        self.optimizer = OptimizerEngine(
            store=self.store,
            evaluator=self.evaluator,
            runtime=self.plugins,
            knobs=self.knobs,
            learning=self.learning,
            config=lambda: self.config,
            redispatch=self.dispatcher.redispatch,
            journal=ActionJournal(state_dir),
        )
        self.dispatcher.on_proposals = self.optimizer.on_proposals
        self.state = StateStore(
            state_dir,
            store=self.store,
            evaluator=self.evaluator,
            learning=self.learning,
            optimizer=self.optimizer,
            knobs=self.knobs,
        )
        self.expiry = SeriesExpiry(
            self.store, self.evaluator, self.state.forget, lambda: self.config
        )
        self.recorder = Recorder(
            state_dir / RECORDING_DIR, lambda: self.config.recording
        )
        self.store.on_ingest = self.recorder.on_ingest
        self.passes.on_tick = self.recorder.on_tick
        self.evaluator.silences.listeners.append(
            lambda active: self.recorder.on_silences([s.as_dict() for s in active])
        )
        self.evaluator.subscribers.append(self.optimizer.on_alert)
        self.evaluator.subscribers.append(self.dispatcher)
        self.http: HttpServer | None = None
        self.alertmanager = AlertmanagerRoute(
            self.store,
            self.evaluator,
            config=lambda: self.config,
            dashboard=self._dashboard_url,
        )
        self.evaluator.subscribers.append(self.alertmanager.on_alert)
        self._reload_lock = asyncio.Lock()
        self.control_counters = ControlCounters()
        self._sockets_bound = False
        self.loop_errors = LoopErrors()
        self.sampler = ProcessSampler(lambda: self.config, self._append_sample)
        self.loop_watch = LoopWatch(self.plugins.stalled_by, self.plugins.threads)
        self.self_monitor = SelfMonitor(
            self._append_sample,
            ingest_lines=lambda: self.ingestor.counters.received,
            evaluation=lambda: (self.passes.passes, self.passes.seconds),
        )
        self.pacer: EvaluationPacer | None = None
        self.started_monotonic = time.monotonic()
        self.started_at = time.time()
        self.last_reload: dict[str, Any] | None = None
        self.reload_counts: dict[str, int] = {"ok": 0, "rejected": 0}
        self.ticks = 0
        #: Config loaded and state restored, not stopping (``/-/ready``).
        self.ready = False
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._signals = 0

    def request_stop(self) -> None:
        """Ask the daemon to stop (safe from a signal handler)."""
        self._signals += 1
        if self._signals > 1:
            os._exit(1)  # a second SIGTERM/SIGINT forces the exit
        self._stop.set()

    async def reload(self) -> ReloadOutcome:
        """Re-read the config; swap it in only if the whole file validates; rescan
        plugins. One code path for SIGHUP and ``perfwarden reload``."""
        async with self._reload_lock:
            self.notifier.notify("RELOADING=1", monotonic_usec())
            try:
                return await self._reload()
            finally:
                self.notifier.notify("READY=1", f"STATUS={self._status_line()}")

    async def _reload(self) -> ReloadOutcome:
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            errors = [str(problem) for problem in exc.problems]
            _log.error("config.rejected", path=str(self.config_path), errors=errors)
            self.last_reload = {"ok": False, "at": time.time(), "errors": errors}
            self.reload_counts["rejected"] += 1
            return ReloadOutcome(ok=False, errors=errors)
        if new.sockets != self.config.sockets and self._sockets_bound:
            try:
                apply_modes(self.socket_dir, new.sockets)
            except (OSError, PerfwardenError) as exc:
                errors = [f"sockets: cannot apply ({exc}); the old modes stay"]
                _log.error("config.rejected", path=str(self.config_path), errors=errors)
                self.last_reload = {"ok": False, "at": time.time(), "errors": errors}
                self.reload_counts["rejected"] += 1
                return ReloadOutcome(ok=False, errors=errors)
        changes = describe_changes(self.config, new)
        # The very bytes in force again after a rejected file: say that the daemon
        # runs what the file says once more, rather than nothing.
        restored = new.sha256 == self.config.sha256 and not self._last_reload_ok()
        self.config = new
        self.store.reconfigure(
            new.metric_window, new.statistics.max_series, bands_of(new)
        )
        self._apply_ingest_limits(new)
        self.evaluator.forget(self._has_levels)
        self.knobs.reconfigure(_knob_specs(new))
        self.recorder.apply()
        self.store.set_direct(not self.recorder.running)
        before = set(self.plugins.plugins)
        set_log_level(new.logging.level)
        loaded = await self.plugins.rescan()
        changes += [f"plugin {name}: loaded" for name in loaded]
        changes += [
            f"plugin {name}: removed"
            for name in sorted(before - set(self.plugins.plugins))
        ]
        warnings = warn_unknown_plugins(
            self.config.plugins, set(self.plugins.plugins), str(self.config_path)
        )
        _log.info(
            "config.reloaded",
            path=str(self.config_path),
            sha256=new.sha256,
            changes=changes,
            plugins_loaded=loaded,
            restored=restored,
        )
        self.last_reload = {
            "ok": True,
            "at": time.time(),
            "changes": changes,
            "restored": restored,
            "warnings": warnings,
        }
        self.reload_counts["ok"] += 1
        return ReloadOutcome(ok=True, changes=changes, warnings=warnings)

    def _last_reload_ok(self) -> bool:
        return self.last_reload is None or bool(self.last_reload["ok"])

    def _watch_baseline(self) -> str | None:
        """What the config watcher compares a saved file with: the hash in force,
        or none after a rejected reload (so restoring the old bytes reloads too)."""
        return self.config.sha256 if self._last_reload_ok() else None

    def _apply_ingest_limits(self, config: Config) -> None:
        """The parser's and the store's bounds (the sockets read theirs live)."""
        ingest = config.ingest
        self.ingestor.max_line = ingest.max_line_bytes
        set_tag_limits(ingest.max_tag_bytes, ingest.max_tags)
        self.store.set_limits(ingest.max_set_members, ingest.max_set_bytes)
        self.ingestor.gauge_deltas = ingest.signed_gauges is SignedGauges.DELTA
        self.ingestor.max_timestamp_age = ingest.max_timestamp_age
        self.ingestor.max_timestamp_ahead = ingest.max_timestamp_ahead

    async def run(self) -> int:
        """Run until asked to stop; return the process exit status."""
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.loop_errors.handle)
        self.pacer = EvaluationPacer(
            self.passes.start, loop, lambda: self.config.evaluation.coalesce
        )
        prepare_directory(self.socket_dir, self.config.sockets)
        # Unwritable: the state store says so and runs without persistence.
        with contextlib.suppress(OSError):
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = DirectoryLock(self.socket_dir)
        lock.acquire()
        try:
            sockets = bind_sockets(self.socket_dir, self.config.sockets)
            self._sockets_bound = True
            try:
                return await self._serve(loop, sockets)
            finally:
                sockets.close()
        finally:
            lock.release()

    async def _serve(
        self, loop: asyncio.AbstractEventLoop, sockets: BoundSockets
    ) -> int:
        # Knob values, then windows, alerts and learning, before any socket is
        # read: READY=1 comes after the restore.
        restored = self.knobs.load()
        self.optimizer.revert_unfinished()
        self.state.restore()
        self.recorder.apply()
        # A recording notes every batch whole; else plain samples skip it.
        self.store.set_direct(not self.recorder.running)
        receiver = DatagramReceiver(
            sockets.metrics,
            self.ingestor,
            lambda: self.config.ingest.max_datagram_bytes,
            loop,
        )
        streams = StreamIngestServer(self.ingestor, lambda: self.config.ingest)
        stream_server = await loop.create_unix_server(
            streams.protocol_factory, sock=sockets.stream
        )
        self.knobs.write()
        await self.plugins.rescan()
        warn_unknown_plugins(
            self.config.plugins, set(self.plugins.plugins), str(self.config_path)
        )
        control = ControlServer(
            judged_first(build_commands(self), self.judged),
            lambda: self.config.control,
            self.control_counters,
        )
        await control.start(sockets.control)
        http = self.http = HttpServer(self)
        await http.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)
        # Config edits take the SIGHUP path; the packaged default is not watched.
        watcher = ConfigWatcher(
            self.config_path,
            self._reload_requested.set,
            loop,
            loaded_hash=self._watch_baseline,
        )
        if self.config.source != "<default>":
            watcher.start()
        tasks = [
            asyncio.create_task(self._interval_loop(), name="interval"),
            asyncio.create_task(self._reload_loop(), name="reload"),
            asyncio.create_task(
                watchdog(
                    self.notifier,
                    lambda: self.ticks,
                    lambda: self.config.evaluation.interval,
                ),
                name="watchdog",
            ),
            asyncio.create_task(self.sampler.run(), name="sampler"),
            asyncio.create_task(self.self_monitor.run(), name="self-monitor"),
            asyncio.create_task(self.loop_watch.run(), name="loop-watch"),
            asyncio.create_task(self._checkpoint_loop(), name="checkpoint"),
            asyncio.create_task(self.alertmanager.run(), name="alertmanager"),
        ]
        _log.info(
            "daemon.started",
            pid=os.getpid(),
            version=__version__,
            python=platform.python_version(),
            config=str(self.config_path),
            config_sha256=self.config.sha256,
            socket_dir=str(self.socket_dir),
            state_dir=str(self.state_dir),
            metrics=len(self.config.metrics),
            knobs_restored=restored,
            plugins=[h.name for h in self.plugins.active()],
        )
        # The start-up's temporaries (imports, config parsing, the state restore,
        # plugin loading) are garbage now: give their pages back (bench/memory.md),
        # and keep what remains out of every later full collection.
        freeze_startup()
        trim()
        self.ready = True
        self.notifier.notify("READY=1", f"STATUS={self._status_line()}")
        try:
            await self._stop.wait()
        finally:
            # Past a full log queue (stdout not read): the last lines get in.
            begin_shutdown()
            self.ready = False
            _log.info("daemon.stopping", pid=os.getpid(), uptime=self.uptime())
            self.notifier.notify("STOPPING=1")
            watcher.stop()
            await http.stop()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            stream_server.close()
            receiver.close()
            receiver.drain_now()
            self.flush_evaluation()
            self.publisher.flush()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.dispatcher.drain()
            await self.optimizer.shutdown()
            self.recorder.stop()
            await asyncio.to_thread(self.recorder.join, 3.0)
            await self.plugins.close()
            await self.state.checkpoint(final=True)
            await self.state.close()
            await control.close()
            stream_server.close()
        _log.info(
            "daemon.stopped",
            received=self.ingestor.counters.received,
            series=len(self.store),
        )
        return 0

    def uptime(self) -> float:
        """Seconds since start."""
        return time.monotonic() - self.started_monotonic

    def _dashboard_url(self) -> str | None:
        """The web dashboard's URL (the base of alerts' ``generatorURL``)."""
        return self.http.public_url if self.http is not None else None

    def _status_line(self) -> str:
        counters = self.ingestor.counters
        return f"{len(self.store)} series, {counters.accepted} lines accepted"

    async def _interval_loop(self) -> None:
        next_tick = time.monotonic()
        while True:
            interval = self.config.evaluation.interval
            next_tick += interval
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            await self.passes.settled()  # the tick follows a pass, as unsliced
            if self.pacer is not None:  # a waiting pass judges as of the samples
                self.pacer.flush()  # (a |T stamp), as the replay does
            await sliced_evaluation_tick(self.store, self.passes, self.expiry, interval)
            self.ceiling.check()
            self.ticks += 1
            if self.ticks % 10 == 0:
                self.notifier.notify(f"STATUS={self._status_line()}")

    async def _checkpoint_loop(self) -> None:
        """A state checkpoint every ``state.checkpoint_interval`` (``0``: none until
        shutdown); read each time, so a reload changes it."""
        while True:
            interval = self.config.state.checkpoint_interval
            await asyncio.sleep(interval if interval > 0 else 1.0)
            if self.config.state.checkpoint_interval > 0:
                written = await self.state.checkpoint()
                if written and self.state.last_series_written:
                    await asyncio.sleep(0)  # the commit had its turn; trim in the next
                    # The snapshot's copies of the changed windows (and the
                    # writer thread's blobs) are freed now; without this the
                    # heaps keep them resident.
                    trim()

    def _schedule_evaluation(self) -> None:
        # Called after every ingest commit; the pacer coalesces the passes.
        if self.pacer is not None:
            self.pacer.request(urgent=self.store.take_urgent())

    def flush_evaluation(self) -> None:
        """Judge every series updated so far now (shutdown)."""
        if self.pacer is not None:
            self.pacer.flush()
        self.passes.finish()

    async def judged(self) -> None:
        """Wait until every series updated so far is judged (before a command):
        a waiting pass starts now, and its slices run while this waits."""
        if self.pacer is not None:
            self.pacer.flush()
        await self.passes.settled()

    def _append_sample(self, name: str, tags: dict[str, str], value: float) -> None:
        """A sample from inside the daemon (sampler, self-monitor), as a gauge."""
        raw = ",".join(f"{k}:{v}" for k, v in tags.items())
        key = f"{name}|g|#{raw}" if raw else f"{name}|g"
        batch = Batch(received=1, accepted=1, values={key: [value]})
        self.store.ingest(batch, time.monotonic())
        self._schedule_evaluation()

    def _has_levels(self, series_key: str) -> bool:
        series = self.store.get(series_key)
        metric = self.config.metrics.get(series.name) if series else None
        return metric is not None and metric.has_levels

    async def _reload_loop(self) -> None:
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            await self.reload()


def _knob_specs(config: Config) -> dict[str, KnobSpec]:
    return {name: spec_of(knob) for name, knob in config.knobs.items()}
