"""``perfwarden run``: the daemon in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
from typing import TYPE_CHECKING

from perfwarden.app import Daemon
from perfwarden.config import ConfigError, load_config, resolve_config_path
from perfwarden.logs import configure_logging, shutdown_logging
from perfwarden.paths import resolve_socket_dir, resolve_state_dir

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def _raise_fd_limit() -> None:
    # Every stream client holds a descriptor; the soft limit is often 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 65536
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run(args: argparse.Namespace) -> int:
    """Load the config, then run the daemon until SIGTERM / SIGINT."""
    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    configure_logging(
        args.log_level,
        json=json_logs,
        max_queued=args.log_buffer,
        capture_stdout=True,
    )
    try:
        return _run(args)
    finally:
        # The last lines (daemon.stopped) leave within a deadline, even when
        # nobody reads stdout any more.
        shutdown_logging()


def _run(args: argparse.Namespace) -> int:
    config_path = resolve_config_path(args.config, os.environ)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"perfwarden: {config_path} is not a valid config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    _raise_fd_limit()
    daemon = Daemon(
        config,
        config_path,
        resolve_socket_dir(args.socket_dir, os.environ),
        resolve_state_dir(args.state_dir, os.environ),
    )
    return asyncio.run(daemon.run())
