"""The plugin runtime: loaded plugins, isolated calls, the circuit breaker.

A plugin runs in a plugin host process of its own (``isolation: process``, the
default for third parties: :mod:`.plugin_host`) or in the daemon (``in-process``,
the built-ins' default). Every plugin call (load, ``handles``, ``propose``, an
action's ``apply``/``revert``) runs off the event loop (a worker thread for plain
functions; coroutine functions stepped and timed on the loop, :mod:`.plugin_calls`)
or in the host, under ``optimizer.plugin_timeout``, with a deadline a grace before
it (:mod:`perfwarden.deadline`) that the plugin reads with
:func:`perfwarden.plugin_api.time_left`. A call that raises (``SystemExit``
included), times out or returns garbage counts as a failure;
``optimizer.max_failures`` consecutive failures of ``handles``/``propose``, or of
``apply``/``revert``, switch the plugin off (``plugin.disabled``) until the next
reload, and so does one coroutine step that stalls the loop. A worker thread that
holds the GIL through a stall is found by the loop watch (:mod:`.plugin_threads`)
and counts as one failure of its call.

Timeouts come in two kinds, both logged as ``plugin.timed_out`` and counted as a
timeout and a failure: the plugin met its deadline and raised ``TimeoutError``
(``abandoned: false``: it killed or aborted what it waited for), or the daemon
stopped waiting at ``plugin_timeout`` (``abandoned: true``). A thread cannot be
killed, so an abandoned one may still run; the breaker keeps a hanging plugin from
taking more threads. A host can be: its process group is killed.

``PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the plugins the config's
``plugins:`` section names; ``enabled: false`` blocks a plugin (it is never
imported).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from typing import TYPE_CHECKING, Any, Final, TypeVar

from perfwarden.config.model import Isolation, PluginConfig
from perfwarden.deadline import budget, deadline_scope
from perfwarden.logs.setup import get_logger
from perfwarden.optimize.plugin_breaker import (
    check_stall,
    failed,
    held_loop,
    succeeded,
    timed_out,
)
from perfwarden.optimize.plugin_calls import (
    STALL_LIMIT,
    Stepped,
    awaited,
    cancelling,
    in_daemon_thread,
)
from perfwarden.optimize.plugin_handle import (
    COUNTERS,
    PluginCallError,
    PluginHandle,
    PluginState,
    new_counts,
)
from perfwarden.optimize.plugin_host import (
    HostFailed,
    HostLimits,
    IsolatedOptimizer,
    PluginHost,
    PluginRaised,
)
from perfwarden.optimize.plugin_loader import (
    PluginLoadError,
    PluginSource,
    find,
    instantiate,
)
from perfwarden.optimize.plugin_threads import ThreadCall, ThreadCalls
from perfwarden.plugin_api import Optimizer, OptimizerContext, Proposal, Violation

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from perfwarden.config.load import Config

__all__ = [
    "AUTOLOAD_ENV",
    "COUNTERS",
    "STALL_LIMIT",
    "PluginCallError",
    "PluginHandle",
    "PluginRuntime",
    "PluginState",
    "in_daemon_thread",
    "new_counts",
]

AUTOLOAD_ENV: Final = "PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD"
#: The distribution of the built-in plugins (in-process unless configured).
BUILTIN_DISTRIBUTION: Final = "perfwarden"
_log = get_logger("perfwarden.plugins")
T = TypeVar("T")


async def _retire(handle: PluginHandle) -> None:
    """Kill the host process of a plugin handle that is being replaced."""
    if handle.host is not None:
        await handle.host.kill()


class PluginRuntime:
    """Discovers, loads and calls plugins, isolating the daemon from them."""

    def __init__(
        self,
        config: Callable[[], Config],
        environ: Mapping[str, str] | None = None,
        entry_points: Callable[[], Any] | None = None,
    ) -> None:
        self._config = config
        self._environ = os.environ if environ is None else environ
        self._entry_points = entry_points
        self.plugins: dict[str, PluginHandle] = {}
        #: Each plugin's counters by name: they outlive reloads, removals and (via
        #: the state) restarts; handles share these dicts.
        self.counts: dict[str, dict[str, int]] = {}
        #: The plugin whose coroutine step last held the loop too long, and when
        #: that step ended.
        self._stalled_by: tuple[str, float] | None = None
        #: Plain plugin calls in worker threads, for the loop watch to blame.
        self.threads = ThreadCalls(self._held_loop)

    @property
    def autoload(self) -> bool:
        """False when ``PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD`` pins what runs."""
        return self._environ.get(AUTOLOAD_ENV, "") not in {"1", "true", "yes"}

    def counts_document(self) -> dict[str, dict[str, int]]:
        """The counters of every plugin that counted something, for the state."""
        return {
            name: dict(counts)
            for name, counts in sorted(self.counts.items())
            if any(counts.values())
        }

    def restore_counts(self, saved: Mapping[str, Mapping[str, object]]) -> None:
        """Put back counters a previous run saved (unknown counters ignored)."""
        for name, values in saved.items():
            counts = self.counts.setdefault(str(name), new_counts())
            for key in COUNTERS:
                value = values.get(key, 0)
                if isinstance(value, int) and not isinstance(value, bool):
                    counts[key] = value

    # -- loading --------------------------------------------------------------------

    async def rescan(self) -> list[str]:
        """Discover entry points again and (re)load what changed; names newly active.

        A plugin whose entry point, version and options are unchanged keeps its
        object (an unconfigured one stays unconfigured, without a new log line);
        failed and disabled plugins get a fresh try. Counters are kept by name.
        """
        config = self._config()
        autoload = self.autoload
        sources, duplicates = find(self._entry_points() if self._entry_points else None)
        for duplicate in duplicates:
            _log.warning(
                "plugin.duplicate",
                plugin=duplicate.name,
                dist=duplicate.dist,
                version=duplicate.version,
            )
        found = {source.name: source for source in sources}
        for name in [n for n in self.plugins if n not in found]:
            _log.info("plugin.removed", plugin=name)
            await _retire(self.plugins.pop(name))
        newly_active = []
        for name, source in found.items():
            settings = config.plugins.get(name)
            options = settings.options if settings is not None else {}
            blocked = (settings is not None and not settings.enabled) or (
                not autoload and settings is None
            )
            old = self.plugins.get(name)
            counts = self.counts.setdefault(name, new_counts())
            if blocked:
                if old is not None:
                    await _retire(old)
                self.plugins[name] = PluginHandle(
                    source, PluginState.BLOCKED, options, counts=counts
                )
                if old is None or old.state is not PluginState.BLOCKED:
                    _log.info("plugin.blocked", plugin=name, dist=source.dist)
                continue
            # Active stays active; unconfigured stays so (and is not logged again
            # on every reload) until its distribution or its options change.
            if (
                old is not None
                and old.state in {PluginState.ACTIVE, PluginState.UNCONFIGURED}
                and (old.source.value, old.source.version)
                == (source.value, source.version)
                and dict(old.options) == dict(options)
                and old.isolation is self._isolation(source)
                and (old.host is None or old.host.limits == self._limits(name))
            ):
                continue
            if old is not None:
                await _retire(old)
            handle = PluginHandle(source, PluginState.FAILED, options, counts=counts)
            self.plugins[name] = handle
            if await self._load(handle):
                newly_active.append(name)
        return newly_active

    def _isolation(self, source: PluginSource) -> Isolation:
        """Where ``source`` runs: its ``isolation`` setting, else in a host
        process unless it is a built-in."""
        settings = self._config().plugins.get(source.name)
        if settings is not None and settings.isolation is not None:
            return settings.isolation
        if source.dist == BUILTIN_DISTRIBUTION:
            return Isolation.IN_PROCESS
        return Isolation.PROCESS

    def _limits(self, name: str) -> HostLimits:
        settings = self._config().plugins.get(name) or PluginConfig(name)
        return HostLimits(
            memory=settings.memory_limit_mb * 1024 * 1024, cpu=settings.cpu_limit
        )

    async def _load(self, handle: PluginHandle) -> bool:
        source = handle.source
        timeout = self._config().optimizer.plugin_timeout
        isolation = handle.isolation = self._isolation(source)
        host = None
        try:
            if isolation is Isolation.PROCESS:
                # Starting Python is the daemon's time, not the plugin's.
                host = PluginHost(source, handle.options, self._limits(source.name))
                await host.spawn()
            with deadline_scope(time.monotonic() + budget(timeout)):
                async with asyncio.timeout(timeout):
                    optimizer: Optimizer | IsolatedOptimizer
                    if host is not None:
                        await host.load()
                        optimizer = IsolatedOptimizer(host)
                    else:
                        loading = self.threads.track(handle, "load", instantiate)
                        optimizer = await in_daemon_thread(
                            loading, source, handle.options
                        )
        except PluginLoadError as exc:
            if host is not None:
                await host.kill()
            handle.error = exc.reason
            if exc.unconfigured:
                handle.state = PluginState.UNCONFIGURED
                _log.info(
                    "plugin.unconfigured",
                    plugin=source.name,
                    dist=source.dist,
                    reason=exc.reason,
                )
                return False
        except TimeoutError:
            handle.error = f"loading took longer than {timeout}s"
        except asyncio.CancelledError:
            if cancelling():
                if host is not None:
                    host.close_nowait()
                raise
            handle.error = "loading raised CancelledError"
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a plugin too
            handle.error = f"loading raised {type(exc).__name__}: {exc}"
        else:
            handle.optimizer = optimizer
            handle.state = PluginState.ACTIVE
            handle.error = None
            _log.info(
                "plugin.loaded",
                plugin=source.name,
                dist=source.dist,
                version=source.version,
                entry_point=source.value,
                isolation=isolation.value,
                host_pid=host.pid if host is not None else None,
            )
            return True
        if host is not None:
            await host.kill()
        _log.error(
            "plugin.failed",
            plugin=source.name,
            dist=source.dist,
            version=source.version,
            error=handle.error,
        )
        return False

    def stalled_by(self, since: float) -> str | None:
        """The plugin that held the event loop too long at or after ``since``
        (a ``time.monotonic()`` value), if one did: for the loop watch."""
        if self._stalled_by is not None and self._stalled_by[1] >= since:
            return self._stalled_by[0]
        return None

    async def close(self) -> None:
        """Stop every plugin host (at shutdown)."""
        await asyncio.gather(*(_retire(h) for h in self.plugins.values()))

    # -- calling ----------------------------------------------------------------------

    def active(self) -> list[PluginHandle]:
        """Plugins that may be called now."""
        return [h for h in self.plugins.values() if h.state is PluginState.ACTIVE]

    async def call(
        self,
        handle: PluginHandle,
        what: str,
        function: Callable[..., T | Awaitable[T]],
        *args: object,
    ) -> T:
        """Run one plugin call isolated; raises :class:`PluginCallError` on failure.

        The call runs with its deadline in force (``plugin_timeout`` less the
        grace) and is abandoned at ``plugin_timeout``. The caller checks the result
        and calls :meth:`succeeded` when it is valid, so a plugin that keeps
        answering garbage is switched off too.
        """
        timeout = self._config().optimizer.plugin_timeout
        handle.counts["calls"] += 1
        host = handle.host
        if host is not None and not host.running and handle.state is PluginState.ACTIVE:
            # A new host for a process-isolated plugin: starting Python is the
            # daemon's time; loading the plugin in it is the call's.
            try:
                await host.spawn()
            except HostFailed as exc:
                self._failed(handle, what, str(exc))
                raise PluginCallError(f"{handle.name}.{what}: {exc}") from exc
        started = time.monotonic()
        limit = asyncio.timeout(timeout)
        stepped: Stepped | None = None
        threaded: ThreadCall | None = None

        def on_stall(ended: float) -> None:
            self._stalled_by = (handle.name, ended)

        try:
            with deadline_scope(started + budget(timeout)):
                async with limit:
                    if inspect.iscoroutinefunction(function):
                        stepped = Stepped(function(*args), on_stall)
                        result: Any = await stepped
                    else:
                        threaded = self.threads.track(handle, what, function)
                        result = await in_daemon_thread(threaded, *args)
                        if time.monotonic() - started > STALL_LIMIT:
                            # The loop watch's late wake-up is due in this same
                            # iteration: let it judge the thread first.
                            await asyncio.sleep(0)
                        if inspect.isawaitable(result):
                            stepped = Stepped(awaited(result), on_stall)
                            result = await stepped
        except TimeoutError as exc:
            self._check_stall(handle, what, stepped)
            abandoned = limit.expired()
            if not abandoned:
                error = f"{type(exc).__name__}: {exc}"
            elif handle.host is not None:
                error = f"no answer within {timeout:g}s; its plugin host was killed"
            else:
                error = (
                    f"no answer within {timeout:g}s; abandoned (a thread may still run)"
                )
            if threaded is None or threaded.first_count():
                elapsed, most = time.monotonic() - started, self._max_failures()
                timed_out(handle, what, error, elapsed, most, abandoned=abandoned)
            raise PluginCallError(f"{handle.name}.{what} timed out: {error}") from exc
        except asyncio.CancelledError as exc:
            if cancelling():
                raise
            self._check_stall(handle, what, stepped)
            if threaded is None or threaded.first_count():
                self._failed(handle, what, "raised CancelledError")
            raise PluginCallError(f"{handle.name}.{what} raised {exc!r}") from exc
        except BaseException as exc:
            # sys.exit() or KeyboardInterrupt raised by a plugin: a failure, not
            # the daemon's end. From a host, the plugin's own exception is named.
            self._check_stall(handle, what, stepped)
            described = (
                str(exc)
                if isinstance(exc, PluginRaised)
                else f"{type(exc).__name__}: {exc}"
            )
            if threaded is None or threaded.first_count():
                self._failed(handle, what, described)
            raise PluginCallError(f"{handle.name}.{what} raised {exc!r}") from exc
        if self._check_stall(handle, what, stepped) or (
            threaded is not None and threaded.stalled
        ):
            # A thread's stall was counted as its failure when it was blamed.
            msg = f"{handle.name}.{what} stalled the event loop"
            raise PluginCallError(msg)
        return result  # type: ignore[no-any-return]

    def _held_loop(self, call: ThreadCall, seconds: float) -> None:
        # One failure per call: not again if it already failed or timed out. A
        # load's stall is named and counted, not a failure: the breaker is for
        # calls (a slow import is paid once).
        limit = self._max_failures()
        failure = call.what != "load" and call.first_count()
        held_loop(call.owner, call.what, seconds, limit, failure=failure)

    def _check_stall(
        self, handle: PluginHandle, what: str, stepped: Stepped | None
    ) -> bool:
        longest = 0.0 if stepped is None else stepped.longest
        return check_stall(handle, what, longest, self._max_failures())

    @staticmethod
    def succeeded(handle: PluginHandle, what: str = "propose") -> None:
        """A call's result was valid: the failure streak of its kind ends (a good
        ``propose`` does not excuse a hanging ``apply``)."""
        succeeded(handle, what)

    def _failed(self, handle: PluginHandle, what: str, error: str) -> None:
        failed(handle, what, error, self._max_failures())

    def _max_failures(self) -> int:
        return self._config().optimizer.max_failures

    async def propose(
        self,
        violation: Violation,
        context_for: Callable[[PluginHandle], OptimizerContext],
        names: Sequence[str] | None,
    ) -> list[tuple[PluginHandle, Proposal]]:
        """Ask the plugins concurrently; their valid proposals, in plugin order.

        ``names`` (a metric's ``optimizers:`` list) restricts the plugins asked;
        otherwise every active plugin whose ``handles()`` says yes is asked.
        """
        if names:
            handles = [
                self.plugins[n]
                for n in names
                if n in self.plugins and self.plugins[n].state is PluginState.ACTIVE
            ]
        else:
            handles = self.active()
        results = await asyncio.gather(
            *(
                self._propose_one(h, violation, context_for(h), bool(names))
                for h in handles
            )
        )
        return [pair for pairs in results for pair in pairs]

    async def _propose_one(
        self,
        handle: PluginHandle,
        violation: Violation,
        context: OptimizerContext,
        listed: bool,
    ) -> list[tuple[PluginHandle, Proposal]]:
        optimizer = handle.optimizer
        assert optimizer is not None  # noqa: S101 - active plugins have an object
        try:
            if not listed:
                wanted = await self.call(
                    handle, "handles", optimizer.handles, violation
                )
                if wanted is not True and wanted is not False:
                    self._failed(handle, "handles", f"returned {type(wanted).__name__}")
                    return []
                if not wanted:
                    return []
            proposals = await self.call(
                handle, "propose", optimizer.propose, violation, context
            )
        except PluginCallError:
            return []
        if not isinstance(proposals, list | tuple) or not all(
            isinstance(p, Proposal) for p in proposals
        ):
            self._failed(
                handle, "propose", f"returned {type(proposals).__name__}, not Proposals"
            )
            return []
        self.succeeded(handle)
        handle.counts["proposals"] += len(proposals)
        return [(handle, proposal) for proposal in proposals]
