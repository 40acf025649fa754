"""The ``/metrics`` families of the limits (docs/limits.md): what was refused,
dropped or shed to keep the daemon bounded, beside the ingest counters.

A dozen samples read on the event loop at scrape time, from the counters the
limits keep (``status --json`` shows the same numbers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from perfwarden.views.exposition_text import Family, label_pairs

if TYPE_CHECKING:
    from perfwarden.readmodel import DaemonView

__all__ = ["limit_families"]


def _family(
    name: str, kind: Literal["gauge", "counter"], help_text: str, value: float
) -> Family:
    family = Family(name, kind, help_text)
    family.add("", value)
    return family


def limit_families(daemon: DaemonView) -> list[Family]:
    """Refusals, drops and shedding, all limits together."""
    ingest = daemon.ingestor.counters
    control = daemon.control_counters
    out = [
        _family(
            "perfwarden_ingest_idle_closed",
            "counter",
            "Stream connections closed after ingest.idle_timeout without a line.",
            ingest.connections_idle_closed,
        ),
        _family(
            "perfwarden_ingest_refused_per_uid",
            "counter",
            "Stream connections refused by ingest.max_connections_per_uid.",
            ingest.connections_refused_per_uid,
        ),
        _family(
            "perfwarden_set_members_overflow",
            "counter",
            "Set members not counted (ingest.max_set_members, max_set_bytes).",
            daemon.store.set_overflow,
        ),
        _family(
            "perfwarden_shedding_new_series",
            "gauge",
            "1 while memory is past statistics.max_memory_mb (new series shed).",
            1.0 if daemon.store.shedding else 0.0,
        ),
        _family(
            "perfwarden_control_open_connections",
            "gauge",
            "Open control.sock connections.",
            control.open,
        ),
        _family(
            "perfwarden_control_slow_readers",
            "counter",
            "Control clients dropped for leaving a reply unread (send_timeout).",
            control.slow_readers,
        ),
        _family(
            "perfwarden_fd_exhausted",
            "counter",
            "Accepts that failed for lack of file descriptors (EMFILE, ENFILE).",
            daemon.loop_errors.fd_exhausted,
        ),
    ]
    refused = Family(
        "perfwarden_control_refused_connections",
        "counter",
        "control.sock connections refused at once, by limit (total, per_uid).",
    )
    for reason in ("total", "per_uid"):
        refused.add(label_pairs([("reason", reason)]), control.refused.get(reason, 0))
    out.append(refused)
    if daemon.http is not None:
        http = Family(
            "perfwarden_http_refused",
            "counter",
            "HTTP requests refused or dropped, by reason.",
        )
        for reason, count in sorted(daemon.http.counters.items()):
            http.add(label_pairs([("reason", reason)]), count)
        out.append(http)
    return out
