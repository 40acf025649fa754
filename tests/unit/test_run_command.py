"""perfwarden.commands.run: the daemon's imports stay lean (no rich in the daemon)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_LOG_BOTH_WAYS = textwrap.dedent(
    """
    import io, re, sys
    if sys.argv[1] == "lean":
        from perfwarden.commands.run import _import_structlog_lean
        _import_structlog_lean()
    from perfwarden.logs import configure_logging, get_logger
    out = io.StringIO()
    for json in (True, False):
        configure_logging("info", stream=out, json=json)
        try:
            1 / 0
        except ZeroDivisionError:
            get_logger("t").exception("boom", key="value")
    print(re.sub(r"[0-9-]+T[0-9:.]+Z", "T", out.getvalue()))
    """
)


def _python(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
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
