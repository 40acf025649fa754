"""``perfwarden run``: the daemon in the foreground.

The daemon's modules are imported inside :func:`run`, after
:func:`_import_structlog_lean` and :func:`_import_numpy_single_threaded` have
imported structlog without its optional exception prettifiers and numpy without
OpenBLAS's thread pool (see there): the daemon's resident memory is budgeted
(``bench/memory.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import resource
import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]

#: Read by OpenBLAS (numpy's BLAS) once, when numpy loads it.
_OPENBLAS_THREADS: Final = "OPENBLAS_NUM_THREADS"
#: Packages structlog imports, when installed, only for ``ConsoleRenderer``'s
#: exception formatter and ``structlog.tracebacks``' pretty reprs.
_STRUCTLOG_EXTRAS: Final = ("rich", "better_exceptions")


def _import_structlog_lean() -> None:
    """Import structlog while its optional extras are hidden.

    structlog imports rich (and with it pygments, fractions, decimal ...) at import
    time when it is installed, for exception formatting that this daemon never uses:
    ``format_exc_info`` renders exceptions to text before any renderer sees them, so
    the JSON and console output are the same either way. That import is about 4 MiB
    of resident memory. A ``None`` entry in ``sys.modules`` makes ``import rich``
    raise ``ImportError`` (structlog then falls back to ``plain_traceback``); the
    entries are removed again, so rich stays importable for code that wants it.
    A no-op when structlog is already imported.
    """
    if "structlog" in sys.modules:
        return
    hidden = [name for name in _STRUCTLOG_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises
    try:
        importlib.import_module("structlog")
    finally:
        for name in hidden:
            del sys.modules[name]


def _raise_fd_limit() -> None:
    # Every stream client holds a descriptor; the soft limit is often 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 65536
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _import_numpy_single_threaded() -> None:
    """Import numpy with OpenBLAS's thread pool limited to the calling thread.

    OpenBLAS starts a thread per core but one when numpy is imported (36 KiB
    resident and 40 MiB of address space each, measured; 63 threads on a 64-core
    host) for matrix work the daemon never does: its only BLAS call is the dot
    product of one window (``np.vdot``), which OpenBLAS computes on the calling
    thread up to 10,000 elements anyway. The variable is removed again after the
    import, so commands the daemon starts (the ``exec`` plugin) inherit the
    environment they would have had. A value the user set is left alone, and so
    is a numpy that is already imported.
    """
    if "numpy" in sys.modules or _OPENBLAS_THREADS in os.environ:
        return
    os.environ[_OPENBLAS_THREADS] = "1"
    try:
        importlib.import_module("numpy")
    finally:
        del os.environ[_OPENBLAS_THREADS]


def run(args: argparse.Namespace) -> int:
    """Load the config, then run the daemon until SIGTERM / SIGINT."""
    _import_structlog_lean()
    _import_numpy_single_threaded()
    # After the two above, so that they find structlog and numpy imported.
    from perfwarden.logs.setup import configure_logging, shutdown_logging  # noqa: PLC0415

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
    from perfwarden.app import Daemon  # noqa: PLC0415
    from perfwarden.config.load import (  # noqa: PLC0415
        ConfigError,
        load_config,
        resolve_config_path,
    )
    from perfwarden.logs.setup import set_log_level  # noqa: PLC0415
    from perfwarden.paths import resolve_socket_dir, resolve_state_dir  # noqa: PLC0415

    config_path = resolve_config_path(args.config, os.environ)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"perfwarden: {config_path} is not a valid config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    set_log_level(config.logging.level)
    _raise_fd_limit()
    daemon = Daemon(
        config,
        config_path,
        resolve_socket_dir(args.socket_dir, os.environ),
        resolve_state_dir(args.state_dir, os.environ),
    )
    return asyncio.run(daemon.run())
