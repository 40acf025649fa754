"""``perfwarden status``: uptime, config, ingest counters, series, memory, plugins."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from perfwarden.commands._common import control_path, print_json
from perfwarden.control.channel import request

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def _reload_line(last: dict[str, Any] | None) -> str | None:
    """The last reload in a line: rejected (the first error) or applied."""
    if not last:
        return None
    at = time.strftime("%H:%M:%S", time.localtime(last["at"]))
    if not last["ok"]:
        errors = last.get("errors") or []
        first = f": {errors[0]}" if errors else ""
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"last reload at {at} REJECTED, old config in force{first}{more}"
    restored = " (the config in force restored)" if last.get("restored") else ""
    changes = len(last.get("changes") or [])
    return f"last reload at {at} ok, {changes} change(s){restored}"


def run(args: argparse.Namespace) -> int:
    """Ask the daemon for its status and print it."""
    data: dict[str, Any] = request(control_path(args.socket_dir), "status")
    if args.json:
        print_json(data)
        return 0
    ingest = data["ingest"]
    config = data["config"]
    print(
        f"perfwarden {data['version']}  pid {data['pid']}  "
        f"up {data['uptime_seconds']:.0f}s"
    )
    print(f"config     {config['path']}  sha256 {config['sha256'][:12]}")
    reload_line = _reload_line(config.get("last_reload"))
    if reload_line:
        print(f"reload     {reload_line}")
    print(f"sockets    {data['socket_dir']}")
    print(f"state      {data['state_dir']}")
    state = data.get("state") or {}
    if state.get("disabled"):
        print(f"           not saving: {state['disabled']}")
    shedding = "  (past the ceiling: new series shed)"
    print(
        f"memory     {data['memory']['rss_mb']} MB RSS"
        f"{shedding if data.get('shedding_new_series') else ''}"
    )
    print(f"series     {data['series']}  expired {data.get('series_expired', 0)}")
    print(
        f"ingest     received {ingest['received']}  accepted {ingest['accepted']}  "
        f"malformed {ingest['malformed']}  ignored {ingest['ignored']}  "
        f"dropped {ingest['dropped']}"
    )
    for reason, count in ingest["malformed_by_reason"].items():
        print(f"           malformed {reason}: {count}")
    for reason, count in ingest["dropped_by_reason"].items():
        print(f"           dropped {reason}: {count}")
    _print_limits(data)
    log = data.get("log") or {}
    if log:
        print(
            f"log        written {log['written']}  dropped {log['dropped']}  "
            f"queued {log['queued']}/{log['max_queued']}  output {log['output']}"
        )
        for reason, count in log["dropped_by_reason"].items():
            if count:
                print(f"           dropped {reason}: {count}")
    recording = data.get("recording") or {}
    if recording.get("enabled"):
        print(
            f"recording  {recording['segments']} segments  "
            f"{recording['bytes'] / 2**20:.1f} MB  written "
            f"{recording['samples_written']}  dropped {recording['dropped']}"
        )
    elif recording:
        print("recording  off")
    plugins = data.get("plugins") or []
    states = Counter(str(p.get("state")) for p in plugins)
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    print(f"plugins    {f'{len(plugins)} ({by_state})' if plugins else 'none loaded'}")
    return 0


def _print_limits(data: dict[str, Any]) -> None:
    """The limits' refusals and drops, on lines that appear once there are any."""
    connections = data["ingest"].get("connections") or {}
    closed = connections.get("idle_closed", 0)
    if connections.get("refused") or closed:
        print(
            f"streams    open {connections.get('open', 0)}  refused "
            f"{connections['refused']} (per uid "
            f"{connections.get('refused_per_uid', 0)})  idle closed {closed}"
        )
    control = data.get("control") or {}
    if (
        control.get("refused")
        or control.get("slow_readers")
        or control.get("too_large")
    ):
        print(
            f"control    open {control['open']}  refused {control['refused']}  "
            f"slow readers {control['slow_readers']}  too large {control['too_large']}"
        )
    http = data.get("http") or {}
    if any(http.values()):
        shown = "  ".join(f"{name} {count}" for name, count in sorted(http.items()))
        print(f"http       {shown}")
    overflow = data.get("set_members_overflow", 0)
    if overflow:
        print(f"sets       members not counted {overflow}")
    exhausted = (data.get("loop_errors") or {}).get("fd_exhausted", 0)
    if exhausted:
        print(f"fds        exhausted {exhausted} times (accepts paused)")
