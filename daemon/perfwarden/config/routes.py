"""The schema of the ``alertmanager:`` section: where firing and resolved alerts
are pushed beyond the daemon's own log.

Absent (or without ``urls``) the route is off. :mod:`perfwarden.config.load`
composes it with the other sections.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit

from yaml.nodes import MappingNode

from perfwarden.config.model import AlertmanagerConfig
from perfwarden.config.nodes import (
    Checker,
    Section,
    is_str,
    line_of,
    or_default,
    positive,
)

__all__ = ["ALERTMANAGER_KEYS", "alertmanager_section"]

ALERTMANAGER_KEYS: Final = (
    "urls", "timeout", "resend_interval", "labels", "external_url",
)  # fmt: skip
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def alertmanager_section(c: Checker, s: Section) -> AlertmanagerConfig:
    d = AlertmanagerConfig()
    external = c.string(s, "external_url", _url_problem)
    return AlertmanagerConfig(
        urls=c.strings(s, "urls", _url_problem),
        timeout=or_default(c.duration(s, "timeout", positive), d.timeout),
        resend_interval=or_default(
            c.duration(s, "resend_interval", positive), d.resend_interval
        ),
        labels=_labels(c, s),
        external_url=None if external is None else external.rstrip("/"),
    )


def _labels(c: Checker, s: Section) -> MappingProxyType[str, str]:
    node = s.node("labels")
    key = s.dotted("labels")
    out: dict[str, str] = {}
    if node is None:
        return MappingProxyType(out)
    if not isinstance(node, MappingNode):
        c.add(line_of(node), key, "must be a mapping of label names to strings")
        return MappingProxyType(out)
    for name, (_, value_node) in c.pairs(node, key).items():
        where = f"{key}.{name}"
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            c.add(line_of(value_node), where, "is not a valid Prometheus label name")
            continue
        value = c.typed(value_node, where, "a string", is_str)
        if isinstance(value, str):
            out[name] = value
    return MappingProxyType(out)


def _url_problem(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"must be an http:// or https:// URL, got {value!r}"
    return None
