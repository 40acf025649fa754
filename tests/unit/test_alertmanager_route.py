"""The Alertmanager route's pushes, read by a small real HTTP receiver: what is
sent as firing and resolved through an escalation (each level's ``startsAt``
checked on a fake clock), and what is kept for an Alertmanager that did not
accept a push."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from perfwarden.alerts.evaluator import Evaluator
from perfwarden.app import Daemon
from perfwarden.config.load import parse_config
from perfwarden.routes.alertmanager import AlertmanagerRoute

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path


class Receiver:
    """An HTTP endpoint that records each POSTed JSON body; answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[list[dict[str, Any]]] = []
        self.status = 200
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()


def make_daemon(tmp_path: Path, port: int) -> Daemon:
    config = parse_config(
        "version: 1\n"
        "statistics: {min_samples: 5, window: 100}\n"
        "evaluation: {window: 10, basis: mean}\n"
        "metrics:\n"
        "  latency: {unit: ms, bound: upper, warning: 100, critical: 200}\n"
        "alertmanager:\n"
        f"  urls: [http://127.0.0.1:{port}]\n"
        "  resend_interval: 30s\n"
    )
    return Daemon(config, tmp_path / "c.yaml", tmp_path / "run", tmp_path)


def feed(daemon: Daemon, value: float) -> None:
    daemon.ingestor.feed(
        "\n".join(f"latency:{value}|ms|#route:/a" for _ in range(10)).encode()
    )
    daemon.ingestor.commit()
    daemon.evaluator.evaluate(list(daemon.store))


def by_severity(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["labels"]["severity"]: a for a in alerts}


def test_fire_escalate_resolve(tmp_path: Path) -> None:
    """Warning fires; escalation resolves it and fires critical; both end."""

    async def scenario() -> list[list[dict[str, Any]]]:
        receiver = Receiver()
        port = await receiver.start()
        daemon = make_daemon(tmp_path, port)
        route = daemon.alertmanager
        try:
            feed(daemon, 150)
            assert await route.push()
            feed(daemon, 250)
            assert await route.push()
            feed(daemon, 50)
            assert await route.push()
            assert await route.push()  # nothing left to say: no request
        finally:
            await receiver.stop()
        return receiver.bodies

    first, second, third = asyncio.run(scenario())
    (warning,) = first
    assert "PerfwardenWarning" == warning["labels"]["alertname"]
    assert "/a" == warning["labels"]["route"]
    assert "150 ms" == warning["annotations"]["observed"]
    starts = datetime.fromisoformat(warning["startsAt"])
    assert (datetime.fromisoformat(warning["endsAt"]) - starts).total_seconds() > 100
    sent = by_severity(second)
    assert {"warning", "critical"} == sent.keys()
    # The warning alert ended when the critical one began.
    assert datetime.fromisoformat(sent["warning"]["endsAt"]) <= datetime.fromisoformat(
        sent["critical"]["endsAt"]
    )
    assert "PerfwardenCritical" == sent["critical"]["labels"]["alertname"]
    (resolved,) = third
    assert "critical" == resolved["labels"]["severity"]
    assert datetime.fromisoformat(resolved["endsAt"]) <= datetime.now(
        datetime.fromisoformat(resolved["endsAt"]).tzinfo
    )


def test_resolutions_wait_for_an_alertmanager_that_refused(tmp_path: Path) -> None:
    """A resolution a failed push carried is sent again until one is accepted."""

    async def scenario() -> tuple[list[bool], list[list[dict[str, Any]]]]:
        receiver = Receiver()
        port = await receiver.start()
        daemon = make_daemon(tmp_path, port)
        route = daemon.alertmanager
        results = []
        try:
            feed(daemon, 250)
            results.append(await route.push())
            receiver.status = 503
            feed(daemon, 50)
            results.append(await route.push())
            receiver.status = 200
            results.append(await route.push())
            results.append(await route.push())
        finally:
            await receiver.stop()
        counts = route.counts[f"http://127.0.0.1:{port}"]
        assert (2, 1) == (counts.sent, counts.failed)
        return results, receiver.bodies

    results, bodies = asyncio.run(scenario())
    assert [True, False, True, True] == results
    firing, refused, accepted = bodies
    assert firing[0]["labels"] == refused[0]["labels"] == accepted[0]["labels"]
    assert refused == accepted


class Clock:
    """A monotonic and a wall clock that move only when told to."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds

    def at(self, offset: float) -> str:
        """The RFC 3339 text of ``offset`` seconds after the start."""
        return datetime.fromtimestamp(1_800_000_000.0 + offset, UTC).isoformat(
            timespec="milliseconds"
        )


def fake_clocked(
    daemon: Daemon, clock: Clock
) -> tuple[Evaluator, AlertmanagerRoute, Callable[[float], Awaitable[None]]]:
    """An evaluator and route on *daemon*'s store, both on *clock*, and a step
    that judges ten samples of a value, lets time pass and pushes."""
    evaluator = Evaluator(
        daemon.store,
        lambda: daemon.config,
        clock=lambda: clock.mono,
        wall=lambda: clock.wall,
    )
    route = AlertmanagerRoute(
        daemon.store,
        evaluator,
        config=lambda: daemon.config,
        dashboard=lambda: None,
        clock=lambda: clock.mono,
        wall=lambda: clock.wall,
    )
    evaluator.subscribers.append(route.on_alert)

    async def judge(value: float, then: float) -> None:
        daemon.ingestor.feed(
            "\n".join(f"latency:{value}|ms" for _ in range(10)).encode()
        )
        daemon.ingestor.commit()
        evaluator.evaluate(list(daemon.store))
        clock.advance(then)
        assert await route.push()

    return evaluator, route, judge


def test_each_level_starts_when_it_was_reached(tmp_path: Path) -> None:
    """The critical alert of an escalation starts at the escalation, not when the
    warning fired, and keeps that start on resends; the warning ends at the push
    that saw the escalation; a de-escalation's warning starts anew."""
    clock = Clock()

    async def scenario() -> list[list[dict[str, Any]]]:
        receiver = Receiver()
        daemon = make_daemon(tmp_path, await receiver.start())
        _, route, judge = fake_clocked(daemon, clock)
        try:
            await judge(150, 60)  # warning fires at 0, pushed at 60
            await judge(250, 5)  # critical at 60, pushed at 65
            clock.advance(30)
            assert await route.push()  # a resend at 95
            await judge(150, 1)  # back to warning at 95, pushed at 96
        finally:
            await receiver.stop()
        return receiver.bodies

    fired, escalated, resent, deescalated = asyncio.run(scenario())
    assert [("warning", clock.at(0))] == [
        (a["labels"]["severity"], a["startsAt"]) for a in fired
    ]
    sent = by_severity(escalated)
    assert (clock.at(0), clock.at(65)) == (
        sent["warning"]["startsAt"],
        sent["warning"]["endsAt"],
    )
    assert clock.at(60) == sent["critical"]["startsAt"]
    assert [("critical", clock.at(60))] == [
        (a["labels"]["severity"], a["startsAt"]) for a in resent
    ]
    sent = by_severity(deescalated)
    assert (clock.at(60), clock.at(96)) == (
        sent["critical"]["startsAt"],
        sent["critical"]["endsAt"],
    )
    assert clock.at(95) == sent["warning"]["startsAt"]


def test_an_escalation_under_a_silence_starts_when_a_push_saw_it(
    tmp_path: Path,
) -> None:
    """A silenced series' transitions reach no subscriber, so the route dates an
    escalation it did not hear by the first push that saw it (silenced or not),
    never by when the warning fired."""
    clock = Clock()

    async def scenario() -> list[list[dict[str, Any]]]:
        receiver = Receiver()
        daemon = make_daemon(tmp_path, await receiver.start())
        evaluator, route, judge = fake_clocked(daemon, clock)
        try:
            await judge(150, 10)  # warning fires at 0, pushed at 10
            silence = evaluator.silences.add("latency", {}, 3600)
            await judge(250, 10)  # critical at 10 (unheard), seen at 20
            evaluator.silences.remove(silence.id)
            clock.advance(10)
            assert await route.push()  # at 30
        finally:
            await receiver.stop()
        return receiver.bodies

    fired, silenced, lifted = asyncio.run(scenario())
    assert [("warning", clock.at(0))] == [
        (a["labels"]["severity"], a["startsAt"]) for a in fired
    ]
    assert [("warning", clock.at(20))] == [
        (a["labels"]["severity"], a["endsAt"]) for a in silenced
    ]
    assert [("critical", clock.at(20))] == [
        (a["labels"]["severity"], a["startsAt"]) for a in lifted
    ]


def test_thousands_firing_are_built_in_slices(tmp_path: Path) -> None:
    """3,000 alerts firing: the push builds them while the loop keeps turning
    (a ticker task runs meanwhile), and sends every one."""

    async def scenario() -> tuple[int, int]:
        receiver = Receiver()
        port = await receiver.start()
        daemon = make_daemon(tmp_path, port)
        daemon.ingestor.feed(
            "\n".join(
                f"latency:250|ms|#route:/{i}" for i in range(3000) for _ in range(5)
            ).encode()
        )
        daemon.ingestor.commit()
        daemon.evaluator.evaluate(list(daemon.store))
        turns = 0
        building = True

        async def ticker() -> None:
            nonlocal turns
            while building:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        try:
            await asyncio.sleep(0)
            turns = 0
            built = await daemon.alertmanager._current(daemon.alertmanager._wall())
            building = False
            await task
            assert 3000 == len(built)
            assert await daemon.alertmanager.push()
        finally:
            await receiver.stop()
        (body,) = receiver.bodies
        return len(body), turns

    sent, turns = asyncio.run(scenario())
    assert 3000 == sent
    assert turns > 1  # the loop ran another task while the alerts were built


def test_without_urls_nothing_is_built(tmp_path: Path) -> None:
    """No URL configured: a push builds and sends nothing, however much fires."""

    async def scenario() -> int:
        config = parse_config(
            "version: 1\nstatistics: {min_samples: 5}\n"
            "evaluation: {window: 10, basis: mean}\n"
            "metrics:\n  latency: {bound: upper, warning: 100, critical: 200}\n"
        )
        daemon = Daemon(config, tmp_path / "c.yaml", tmp_path / "run", tmp_path)
        feed(daemon, 250)
        assert await daemon.alertmanager.push()
        return int(daemon.alertmanager.status()["firing"])

    assert 0 == asyncio.run(scenario())
