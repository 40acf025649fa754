"""Built-in ``exec``: run an operator's command with the violation as JSON on stdin.

The proposal carries an :class:`~perfwarden.plugin_api.Action`; the daemon (never
this plugin) calls ``apply``, and ``revert`` if the validation says the effect did
not help. Both run an argv list (no shell) with:

* stdin: the violation as one JSON object (see :func:`._common.violation_payload`);
* environment: the daemon's, plus ``PERFWARDEN_EVENT`` (``apply`` or ``revert``),
  ``PERFWARDEN_METRIC`` and ``PERFWARDEN_CORRELATION_ID``;
* a ``timeout`` (seconds); on expiry the child is killed and the call fails.

A non-zero exit status raises :class:`CommandFailed` with the tail of stderr, so the
daemon counts a failure; success returns a :class:`CommandResult` for the log.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from perfwarden.plugin_api import Action, Proposal

from ._common import (
    check_known,
    opt_argv,
    opt_float,
    opt_metrics,
    opt_str,
    violation_json,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.plugin_api import OptimizerContext, Violation

__all__ = ["CommandFailed", "CommandResult", "ExecOptimizer", "run_command"]

#: How much of a command's stdout/stderr is kept (characters, from the end).
TAIL_CHARS: Final = 2000

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


def _tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-TAIL_CHARS:]


def run_command(
    argv: tuple[str, ...], stdin: str, timeout: float, env: Mapping[str, str]
) -> CommandResult:
    """Run ``argv`` with ``stdin``; raise :class:`CommandFailed` unless it exits 0."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        result = CommandResult(
            argv, -1, time.monotonic() - started, _tail(exc.stdout), _tail(exc.stderr)
        )
        msg = f"{argv[0]}: timed out after {timeout:g}s: {result.stderr_tail[-500:]}"
        raise CommandFailed(msg, result) from exc
    except OSError as exc:
        result = CommandResult(argv, -1, time.monotonic() - started, "", str(exc))
        raise CommandFailed(f"{argv[0]}: could not run: {exc}", result) from exc
    result = CommandResult(
        argv,
        done.returncode,
        time.monotonic() - started,
        _tail(done.stdout),
        _tail(done.stderr),
    )
    if done.returncode != 0:
        msg = f"{argv[0]}: exit status {done.returncode}: {result.stderr_tail[-500:]}"
        raise CommandFailed(msg, result)
    return result


class ExecOptimizer:
    """Propose running ``command`` (revert: ``revert_command``) for a violation.

    Options: ``command`` and ``revert_command`` (argv lists, required),
    ``timeout`` (seconds, default 10; keep it below the daemon's plugin timeout),
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
        self.timeout = opt_float("exec", options, "timeout", 10.0, low_inclusive=False)
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
        return run_command(argv, violation_json(violation), self.timeout, env)

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
