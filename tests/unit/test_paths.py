"""perfwarden.paths: where the daemon puts its sockets and where clients look."""

from __future__ import annotations

import os
from pathlib import Path

from perfwarden.paths import (
    discover_socket_dir,
    discover_state_dir,
    resolve_socket_dir,
    resolve_state_dir,
)


class TestDaemonSide:
    """``perfwarden run`` uses its own systemd directories."""

    def test_socket_dir_order(self) -> None:
        """--socket-dir, $PERFWARDEN_SOCKET_DIR, $RUNTIME_DIRECTORY, XDG, /tmp."""
        env = {
            "PERFWARDEN_SOCKET_DIR": "/a",
            "RUNTIME_DIRECTORY": "/b:/c",
            "XDG_RUNTIME_DIR": "/x",
        }
        assert Path("/cli") == resolve_socket_dir("/cli", env)
        assert Path("/a") == resolve_socket_dir(None, env)
        del env["PERFWARDEN_SOCKET_DIR"]
        assert Path("/b") == resolve_socket_dir(None, env)
        del env["RUNTIME_DIRECTORY"]
        assert Path("/x/perfwarden") == resolve_socket_dir(None, env)
        assert Path(f"/tmp/perfwarden-{os.getuid()}") == resolve_socket_dir(None, {})

    def test_state_dir_order(self) -> None:
        """--state-dir, $PERFWARDEN_STATE_DIR, $STATE_DIRECTORY, XDG state home."""
        env = {"STATE_DIRECTORY": "/s", "XDG_STATE_HOME": "/h"}
        assert Path("/s") == resolve_state_dir(None, env)
        del env["STATE_DIRECTORY"]
        assert Path("/h/perfwarden") == resolve_state_dir(None, env)


class TestClientSide:
    """Clients and the CLI ignore $RUNTIME_DIRECTORY / $STATE_DIRECTORY."""

    def test_ignores_the_applications_runtime_directory(self, tmp_path: Path) -> None:
        """An app's own RuntimeDirectory= is not where the daemon is."""
        env = {"RUNTIME_DIRECTORY": "/run/myapp", "XDG_RUNTIME_DIR": "/x"}
        missing = tmp_path / "none"
        assert Path("/x/perfwarden") == discover_socket_dir(None, env, missing)
        env = {"STATE_DIRECTORY": "/var/lib/myapp", "XDG_STATE_HOME": "/h"}
        assert Path("/h/perfwarden") == discover_state_dir(None, env, missing)

    def test_system_directory_when_present(self, tmp_path: Path) -> None:
        """The system daemon's directory wins over the per-user default."""
        env = {"XDG_RUNTIME_DIR": "/x", "XDG_STATE_HOME": "/h"}
        assert tmp_path == discover_socket_dir(None, env, tmp_path)
        assert tmp_path == discover_state_dir(None, env, tmp_path)

    def test_explicit_choices_win(self, tmp_path: Path) -> None:
        """The argument, then $PERFWARDEN_SOCKET_DIR, before the system directory."""
        env = {"PERFWARDEN_SOCKET_DIR": "/p", "PERFWARDEN_STATE_DIR": "/q"}
        assert Path("/cli") == discover_socket_dir("/cli", env, tmp_path)
        assert Path("/p") == discover_socket_dir(None, env, tmp_path)
        assert Path("/q") == discover_state_dir(None, env, tmp_path)
