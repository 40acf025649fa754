"""perfwarden's exceptions, one tree::

PerfwardenError
├── ConfigError            (perfwarden.config.load) a config that does not validate
├── AlreadyRunningError    another live daemon owns the socket directory
├── DaemonUnreachableError no daemon answers on the control socket (CLI exit 3)
├── UntrustedDirectoryError a socket directory others could tamper with (exit 1)
└── ControlError           the daemon answered a request with an error (CLI exit 1)
"""

from __future__ import annotations

__all__ = [
    "AlreadyRunningError",
    "ControlError",
    "DaemonUnreachableError",
    "PerfwardenError",
    "UntrustedDirectoryError",
]


class PerfwardenError(Exception):
    """Base of every error perfwarden raises on purpose."""


class AlreadyRunningError(PerfwardenError):
    """Another live daemon holds the socket directory's lock."""


class DaemonUnreachableError(PerfwardenError):
    """The control socket is missing or nobody answers on it."""


class ControlError(PerfwardenError):
    """The daemon answered with ``ok: false``; ``code`` says which kind of failure."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UntrustedDirectoryError(PerfwardenError):
    """A socket directory that someone other than its user could have tampered with."""
