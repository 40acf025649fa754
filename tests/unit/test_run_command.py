"""perfwarden.commands.run: lean daemon imports (no rich, no BLAS thread pool)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_LOG_BOTH_WAYS = textwrap.dedent(
    """
    import io, re, sys
    if sys.argv[1] == "lean":
        from perfwarden.commands.run import _import_structlog_lean
        _import_structlog_lean()
    from perfwarden.logs.setup import configure_logging, get_logger, shutdown_logging
    out = io.StringIO()
    for json in (True, False):
        configure_logging("info", stream=out, json=json)
        try:
            1 / 0
        except ZeroDivisionError:
            get_logger("t").exception("boom", key="value")
        shutdown_logging()  # the writer thread has written the line
    print(re.sub(r"[0-9-]+T[0-9:.]+Z", "T", out.getvalue()))
    """
)


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert 0 == result.returncode, result.stderr
    return result.stdout


class TestLeanImports:
    """structlog is imported without rich; nothing else brings rich back."""

    def test_daemon_modules_without_rich(self):
        """The daemon's modules and built-in plugins import neither rich nor pygments,
        and rich stays importable afterwards."""
        code = textwrap.dedent(
            """
            import sys
            from perfwarden.commands.run import _import_structlog_lean
            _import_structlog_lean()
            import perfwarden.app, perfwarden_optimizers.webhook, structlog.dev
            print(sorted(m for m in sys.modules if m.split(".")[0] in
                         {"rich", "pygments", "better_exceptions"}))
            print(structlog.dev.rich is None)
            import rich.console
            print(rich.console.Console is not None)
            """
        )
        assert "[]\nTrue\nTrue\n" == _python(code)

    def test_log_output_unchanged(self):
        """JSON and console lines, exceptions included, are the same either way."""
        lean = _python(_LOG_BOTH_WAYS, "lean")
        assert "ZeroDivisionError" in lean
        assert _python(_LOG_BOTH_WAYS, "full") == lean

    def test_no_op_once_structlog_is_imported(self):
        """With structlog already imported (say by the application), nothing changes."""
        code = textwrap.dedent(
            """
            import sys, structlog.dev
            from perfwarden.commands.run import _import_structlog_lean
            _import_structlog_lean()
            print(structlog.dev.rich is not None, sys.modules["rich"] is not None)
            """
        )
        assert "True True\n" == _python(code)


_THREADS_AFTER_IMPORT = textwrap.dedent(
    """
    import os
    from perfwarden.commands.run import _import_numpy_single_threaded
    _import_numpy_single_threaded()
    import numpy
    with open("/proc/self/status") as status:
        threads = next(line.split()[1] for line in status if line[:8] == "Threads:")
    print(threads, os.environ.get("OPENBLAS_NUM_THREADS"))
    """
)


class TestSingleThreadedNumpy:
    """numpy is imported without OpenBLAS's thread pool; the environment is kept."""

    def test_no_blas_threads_and_no_variable_left(self):
        """One thread after the import, and no OPENBLAS_NUM_THREADS for children."""
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        assert "1 None\n" == _python(_THREADS_AFTER_IMPORT, env=env)

    def test_user_setting_kept(self):
        """An OPENBLAS_NUM_THREADS the user set is neither overridden nor removed."""
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
        assert _python(_THREADS_AFTER_IMPORT, env=env).endswith(" 2\n")
