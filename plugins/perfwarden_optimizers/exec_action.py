"""Built-in ``exec``: run an operator's command with the violation as JSON on stdin.

The proposal carries an :class:`~perfwarden.plugin_api.Action`; the daemon (never
this plugin) calls ``apply``, and ``revert`` if the validation says the effect did
not help. Both run an argv list (no shell) with:

* stdin: the violation as one JSON object (see :func:`._common.violation_payload`);
* environment: the daemon's, plus ``PERFWARDEN_EVENT`` (``apply`` or ``revert``),
  ``PERFWARDEN_METRIC`` and ``PERFWARDEN_CORRELATION_ID``;
* a process group of its own, and a time limit: the call's deadline
  (:func:`~perfwarden.plugin_api.time_left`), or the ``timeout`` option if shorter.
  On expiry the whole process group is killed (``SIGKILL``: the command and
  everything it started), and :class:`CommandTimedOut` (a ``TimeoutError``) is
  raised, which the daemon logs as a timeout the plugin handled.

A non-zero exit status raises :class:`CommandFailed` with the tail of stderr, so the
daemon counts a failure; success returns a :class:`CommandResult` for the log.
Process groups still running when the interpreter exits (the daemon stopped during
a command) are killed too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from perfwarden.plugin_api import Action, Proposal, time_left

from ._common import (
    call_limit,
    check_known,
    opt_argv,
    opt_float,
    opt_metrics,
    opt_seconds,
    opt_str,
    violation_json,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from perfwarden.plugin_api import OptimizerContext, Violation

__all__ = [
    "CommandFailed",
    "CommandResult",
    "CommandTimedOut",
    "ExecOptimizer",
    "run_command",
]

#: How much of a command's stdout/stderr is kept (characters, from the end).
TAIL_CHARS: Final = 2000
#: After killing a process group, how long to wait for its pipes to close.
REAP_SECONDS: Final = 0.2

_OPTIONS: Final = frozenset(
    {
        "command",
        "revert_command",
        "timeout",
        "metrics",
        "expected_improvement",
        "strategy",
    }
)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How one run of a command ended (returned by ``apply``/``revert``)."""

    argv: tuple[str, ...]
    returncode: int
    seconds: float
    stdout_tail: str
    stderr_tail: str


class CommandFailed(RuntimeError):
    """The command exited non-zero or timed out; ``result`` has what is known."""

    def __init__(self, message: str, result: CommandResult) -> None:
        super().__init__(message)
        self.result = result


class CommandTimedOut(CommandFailed, TimeoutError):
    """The command ran out of time; its process group was killed."""


class _Groups:
    """Process groups of running commands, killed if the interpreter exits first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[int] = set()
        atexit.register(self.kill_all)

    @contextlib.contextmanager
    def running(self, process: subprocess.Popen[bytes]) -> Iterator[None]:
        """Track ``process``'s group while the block runs; kill it if it raises."""
        with self._lock:
            self._running.add(process.pid)
        try:
            yield
        except BaseException:
            if process.returncode is None:  # not reaped: the group id is still its
                kill_group(process.pid)
                process.wait()
            raise
        finally:
            with self._lock:
                self._running.discard(process.pid)

    def kill_all(self) -> None:
        """Kill every tracked group (at exit: the daemon stopped mid-command)."""
        with self._lock:
            running, self._running = self._running, set()
        for pgid in running:
            kill_group(pgid)


_GROUPS: Final = _Groups()


def kill_group(pgid: int) -> None:
    """``SIGKILL`` the process group ``pgid``, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _reap(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """The output of a killed process, once its pipes close (or soon after)."""
    try:
        return process.communicate(timeout=REAP_SECONDS)
    except subprocess.TimeoutExpired:
        # Something that left the process group still holds the pipes open.
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()
        return b"", b""


def _tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-TAIL_CHARS:]


def run_command(
    argv: tuple[str, ...],
    stdin: str,
    timeout: float | None,
    env: Mapping[str, str],
    *,
    limited_by: str = "its timeout",
) -> CommandResult:
    """Run ``argv`` in a new process group with ``stdin``; raise
    :class:`CommandFailed` unless it exits 0 within ``timeout`` seconds (``None``:
    no limit). On timeout the group is killed and :class:`CommandTimedOut` raised;
    ``limited_by`` says in its message what set the limit.
    """
    started = time.monotonic()
    if timeout is not None and timeout <= 0:
        result = CommandResult(argv, -1, 0.0, "", "")
        msg = f"{argv[0]}: not started: no time left ({limited_by})"
        raise CommandTimedOut(msg, result)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            start_new_session=True,
        )
    except OSError as exc:
        result = CommandResult(argv, -1, time.monotonic() - started, "", str(exc))
        raise CommandFailed(f"{argv[0]}: could not run: {exc}", result) from exc
    with _GROUPS.running(process):
        try:
            stdout, stderr = process.communicate(stdin.encode(), timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            kill_group(process.pid)
            stdout, stderr = _reap(process)
            result = _result(argv, process, started, stdout, stderr)
            after = round(exc.timeout, 2)
            msg = (
                f"{argv[0]}: timed out after {after:g}s ({limited_by}); "
                f"process group {process.pid} killed"
            )
            if result.stderr_tail:
                msg += f": {result.stderr_tail[-500:]}"
            raise CommandTimedOut(msg, result) from None
    result = _result(argv, process, started, stdout, stderr)
    if result.returncode != 0:
        msg = f"{argv[0]}: exit status {result.returncode}: {result.stderr_tail[-500:]}"
        raise CommandFailed(msg, result)
    return result


def _result(
    argv: tuple[str, ...],
    process: subprocess.Popen[bytes],
    started: float,
    stdout: bytes,
    stderr: bytes,
) -> CommandResult:
    return CommandResult(
        argv,
        process.returncode,
        time.monotonic() - started,
        _tail(stdout),
        _tail(stderr),
    )


class ExecOptimizer:
    """Propose running ``command`` (revert: ``revert_command``) for a violation.

    Options: ``command`` and ``revert_command`` (argv lists, required),
    ``timeout`` (a duration; by default the time the daemon gives the call, and
    never more: the call's deadline always applies),
    ``metrics`` (default: every metric), ``expected_improvement`` (default 0.1),
    ``strategy`` (default ``exec:<basename of command[0]>``).

    Estimate: the ``expected_improvement`` option, as is. perfwarden cannot know what
    an arbitrary command does, so the operator states the prior; the learned weight
    of the strategy, fed by validated outcomes, then corrects it.
    """

    def __init__(self, options: Mapping[str, object]) -> None:
        check_known("exec", options, set(_OPTIONS))
        self.command = opt_argv("exec", options, "command")
        self.revert_command = opt_argv("exec", options, "revert_command")
        self.timeout = opt_seconds("exec", options, "timeout", None)
        self.metrics: frozenset[str] | None = None
        if "metrics" in options:
            self.metrics = opt_metrics("exec", options, frozenset())
        self.expected_improvement = opt_float(
            "exec", options, "expected_improvement", 0.1, high=1.0
        )
        default_strategy = f"exec:{os.path.basename(self.command[0])}"
        self.strategy = opt_str("exec", options, "strategy", default_strategy)

    def handles(self, violation: Violation) -> bool:
        """Every metric, or those of the ``metrics`` option."""
        return self.metrics is None or violation.metric in self.metrics

    def _runner(
        self, argv: tuple[str, ...], event: str, violation: Violation
    ) -> CommandResult:
        env = {
            "PERFWARDEN_EVENT": event,
            "PERFWARDEN_METRIC": violation.metric,
            "PERFWARDEN_CORRELATION_ID": violation.correlation_id,
        }
        limit, limited_by = call_limit(self.timeout, time_left())
        return run_command(
            argv, violation_json(violation), limit, env, limited_by=limited_by
        )

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> list[Proposal]:
        """One proposal whose action runs the command (and whose revert runs the
        revert command), each with the violation on stdin."""

        def apply() -> CommandResult:
            return self._runner(self.command, "apply", violation)

        def revert() -> CommandResult:
            return self._runner(self.revert_command, "revert", violation)

        action = Action(
            description=f"run {' '.join(self.command)}",
            apply=apply,
            revert=revert,
        )
        rationale = (
            f"{violation.metric} is {violation.gap:+.1%} from its goal; "
            f"operator command {self.command[0]} (prior {self.expected_improvement:g})"
        )
        return [
            Proposal(
                strategy=self.strategy,
                expected_improvement=self.expected_improvement,
                rationale=rationale,
                action=action,
            )
        ]
