"""The plugin host's wire format: plugin-API values to JSON and back.

The daemon and a plugin host (:mod:`.plugin_host`, :mod:`.plugin_host_child`) talk
over a socket pair in JSON lines, one object per line, never pickle: a plugin's
reply is data the daemon checks, not code it runs. Requests and replies::

    daemon → host  {"id": 7, "op": "propose", "deadline": 12345.6,
                    "violation": {...}, "context": {...}}
    host → daemon  {"id": 7, "ok": true, "result": {"proposals": [...]}}
                   {"id": 7, "ok": false, "kind": "error", "error": "ValueError: ..."}

``op`` is ``load`` (``entry_point``, ``dist``, ``version``, ``options``),
``handles`` (``violation``), ``propose`` (``violation``, ``context``), ``apply`` or
``revert`` (``action``: an id the host gave in a proposal). ``deadline`` is a
``time.monotonic()`` value: the clock is system-wide, so the plugin's
:func:`~perfwarden.plugin_api.time_left` means the same in both processes. ``kind``
is ``error``, ``timeout`` (the plugin raised ``TimeoutError``), ``invalid`` (a
result that is not what the API asks for), ``load`` or ``unconfigured``.

This module holds the encoders and decoders of the values; each side's framing is
its own.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from perfwarden.plugin_api import (
    KnobChange,
    KnobSpec,
    ObservedStats,
    OptimizerContext,
    Proposal,
    Violation,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "MAX_NODES",
    "WireError",
    "decode_context",
    "decode_options",
    "decode_violation",
    "encode_context",
    "encode_options",
    "encode_proposal",
    "encode_violation",
    "proposal_fields",
]

#: The most values an options tree may hold to be sent (an alias bomb in the YAML
#: is cheap as shared objects, not once written out).
MAX_NODES: Final = 100_000


class WireError(ValueError):
    """A value that cannot cross to or from the plugin host."""


def _plain(value: object, budget: list[int]) -> object:
    budget[0] -= 1
    if budget[0] < 0:
        msg = f"more than {MAX_NODES} values"
        raise WireError(msg)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [_plain(item, budget) for item in value]
    if isinstance(value, MappingProxyType | dict):
        return {str(k): _plain(v, budget) for k, v in value.items()}
    msg = f"a {type(value).__name__} cannot be sent to the plugin host"
    raise WireError(msg)


def encode_options(options: Mapping[str, object]) -> dict[str, object]:
    """A plugin's options as plain JSON values (raises :class:`WireError`)."""
    plain = _plain(dict(options), [MAX_NODES])
    assert isinstance(plain, dict)  # noqa: S101 - a dict encodes as a dict
    return plain


def _frozen(value: object) -> object:
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


def decode_options(plain: Mapping[str, object]) -> Mapping[str, object]:
    """Options as the config gives them: read-only mappings, tuples."""
    frozen = _frozen(dict(plain))
    assert isinstance(frozen, MappingProxyType)  # noqa: S101 - a dict decodes so
    return frozen


def encode_violation(violation: Violation) -> dict[str, Any]:
    """A :class:`Violation` as JSON values."""
    stats = violation.stats
    return {
        "metric": violation.metric,
        "tags": dict(violation.tags),
        "severity": violation.severity,
        "basis": violation.basis,
        "bound": violation.bound,
        "observed": list(violation.observed),
        "threshold": violation.threshold,
        "target": violation.target,
        "unit": violation.unit,
        "trend": violation.trend,
        "stats": {
            "sample_size": stats.sample_size,
            "mean": stats.mean,
            "ci_low": stats.ci_low,
            "ci_high": stats.ci_high,
            "p50": stats.p50,
            "p95": stats.p95,
            "p99": stats.p99,
            "min": stats.min,
            "max": stats.max,
        },
        "correlation_id": violation.correlation_id,
    }


def decode_violation(plain: Mapping[str, Any]) -> Violation:
    """The :class:`Violation` :func:`encode_violation` wrote."""
    low, high = plain["observed"]
    return Violation(
        metric=plain["metric"],
        tags=MappingProxyType(dict(plain["tags"])),
        severity=plain["severity"],
        basis=plain["basis"],
        bound=plain["bound"],
        observed=(low, high),
        threshold=plain["threshold"],
        target=plain["target"],
        unit=plain["unit"],
        trend=plain["trend"],
        stats=ObservedStats(**plain["stats"]),
        correlation_id=plain["correlation_id"],
    )


def encode_context(context: OptimizerContext) -> dict[str, Any]:
    """An :class:`OptimizerContext` as JSON values (options included)."""
    return {
        "knobs": dict(context.knobs),
        "specs": {
            name: {
                "name": spec.name,
                "initial": spec.initial,
                "min": spec.min,
                "max": spec.max,
                "step": spec.step,
                "choices": list(spec.choices) if spec.choices is not None else None,
            }
            for name, spec in context.specs.items()
        },
        "options": encode_options(context.options),
    }


def decode_context(plain: Mapping[str, Any]) -> OptimizerContext:
    """The read-only :class:`OptimizerContext` :func:`encode_context` wrote."""
    specs = {}
    for name, spec in plain["specs"].items():
        choices = spec["choices"]
        specs[name] = KnobSpec(
            name=spec["name"],
            initial=spec["initial"],
            min=spec["min"],
            max=spec["max"],
            step=spec["step"],
            choices=tuple(choices) if choices is not None else None,
        )
    return OptimizerContext(
        knobs=MappingProxyType(dict(plain["knobs"])),
        specs=MappingProxyType(specs),
        options=decode_options(plain["options"]),
    )


def encode_proposal(proposal: Proposal, action_id: int | None) -> dict[str, Any]:
    """A :class:`Proposal` as JSON values; its action, if any, stays in the host
    under ``action_id``."""
    changes = [
        [change.knob, _plain(change.value, [MAX_NODES])] for change in proposal.changes
    ]
    action = (
        {"id": action_id, "description": str(proposal.action.description)}
        if proposal.action is not None
        else None
    )
    return {
        "strategy": proposal.strategy,
        "expected_improvement": proposal.expected_improvement,
        "rationale": proposal.rationale,
        "changes": changes,
        "action": action,
    }


def proposal_fields(plain: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a :class:`Proposal` but its action, checked
    (raises :class:`WireError`; :class:`Proposal` checks the rest)."""
    try:
        changes = tuple(KnobChange(str(k), v) for k, v in plain["changes"])
        strategy, rationale = plain["strategy"], plain["rationale"]
        improvement = plain["expected_improvement"]
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"malformed proposal from the plugin host: {exc!r}"
        raise WireError(msg) from exc
    if not isinstance(strategy, str) or not isinstance(rationale, str):
        msg = "malformed proposal from the plugin host: strategy/rationale not text"
        raise WireError(msg)
    if isinstance(improvement, bool) or not isinstance(improvement, int | float):
        msg = "malformed proposal from the plugin host: expected_improvement"
        raise WireError(msg)
    return {
        "strategy": strategy,
        "expected_improvement": float(improvement),
        "rationale": rationale,
        "changes": changes,
    }
