"""Built-in ``webhook``: POST the violation (and, on revert, a revert event) as JSON.

Wire format, ``Content-Type: application/json``::

    {"event": "violation", "violation": {...}}    # Action.apply
    {"event": "revert", "violation": {...}}       # Action.revert

where ``violation`` is :func:`._common.violation_payload`. Only the standard library
(``urllib.request``) is used. A 2xx answer is success. Connection errors, timeouts,
429 and 5xx answers are retried ``retries`` times with a backoff of
``backoff * 2**n`` seconds (0.5 s, 1 s, ...); any other answer, or the last failure,
raises :class:`WebhookFailed` so the daemon counts a failure. Redirects are not
followed (a POST body would be lost on the way).

All of it fits in the call's deadline (:func:`~perfwarden.plugin_api.time_left`):
an attempt waits at most what is left (or ``timeout``, if shorter), and a retry
whose backoff would end past the deadline is not made. When the last attempt timed
out, :class:`WebhookTimedOut` (a ``TimeoutError``) is raised, which the daemon
logs as a timeout the plugin handled.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Final

from perfwarden.plugin_api import Action, Proposal, current_deadline

from ._common import (
    OptionError,
    call_limit,
    check_known,
    opt_float,
    opt_int,
    opt_metrics,
    opt_seconds,
    opt_str,
    opt_str_mapping,
    violation_payload,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from perfwarden.plugin_api import OptimizerContext, Violation

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_RETRIES",
    "WebhookFailed",
    "WebhookOptimizer",
    "WebhookTimedOut",
    "post_json",
]

#: Retries of a 429/5xx answer, and the first backoff, when not configured (the
#: daemon's config check reads them too).
DEFAULT_RETRIES: Final = 2
DEFAULT_BACKOFF: Final = 0.5
_OPTIONS: Final = frozenset(
    {
        "url",
        "timeout",
        "retries",
        "backoff",
        "headers",
        "metrics",
        "expected_improvement",
        "strategy",
    }
)


class WebhookFailed(RuntimeError):
    """The endpoint did not answer 2xx (after the retries, when retryable)."""


class WebhookTimedOut(WebhookFailed, TimeoutError):
    """The last attempt timed out (its own ``timeout`` or the call's deadline)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turn redirects into errors instead of re-sending the POST as a GET."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER: Final = urllib.request.build_opener(_NoRedirect)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _is_timeout(exc: BaseException) -> bool:
    """Whether a urllib error is a timeout (raised bare, or wrapped in URLError)."""
    reason = getattr(exc, "reason", None)
    return isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)


def post_json(
    url: str,
    body: Mapping[str, object],
    *,
    timeout: float | None,
    retries: int,
    backoff: float,
    headers: Mapping[str, str],
    deadline: float = math.inf,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST ``body`` as JSON; return the 2xx status or raise :class:`WebhookFailed`.

    Every attempt and backoff ends by ``deadline`` (``clock()`` seconds); an
    attempt waits at most ``timeout`` (``None``: whatever is left).
    """
    data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    all_headers = {
        "User-Agent": "perfwarden-webhook",
        **headers,
        "Content-Type": "application/json",
    }
    problem, timed_out, attempts, cut_short = "", False, 0, ""
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            if clock() + delay >= deadline:
                cut_short = f"; no time for retry {attempt} before the call's deadline"
                break
            sleep(delay)
        limit, _ = call_limit(timeout, max(0.0, deadline - clock()))
        if limit is not None and limit <= 0:
            cut_short = "; no time left before the call's deadline"
            break
        attempts += 1
        request = urllib.request.Request(  # noqa: S310 - scheme checked at load
            url, data=data, headers=all_headers, method="POST"
        )
        try:
            with _OPENER.open(request, timeout=limit) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            timed_out = _is_timeout(exc)
            problem = f"{type(exc).__name__}: {exc}"
            if timed_out and limit is not None:
                problem = f"no answer within {round(limit, 2):g}s"
            continue
        timed_out = False
        if 200 <= status < 300:
            return status
        problem = f"HTTP {status}"
        if not _retryable(status):
            break
    if not attempts:
        problem, timed_out = "not sent", True
    msg = f"webhook {_safe(url)}: {problem} (after {attempts} attempt(s){cut_short})"
    raise (WebhookTimedOut if timed_out else WebhookFailed)(msg)


def _safe(url: str) -> str:
    """The URL without credentials, query or fragment (for logs)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class WebhookOptimizer:
    """Propose notifying a webhook about a violation (and about its revert).

    Options: ``url`` (required, http or https), ``timeout`` (a duration per
    attempt; by default whatever is left of the call), ``retries`` (default 2),
    ``backoff`` (a duration, default 0.5 s), ``headers`` (a mapping, e.g. an
    ``Authorization`` header), ``metrics`` (default: every metric),
    ``expected_improvement`` (default 0.0), ``strategy`` (default ``webhook``).
    Attempts and backoffs never run past the call's deadline.

    Estimate: the ``expected_improvement`` option, by default 0.0: a notification
    changes nothing by itself. An operator whose endpoint acts (scales a service,
    say) states a prior; the learned weight corrects it.
    """

    def __init__(self, options: Mapping[str, object]) -> None:
        check_known("webhook", options, set(_OPTIONS))
        self.url = opt_str("webhook", options, "url", None)
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise OptionError("webhook", "url", f"must be an http(s) URL: {self.url!r}")
        self.timeout = opt_seconds("webhook", options, "timeout", None)
        self.retries = opt_int("webhook", options, "retries", DEFAULT_RETRIES)
        self.backoff = opt_seconds(
            "webhook", options, "backoff", DEFAULT_BACKOFF, zero=True
        )
        self.headers = opt_str_mapping("webhook", options, "headers")
        self.metrics: frozenset[str] | None = None
        if "metrics" in options:
            self.metrics = opt_metrics("webhook", options, frozenset())
        self.expected_improvement = opt_float(
            "webhook", options, "expected_improvement", 0.0, high=1.0
        )
        self.strategy = opt_str("webhook", options, "strategy", "webhook")

    def handles(self, violation: Violation) -> bool:
        """Every metric, or those of the ``metrics`` option."""
        return self.metrics is None or violation.metric in self.metrics

    def _post(self, event: str, violation: Violation) -> int:
        body = {"event": event, "violation": violation_payload(violation)}
        return post_json(
            self.url,
            body,
            timeout=self.timeout,
            retries=self.retries,
            backoff=self.backoff,
            headers=self.headers,
            deadline=current_deadline(),
        )

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> list[Proposal]:
        """One proposal whose action POSTs the violation (revert: a revert event)."""

        def apply() -> int:
            return self._post("violation", violation)

        def revert() -> int:
            return self._post("revert", violation)

        return [
            Proposal(
                strategy=self.strategy,
                expected_improvement=self.expected_improvement,
                rationale=f"notify {_safe(self.url)} of {violation.metric}",
                action=Action(f"POST {_safe(self.url)}", apply, revert),
            )
        ]
