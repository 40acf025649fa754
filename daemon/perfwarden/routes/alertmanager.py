"""The Alertmanager route: every firing and resolved alert, pushed to the v2 API.

Alertmanager is where a fleet's alerts are deduplicated, grouped, routed and
silenced, so perfwarden speaks to it the way Prometheus does:

* each push sends the *current* firing alerts (``startsAt`` when the alert reached
  its level, ``endsAt`` four resend intervals ahead, so an Alertmanager resolves
  them by itself should this daemon vanish) plus the alerts resolved since
  (``endsAt`` the resolution time);
* the level is in the labels, so an escalation resolves the warning alert and
  fires a critical one that starts at the escalation, a new alert as a
  Prometheus rule's critical alert would be (a de-escalation likewise);
* pushes happen at once on a transition (the evaluator's subscribers are called
  on the loop; this only sets an event) and every ``resend_interval`` while
  anything fires;
* a push that fails (Alertmanager restarting, refused, timed out) is retried
  with a doubling delay up to ``resend_interval``. Since every push carries the
  whole current state, nothing is queued but the resolutions an Alertmanager has
  not acknowledged yet; those are kept per URL until it does, or until the
  ``endsAt`` of their last firing push has passed (Alertmanager resolved them
  itself then).

A series silenced with ``perfwarden silence`` is withheld, as its log events are.
The route runs as one task on the event loop; HTTP is asyncio streams under
``timeout``, so a slow Alertmanager never holds the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from perfwarden.alerts.machine import AlertState, Level, Transition
from perfwarden.logs.setup import get_logger
from perfwarden.routes.post import PostError, post_json
from perfwarden.views.exposition_text import label_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.alerts.evaluator import AlertEvent, Evaluator
    from perfwarden.alerts.machine import SeriesAlert
    from perfwarden.config.load import Config
    from perfwarden.series.store import MetricStore, Series

__all__ = ["AlertmanagerRoute", "UrlCounts"]

_log = get_logger("perfwarden.alertmanager")

#: Labels perfwarden sets on every alert; a tag of the same name gets ``tag_``.
_OWN_LABELS: Final = frozenset({"alertname", "metric", "severity", "job", "instance"})
_FIRST_RETRY: Final = 1.0
#: Loop time spent building the firing alerts before the loop runs again.
_SLICE: Final = 0.005
_WAKING: Final = frozenset(
    {
        Transition.FIRED,
        Transition.ESCALATED,
        Transition.DEESCALATED,
        Transition.RESOLVED,
        Transition.NO_DATA,
    }
)
_LEVEL_CHANGES: Final = frozenset({Transition.ESCALATED, Transition.DEESCALATED})


@dataclass(slots=True)
class UrlCounts:
    """What one Alertmanager URL was sent (for ``/metrics`` and ``status``)."""

    sent: int = 0
    failed: int = 0
    alerts_sent: int = 0
    last_error: str | None = None
    last_success: float | None = None


@dataclass(frozen=True, slots=True)
class _Level:
    """The level a series' alert fires at and since when (the route's clock)."""

    level: Level
    since: float


@dataclass(slots=True)
class _Resolved:
    alert: dict[str, Any]
    #: Wall time after which an Alertmanager has resolved it anyway.
    moot_after: float
    owed: set[str] = field(default_factory=set)


class AlertmanagerRoute:
    """Pushes the evaluator's firing and resolved alerts to the configured URLs."""

    def __init__(
        self,
        store: MetricStore,
        evaluator: Evaluator,
        *,
        config: Callable[[], Config],
        dashboard: Callable[[], str | None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._evaluator = evaluator
        self._config = config
        self._dashboard = dashboard
        self._clock = clock
        self._wall = wall
        self._wake = asyncio.Event()
        #: Alerts sent as firing by the last push, by their label set.
        self._firing: dict[frozenset[tuple[str, str]], dict[str, Any]] = {}
        self._resolved: dict[frozenset[tuple[str, str]], _Resolved] = {}
        #: Per series key, the level it fires at and since when.
        self._levels: dict[str, _Level] = {}
        self.counts: dict[str, UrlCounts] = {}
        self._instance = socket.gethostname()

    # -- the evaluator's side ---------------------------------------------------

    def on_alert(self, event: AlertEvent) -> None:
        """Evaluator subscriber: a transition that changes what fires wakes the
        route (called on the loop; returns at once)."""
        if event.transition in _WAKING:
            self._wake.set()
        if event.level is not None and event.transition in _LEVEL_CHANGES:
            self._levels[event.series] = _Level(event.level, self._clock())

    # -- the task ---------------------------------------------------------------

    async def run(self) -> None:
        """Push on every wake-up and every ``resend_interval``; back off on errors."""
        retry = _FIRST_RETRY
        while True:
            settings = self._config().alertmanager
            try:
                ok = await self.push()
            except Exception:  # noqa: BLE001 - the route must not die silently
                _log.exception("alertmanager.failed")
                ok = False
            delay = settings.resend_interval
            if ok:
                retry = _FIRST_RETRY
            else:
                delay = min(retry, settings.resend_interval)
                retry = min(retry * 2, settings.resend_interval)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def push(self) -> bool:
        """Send the current state to every URL; whether all accepted it."""
        settings = self._config().alertmanager
        if not settings.urls:
            # Nobody to tell: building thousands of alerts in an incident would
            # only hold the loop. A URL added by a reload gets the whole state.
            self._firing = {}
            self._resolved.clear()
            return True
        now = self._wall()
        firing = await self._current(now)
        for identity in self._firing.keys() - firing.keys():
            alert = {**self._firing[identity], "endsAt": _rfc3339(now)}
            self._resolved[identity] = _Resolved(
                alert,
                moot_after=now + 4 * settings.resend_interval,
                owed=set(settings.urls),
            )
        for identity in firing.keys() & self._resolved.keys():
            del self._resolved[identity]
        self._firing = firing
        for identity in [
            key for key, gone in self._resolved.items() if gone.moot_after < now
        ]:
            del self._resolved[identity]
        results = await asyncio.gather(
            *(self._send(url, firing, settings.timeout) for url in settings.urls)
        )
        return all(results)

    async def _send(
        self,
        url: str,
        firing: dict[frozenset[tuple[str, str]], dict[str, Any]],
        within: float,
    ) -> bool:
        resolved = [
            (identity, gone)
            for identity, gone in self._resolved.items()
            if url in gone.owed
        ]
        alerts = [*firing.values(), *(gone.alert for _, gone in resolved)]
        if not alerts:
            return True
        counts = self.counts.setdefault(url, UrlCounts())
        body = json.dumps(alerts, separators=(",", ":")).encode()
        endpoint = f"{url.rstrip('/')}/api/v2/alerts"
        try:
            status, reply = await post_json(endpoint, body, within=within)
            if status != 200:
                text = reply.decode("utf-8", "replace").strip()
                message = f"HTTP {status}: {text}"
                raise PostError(message)
        except PostError as exc:
            counts.failed += 1
            first = counts.last_error is None
            counts.last_error = str(exc)
            if first:
                _log.warning(
                    "alertmanager.failed", url=url, error=str(exc), alerts=len(alerts)
                )
            return False
        if counts.last_error is not None:
            _log.info("alertmanager.recovered", url=url, alerts=len(alerts))
        counts.sent += 1
        counts.alerts_sent += len(alerts)
        counts.last_error = None
        counts.last_success = self._wall()
        for _, gone in resolved:
            gone.owed.discard(url)
        for identity in [k for k, gone in self._resolved.items() if not gone.owed]:
            del self._resolved[identity]
        return True

    # -- what fires now -----------------------------------------------------------

    async def _current(
        self, now: float
    ) -> dict[frozenset[tuple[str, str]], dict[str, Any]]:
        """The firing alerts as Alertmanager takes them, built in slices of at
        most :data:`_SLICE` seconds of loop time (an incident fires thousands)."""
        config = self._config()
        settings = config.alertmanager
        mono = self._clock()
        evaluator = self._evaluator
        ends_at = _rfc3339(now + 4 * settings.resend_interval)
        out: dict[frozenset[tuple[str, str]], dict[str, Any]] = {}
        levels: dict[str, _Level] = {}
        firing = [
            (key, state)
            for key, state in evaluator.alerts.items()
            if state.state is AlertState.FIRING and state.level is not None
        ]
        slice_started = time.perf_counter()
        for key, state in firing:
            if time.perf_counter() - slice_started >= _SLICE:
                await asyncio.sleep(0)  # let ingest and clients in
                slice_started = time.perf_counter()
            assert state.level is not None  # noqa: S101 - filtered above
            series = self._store.get(key)
            metric = config.metrics.get(series.name) if series else None
            if series is None or metric is None:
                continue
            at_level = levels[key] = self._level_since(key, state, mono)
            tags = series.tag_dict
            if evaluator.silences.covers(series.name, tags):
                continue
            level = state.level.value
            labels = {
                **self._tag_labels(series),
                **settings.labels,
                "alertname": f"Perfwarden{level.capitalize()}",
                "metric": series.name,
                "severity": level,
                "job": "perfwarden",
            }
            labels.setdefault("instance", self._instance)
            threshold = metric.critical if level == "critical" else metric.warning
            alert: dict[str, Any] = {
                "labels": labels,
                "annotations": _annotations(
                    metric=series.name,
                    level=level,
                    observed=evaluator.observations.get(key),
                    threshold=threshold,
                    unit=metric.unit,
                    basis=config.evaluation.basis.value,
                ),
                "startsAt": _rfc3339(min(now, now - (mono - at_level.since))),
                "endsAt": ends_at,
            }
            if (generator := self._generator_url(series)) is not None:
                alert["generatorURL"] = generator
            out[frozenset(labels.items())] = alert
        for key, heard in self._levels.items():
            # A level change heard between slices, after its series was built.
            if key in levels and heard.since > levels[key].since:
                levels[key] = heard
        self._levels = levels
        return out

    def _level_since(self, key: str, state: SeriesAlert, mono: float) -> _Level:
        """Since when the firing alert of *key* has been at its level: when it
        fired, or when it last changed level (heard at the transition, or else
        seen now, as for a series silenced then)."""
        assert state.level is not None  # noqa: S101 - a firing alert has a level
        fired = state.fired_at if state.fired_at is not None else mono
        known = self._levels.get(key)
        if known is None or known.since < fired:  # none, or an earlier episode's
            return _Level(state.level, fired)
        if known.level is not state.level:
            return _Level(state.level, mono)
        return known

    def _tag_labels(self, series: Series) -> dict[str, str]:
        labels: dict[str, str] = {}
        for tag in series.tags:
            key, colon, value = tag.partition(":")
            base = name = label_name(key)
            if name in _OWN_LABELS:
                base = name = f"tag_{name}"
            suffix = 2
            while name in labels:
                name = f"{base}_{suffix}"
                suffix += 1
            labels[name] = value if colon else "true"
        return labels

    def _generator_url(self, series: Series) -> str | None:
        base = self._config().alertmanager.external_url or self._dashboard()
        if base is None:
            return None
        return f"{base.rstrip('/')}/#{series.key}"

    # -- reading ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For ``perfwarden status``: per URL what was sent and the last error."""
        return {
            "firing": len(self._firing),
            "resolved_unsent": len(self._resolved),
            "urls": {
                url: {
                    "pushes": counts.sent,
                    "failures": counts.failed,
                    "alerts_sent": counts.alerts_sent,
                    "last_error": counts.last_error,
                    "last_success": counts.last_success,
                }
                for url, counts in self.counts.items()
            },
        }


def _annotations(
    *,
    metric: str,
    level: str,
    observed: tuple[float, float] | None,
    threshold: float | None,
    unit: str | None,
    basis: str,
) -> dict[str, str]:
    suffix = f" {unit}" if unit else ""
    out = {"basis": basis}
    summary = f"{metric} is {level}"
    if observed is not None:
        low, high = observed
        mid = (low + high) / 2
        out["observed"] = f"{mid:.6g}{suffix}"
        out["interval"] = f"[{low:.6g}, {high:.6g}]{suffix}"
        summary += f": {basis} {out['observed']}"
        if basis == "ci":
            summary += f" (95% CI {out['interval']})"
    if threshold is not None:
        out["threshold"] = f"{threshold:.6g}{suffix}"
        summary += f", beyond the {level} level {out['threshold']}"
    out["summary"] = summary
    return out


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
