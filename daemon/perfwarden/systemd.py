"""A dependency-free sd_notify: datagrams to ``$NOTIFY_SOCKET``, a no-op without it.

Messages are ``KEY=value`` lines (``READY=1``, ``STATUS=...``, ``STOPPING=1``,
``WATCHDOG=1``, ``RELOADING=1``); an address starting with ``@`` is in the abstract
namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Notifier", "monotonic_usec", "watchdog"]


class Notifier:
    """Sends notifications to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_interval: float | None = None
        if usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 2_000_000

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self._address is not None

    def notify(self, *fields: str) -> None:
        """Send ``fields`` (``"READY=1"`` ...) as one message; never raises."""
        if self._address is None:
            return
        message = "\n".join(fields).encode()
        with (
            contextlib.suppress(OSError),
            socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
            ) as sock,
        ):
            sock.sendto(message, socket.MSG_DONTWAIT, self._address)


def monotonic_usec() -> str:
    """The ``MONOTONIC_USEC=`` field that goes with ``RELOADING=1``."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


async def watchdog(
    notifier: Notifier, ticks: Callable[[], int], interval: Callable[[], float]
) -> None:
    """WATCHDOG=1 every WATCHDOG_USEC/2, only while the evaluation loop advances
    (``ticks`` grows within two evaluation ``interval``s, plus 1 s of slack): a
    wedged loop stops the pings and systemd restarts the service."""
    period = notifier.watchdog_interval
    if period is None:
        return
    seen, seen_at = ticks(), time.monotonic()
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        if ticks() != seen:
            seen, seen_at = ticks(), now
        if now - seen_at <= 2 * interval() + 1.0:
            notifier.notify("WATCHDOG=1")
