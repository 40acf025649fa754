"""Control-socket authorization by peer credentials (needs root to switch uid)."""

from __future__ import annotations

import grp
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.control.channel import request
from perfwarden.errors import ControlError, DaemonUnreachableError

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="switching uid needs root")

NOBODY = 65534


def _group() -> str:
    return grp.getgrgid(NOBODY).gr_name


def as_user(uid: int, groups: list[int], call: Callable[[], Any]) -> Any:
    """Run ``call`` in a forked child with another uid; return its result or error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_fd)
            os.setgroups(groups)
            os.setgid(groups[0] if groups else NOBODY)
            os.setuid(uid)
            try:
                outcome: Any = ("ok", call())
            except (ControlError, DaemonUnreachableError) as exc:
                outcome = ("error", type(exc).__name__, getattr(exc, "code", None))
            os.write(write_fd, pickle.dumps(outcome))
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)  # noqa: S301 - our own child's answer


def grouped_daemon(
    make_daemon: Callable[..., DaemonProcess], control: str
) -> DaemonProcess:
    config = f"version: 1\nsockets: {{group: {_group()}}}\ncontrol: {control}\n"
    daemon = make_daemon(config)
    Path(daemon.base_dir).chmod(0o755)
    return daemon.start()


class TestControlAuthorization:
    def test_group_member_reads_but_may_not_change(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A uid in the socket's group may read status; reload is forbidden."""
        daemon = grouped_daemon(make_daemon, "{allow_uids: []}")
        path = daemon.control_path
        status = as_user(NOBODY, [NOBODY], lambda: request(path, "status")["pid"])
        assert "ok" == status[0]
        reload = as_user(NOBODY, [NOBODY], lambda: request(path, "reload"))
        assert ("error", "ControlError", "forbidden") == reload
        assert daemon.wait_log("control.forbidden")

    def test_allowed_uid_may_change(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A uid listed in ``control.allow_uids`` may reload."""
        daemon = grouped_daemon(make_daemon, f"{{allow_uids: [{NOBODY}]}}")
        reload = as_user(
            NOBODY, [NOBODY], lambda: request(daemon.control_path, "reload")
        )
        assert "ok" == reload[0]

    def test_outsider_cannot_connect(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A uid outside the socket's group cannot even connect."""
        daemon = make_daemon()
        Path(daemon.base_dir).chmod(0o755)
        daemon.start()
        outcome = as_user(
            NOBODY, [NOBODY], lambda: request(daemon.control_path, "status")
        )
        assert ("error", "DaemonUnreachableError", None) == outcome
