"""The schema of the sections that say how the daemon runs: which processes to
sample (``processes``), who may change its state (``control``), who may send
metrics (``sockets``), ingest limits (``ingest``), checkpoints (``state``) and the
HTTP listener (``http``).

Each function reads one section through a :class:`~perfwarden.config.nodes.Checker`,
which collects every problem with its line; :mod:`perfwarden.config.load` composes them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from perfwarden.config.model import (
    ControlConfig,
    HttpConfig,
    IngestConfig,
    MetricsAccess,
    ProcessConfig,
    SignedGauges,
    SocketsConfig,
    StateConfig,
)
from perfwarden.config.nodes import (
    Checker,
    Section,
    at_least,
    is_int,
    is_null,
    line_of,
    non_empty,
    non_negative,
    or_default,
    positive,
    regex,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from yaml.nodes import Node

__all__ = [
    "CONTROL_KEYS",
    "HTTP_KEYS",
    "INGEST_KEYS",
    "PROCESS_KEYS",
    "SOCKETS_KEYS",
    "STATE_KEYS",
    "control_section",
    "http_section",
    "ingest_section",
    "processes_section",
    "sockets_section",
    "state_section",
]

PROCESS_KEYS: Final = ("name", "match", "interval", "children")
_MATCH_KEYS: Final = ("pid", "pidfile", "name", "cmdline", "unit")
CONTROL_KEYS: Final = (
    "allow_uids",
    "allow_groups",
    "max_connections",
    "max_connections_per_uid",
    "max_request_bytes",
    "max_json_depth",
    "send_timeout",
)
SOCKETS_KEYS: Final = ("metrics_access", "group")
INGEST_KEYS: Final = (
    "max_line_bytes",
    "max_tag_bytes",
    "max_tags",
    "max_connections",
    "max_connections_per_uid",
    "idle_timeout",
    "max_datagram_bytes",
    "max_set_members",
    "max_set_bytes",
    "signed_gauges",
    "max_timestamp_age",
    "max_timestamp_ahead",
)
STATE_KEYS: Final = ("checkpoint_interval",)
HTTP_KEYS: Final = ("listen", "timeout", "max_connections", "allowed_hosts")


def processes_section(c: Checker, items: list[Node]) -> tuple[ProcessConfig, ...]:
    processes: list[ProcessConfig] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(items):
        p = c.section(item, f"processes[{index}]", line_of(item), PROCESS_KEYS)
        if p is None:
            continue
        name = c.string(p, "name", non_empty, nullable=False)
        if "name" not in p:
            c.missing(p, "name")
        elif name is not None and name in first_line:
            message = f"duplicate process name (first given on line {first_line[name]})"
            c.add(p.value_line("name"), p.dotted("name"), message)
        elif name is not None:
            first_line[name] = p.value_line("name")
        processes.append(
            ProcessConfig(
                name=or_default(name, ""),
                match=_match(c, p),
                interval=or_default(c.duration(p, "interval", positive), 1.0),
                children=c.boolean(p, "children", default=False),
            )
        )
    return tuple(processes)


def _match(c: Checker, p: Section) -> Mapping[str, str | int]:
    kinds = ", ".join(_MATCH_KEYS)
    m = c.section(p.node("match"), p.dotted("match"), p.key_line("match"), _MATCH_KEYS)
    given = [] if m is None else [kind for kind in _MATCH_KEYS if kind in m]
    if "match" not in p:
        c.missing(p, "match", f" (one of {kinds})")
    elif m is not None and len(given) != 1:
        got = f", got {', '.join(given)}" if given else ""
        c.add(
            p.key_line("match"), p.dotted("match"), f"needs exactly one of {kinds}{got}"
        )
    match: dict[str, str | int] = {}
    for kind in given:
        assert m is not None  # noqa: S101 (given is empty when m is None)
        value: str | int | None
        if kind == "pid":
            value = c.integer(m, kind, at_least(1))
        else:
            value = c.string(
                m, kind, regex if kind == "cmdline" else non_empty, nullable=False
            )
        if value is not None:
            match[kind] = value
    return MappingProxyType(match)


def control_section(c: Checker, s: Section) -> ControlConfig:
    uids: list[int] = []
    key = s.dotted("allow_uids")
    for index, item in enumerate(c.items(s.node("allow_uids"), key)):
        uid = c.typed(item, f"{key}[{index}]", "a uid (an integer)", is_int)
        if isinstance(uid, int) and uid < 0:
            c.add(line_of(item), f"{key}[{index}]", "must not be negative")
        elif isinstance(uid, int):
            uids.append(uid)
    groups = c.strings(s, "allow_groups", non_empty)
    d = ControlConfig()
    one = at_least(1)
    return ControlConfig(
        allow_uids=tuple(uids),
        allow_groups=groups,
        max_connections=or_default(
            c.integer(s, "max_connections", one), d.max_connections
        ),
        max_connections_per_uid=or_default(
            c.integer(s, "max_connections_per_uid", one), d.max_connections_per_uid
        ),
        max_request_bytes=or_default(
            c.integer(s, "max_request_bytes", at_least(1024)), d.max_request_bytes
        ),
        max_json_depth=or_default(
            c.integer(s, "max_json_depth", at_least(2)), d.max_json_depth
        ),
        send_timeout=or_default(
            c.duration(s, "send_timeout", positive), d.send_timeout
        ),
    )


def sockets_section(c: Checker, s: Section) -> SocketsConfig:
    access = or_default(
        c.choice(s, "metrics_access", MetricsAccess), MetricsAccess.PRIVATE
    )
    group = c.string(s, "group", non_empty)
    group_node = s.node("group")
    if access is MetricsAccess.GROUP and (group_node is None or is_null(group_node)):
        message = "group access needs sockets.group (the group that owns the sockets)"
        c.add(s.value_line("metrics_access"), s.dotted("metrics_access"), message)
    return SocketsConfig(metrics_access=access, group=group)


def ingest_section(c: Checker, s: Section) -> IngestConfig:
    d = IngestConfig()
    one = at_least(1)
    return IngestConfig(
        max_line_bytes=or_default(
            c.integer(s, "max_line_bytes", one), d.max_line_bytes
        ),
        max_tag_bytes=or_default(c.integer(s, "max_tag_bytes", one), d.max_tag_bytes),
        max_tags=or_default(c.integer(s, "max_tags", one), d.max_tags),
        max_connections=or_default(
            c.integer(s, "max_connections", one), d.max_connections
        ),
        max_connections_per_uid=or_default(
            c.integer(s, "max_connections_per_uid", one), d.max_connections_per_uid
        ),
        idle_timeout=or_default(
            c.duration(s, "idle_timeout", positive), d.idle_timeout
        ),
        max_datagram_bytes=or_default(
            c.integer(s, "max_datagram_bytes", one), d.max_datagram_bytes
        ),
        max_set_members=or_default(
            c.integer(s, "max_set_members", one), d.max_set_members
        ),
        max_set_bytes=or_default(c.integer(s, "max_set_bytes", one), d.max_set_bytes),
        signed_gauges=or_default(
            c.choice(s, "signed_gauges", SignedGauges), d.signed_gauges
        ),
        max_timestamp_age=or_default(
            c.duration(s, "max_timestamp_age", positive), d.max_timestamp_age
        ),
        max_timestamp_ahead=or_default(
            c.duration(s, "max_timestamp_ahead", non_negative), d.max_timestamp_ahead
        ),
    )


def state_section(c: Checker, s: Section) -> StateConfig:
    d = StateConfig()
    interval = c.duration(s, "checkpoint_interval", non_negative)
    return StateConfig(checkpoint_interval=or_default(interval, d.checkpoint_interval))


def http_section(c: Checker, s: Section) -> HttpConfig:
    listen = c.string(s, "listen", _listen_problem)
    d = HttpConfig()
    return HttpConfig(
        listen=None if listen is None else _split_listen(listen),
        timeout=or_default(c.duration(s, "timeout", positive), d.timeout),
        max_connections=or_default(
            c.integer(s, "max_connections", at_least(1)), d.max_connections
        ),
        allowed_hosts=c.strings(s, "allowed_hosts", non_empty),
    )


def _split_listen(value: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` as ``(host, port)``; ValueError if not."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        msg = 'write an IPv6 address in brackets, as "[::1]:9464"'
        raise ValueError(msg)
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        msg = f'must be "host:port" (port 0-65535), got {value!r}'
        raise ValueError(msg)
    return host, int(port)


def _listen_problem(value: str) -> str | None:
    try:
        _split_listen(value)
    except ValueError as exc:
        return str(exc)
    return None
