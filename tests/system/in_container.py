"""The finisher of ``test_under_systemd.py``: runs *inside* the booted container.

Started by ``perfwarden-test-finisher.service`` (a oneshot after
``perfwarden.service``) as root with the container's own systemd as PID 1. It drives
the real unit through ``systemctl`` and the ``perfwarden`` CLI, one step at a time,
and writes ``results.json`` (rewritten after every step, so a timeout still leaves
what was done) plus the unit's journal and ``systemctl show`` into the results
directory bind-mounted from the host. The unit's ``ExecStopPost=`` powers the
container off afterwards, whatever happened here. Standard library only: it runs
with the interpreter the daemon uses, but imports nothing from perfwarden.

Usage (inside the container): ``python3 in_container.py RESULTS_DIR``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

UNIT = "perfwarden.service"
SOCKET_DIR = "/run/perfwarden"
PERFWARDEN = "/opt/perfwarden/bin/perfwarden"
CONFIG = Path("/etc/perfwarden/perfwarden.yaml")
#: A hard link to CONFIG outside the watched directory: writing through it changes
#: the file without an inotify event in /etc/perfwarden, so only ``systemctl
#: reload`` can apply the edit (the daemon's own watcher would otherwise beat it).
CONFIG_EDIT_LINK = Path("/etc/perfwarden-test/perfwarden.yaml")
METRIC = "context_loading_time"
SAMPLES = 50
WARNING_BEFORE = 150.0
WARNING_AFTER = 175.0
KNOB, KNOB_VALUE = "batch.size", 32.0
#: Matched by the ``other`` entry of ``processes:`` (cmdline ``^sleep 321$``).
OTHER_USER_COMMAND = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
OTHER_USER_ARGV = ["sleep", "321"]
#: The instrumented application: a oneshot service with its own RuntimeDirectory=.
APP_UNIT = "perfwarden-test-app.service"
APP_METRIC, APP_RUNTIME = "app_under_systemd", "perfwarden-test-app"
#: http.listen of the conf.d drop-in, allowed by the unit's http-loopback.conf.
METRICS_URL = "http://127.0.0.1:9464/metrics"
PROMETHEUS = "/usr/bin/prometheus"
PROMETHEUS_DIR = Path("/run/perfwarden-test-prometheus")
PROMETHEUS_URL = "http://127.0.0.1:9090"

T = TypeVar("T")


class StepFailedError(Exception):
    """A step's check did not hold; the message says which."""


def run(*argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, capturing stdout and stderr as text; never raises on status."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"},
    )


def show(prop: str) -> str:
    """One property of the unit, from ``systemctl show``."""
    return run("systemctl", "show", "-p", prop, "--value", UNIT).stdout.strip()


def main_pid() -> int:
    """The unit's MainPID (0 when it has none)."""
    value = show("MainPID")
    return int(value) if value.isdigit() else 0


def wait_until(
    probe: Callable[[], T | None], timeout: float, what: str, step: float = 0.2
) -> T:
    """Call ``probe`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            value, last_error = None, repr(exc)
        if value is not None and value is not False:
            return value
        time.sleep(step)
    raise StepFailedError(
        f"timed out after {timeout:g}s waiting for {what} {last_error}"
    )


def cli_json(*args: str) -> dict[str, Any]:
    """``perfwarden ARGS --json --socket-dir /run/perfwarden``, parsed."""
    result = run(PERFWARDEN, *args, "--json", "--socket-dir", SOCKET_DIR)
    if result.returncode != 0:
        message = f"perfwarden {' '.join(args)}: {result.returncode} {result.stderr}"
        raise StepFailedError(message)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def series(metric: str, **tags: str) -> dict[str, Any] | None:
    """The ``perfwarden stats`` record of ``metric`` whose tags include ``tags``."""
    for record in cli_json("stats")["series"]:
        if record["metric"] == metric and tags.items() <= record["tags"].items():
            found: dict[str, Any] = record
            return found
    return None


def uid_of(pid: int) -> int:
    """The real uid of ``pid``, from ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise StepFailedError(f"no Uid: line for pid {pid}")


def wait_active(timeout: float = 30.0) -> int:
    """Wait until the unit is active with a MainPID; return that pid."""

    def probe() -> int | None:
        if run("systemctl", "is-active", UNIT).stdout.strip() != "active":
            return None
        return main_pid() or None

    return wait_until(probe, timeout, f"{UNIT} active")


def journal() -> str:
    """The unit's journal of this boot, messages only."""
    return run("journalctl", "-b", "-u", UNIT, "-o", "cat", "--no-pager").stdout


def check(condition: bool, message: str) -> None:
    """Raise :class:`StepFailedError` with ``message`` unless ``condition``."""
    if not condition:
        raise StepFailedError(message)


# -- the steps --------------------------------------------------------------------


def step_active(detail: dict[str, Any]) -> None:
    """The unit reaches ``active`` (Type=notify: READY=1), as the perfwarden user."""
    pid = wait_active()
    detail["main_pid"] = pid
    detail["uid"] = uid_of(pid)
    detail["perfwarden_uid"] = pwd.getpwnam("perfwarden").pw_uid
    for prop in ("Type", "NotifyAccess", "WatchdogUSec", "StatusText", "SubState"):
        detail[prop] = show(prop)
    check(detail["uid"] == detail["perfwarden_uid"], "not running as perfwarden")
    check(detail["uid"] != 0, "running as root")
    check(detail["Type"] == "notify", "Type is not notify")
    check(bool(detail["StatusText"]), "no STATUS= text from sd_notify")


def step_metrics(detail: dict[str, Any]) -> None:
    """Metrics sent over /run/perfwarden/metrics.sock are counted by ``stats``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(f"{SOCKET_DIR}/metrics.sock")
        for _ in range(SAMPLES):
            sock.send(f"{METRIC}:120|ms".encode())

    def probe() -> dict[str, Any] | None:
        record = series(METRIC)
        return record if record and record["sample_size"] >= SAMPLES else None

    record = wait_until(probe, 10, f"{SAMPLES} samples of {METRIC}")
    detail["sample_size"] = record["sample_size"]
    detail["warning"] = record["warning"]
    check(record["sample_size"] == SAMPLES, f"expected {SAMPLES} samples")
    check(record["warning"] == WARNING_BEFORE, "unexpected initial warning level")


def json_lines(text: str) -> list[dict[str, Any]]:
    """The daemon's lines of a journal excerpt (systemd's own lines about the unit,
    "Started ...", are not JSON)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def step_journal(detail: dict[str, Any]) -> None:
    """Lines reach journald at their own priority: ``journalctl -p warning`` shows
    the warning (a malformed line) and not the info lines, still one JSON each."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(f"{SOCKET_DIR}/metrics.sock")
        sock.send(b"this is not a statsd line")

    def warnings() -> list[dict[str, Any]] | None:
        text = run(
            "journalctl", "-b", "-u", UNIT, "-p", "warning", "-o", "cat", "--no-pager"
        ).stdout
        lines = json_lines(text)
        found = [line["event"] for line in lines]
        return lines if "ingest.malformed" in found else None

    lines = wait_until(warnings, 15, "ingest.malformed at priority warning")
    detail["warning_events"] = sorted({line["event"] for line in lines})
    detail["warning_levels"] = sorted({line["level"] for line in lines})
    everything = json_lines(journal())
    detail["all_events"] = len(everything)
    info = {line["event"] for line in everything if line["level"] == "info"}
    check("daemon.started" in info, "no daemon.started in the journal")
    check(
        set(detail["warning_levels"]) <= {"warning", "error", "critical"},
        "journalctl -p warning shows lines below warning",
    )
    check(not info & set(detail["warning_events"]), "info events at warning priority")


def step_app(detail: dict[str, Any]) -> None:
    """An instrumented app that is a systemd service with its own RuntimeDirectory=
    (so $RUNTIME_DIRECTORY is *its* directory) finds /run/perfwarden, as user nobody
    in group perfwarden."""
    result = run("systemctl", "start", APP_UNIT)
    detail["start_status"] = result.returncode
    detail["start_stderr"] = result.stderr
    detail["app_output"] = run(
        "journalctl", "-b", "-u", APP_UNIT, "-o", "cat", "--no-pager"
    ).stdout[-2000:]
    record = wait_until(lambda: series(APP_METRIC), 10, f"{APP_METRIC} from the app")
    detail["tags"], detail["last"] = record["tags"], record["last"]
    check(result.returncode == 0, f"{APP_UNIT} failed: {detail['app_output']}")
    check(record["tags"].get("runtime") == APP_RUNTIME, "not the app's own directory")
    check(record["last"] == 42.0, "wrong value")


def http_get(url: str) -> str:
    """The body of a loopback GET."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


def prometheus_query(promql: str) -> list[dict[str, Any]] | None:
    """A Prometheus instant query's result, or None while it has none."""
    url = f"{PROMETHEUS_URL}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    result: list[dict[str, Any]] = json.loads(http_get(url))["data"]["result"]
    return result or None


def step_http(detail: dict[str, Any], children: list[subprocess.Popen[str]]) -> None:
    """With systemd/perfwarden.service.d/http-loopback.conf the hardened unit serves
    /metrics on loopback, and a real Prometheus scrapes it."""
    body = wait_until(lambda: http_get(METRICS_URL), 15, "/metrics to answer")
    detail["metrics_lines"] = len(body.splitlines())
    PROMETHEUS_DIR.mkdir(parents=True, exist_ok=True)
    config = PROMETHEUS_DIR / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: perfwarden\n"
        "    static_configs: [{targets: ['127.0.0.1:9464']}]\n"
    )
    log = (PROMETHEUS_DIR / "prometheus.log").open("w")
    children.append(
        subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={PROMETHEUS_DIR / 'data'}",
                "--web.listen-address=127.0.0.1:9090",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    up = wait_until(
        lambda: prometheus_query('up{job="perfwarden"} == 1'), 60, "up == 1"
    )
    detail["instance"] = up[0]["metric"]["instance"]
    scraped = wait_until(
        lambda: prometheus_query('scrape_samples_scraped{job="perfwarden"} > 0'),
        30,
        "samples scraped",
    )
    detail["samples_scraped"] = float(scraped[0]["value"][1])
    detail["bind_failed"] = journal().count('"http.bind_failed"')
    check(detail["bind_failed"] == 0, "http.bind_failed in the journal")


def step_reload(detail: dict[str, Any]) -> None:
    """An edited threshold is applied by ``systemctl reload``, in the same process."""
    pid = main_pid()
    text = CONFIG.read_text()
    edited = text.replace(f"warning: {WARNING_BEFORE:g}", f"warning: {WARNING_AFTER:g}")
    check(edited != text, "the config has no warning level to edit")
    # Rewrite in place through the link outside the watched directory.
    with CONFIG_EDIT_LINK.open("r+") as handle:
        handle.truncate(0)
        handle.write(edited)
    check(CONFIG.read_text() == edited, "the hard link does not share the file")
    time.sleep(1.5)  # well past the watcher's 200 ms debounce and 1 s re-arm check
    record = series(METRIC)
    detail["warning_before_reload"] = record["warning"] if record else None
    result = run("systemctl", "reload", UNIT)
    detail["reload_status"] = result.returncode
    detail["reload_stderr"] = result.stderr

    def probe() -> float | None:
        record = series(METRIC)
        if record and record["warning"] == WARNING_AFTER:
            return float(record["warning"])
        return None

    detail["warning_after_reload"] = wait_until(probe, 10, "the new warning level")
    detail["pid_before"], detail["pid_after"] = pid, main_pid()
    detail["config_reloaded_events"] = journal().count('"config.reloaded"')
    check(
        detail["warning_before_reload"] == WARNING_BEFORE,
        "the edit was applied before systemctl reload (the watcher saw it)",
    )
    check(result.returncode == 0, "systemctl reload failed")
    check(pid == detail["pid_after"], "the reload restarted the process")
    check(detail["config_reloaded_events"] >= 1, "no config.reloaded in the journal")


def step_other_user(
    detail: dict[str, Any], children: list[subprocess.Popen[str]]
) -> None:
    """psutil in the hardened unit samples a process of another user (nobody)."""
    child = subprocess.Popen([*OTHER_USER_COMMAND, *OTHER_USER_ARGV], text=True)
    children.append(child)
    detail["pid"] = child.pid
    detail["uid"] = wait_until(lambda: uid_of(child.pid) or None, 5, "setpriv to exec")
    detail["nobody_uid"] = pwd.getpwnam("nobody").pw_uid

    def probe() -> dict[str, Any] | None:
        return series("memory_usage_mb", process="other", pid=str(child.pid))

    record = wait_until(probe, 15, "memory_usage_mb of the other user's process")
    detail["memory_usage_mb"] = record["mean"]
    detail["samples"] = record["sample_size"]
    check(detail["uid"] == detail["nobody_uid"], "the process is not nobody's")
    check(record["sample_size"] >= 1 and record["mean"] > 0, "no rss read")


def step_restart(detail: dict[str, Any]) -> None:
    """A knob set by hand and the metric windows survive ``systemctl restart``."""
    set_result = cli_json("knobs", "set", KNOB, f"{KNOB_VALUE:g}")
    detail["knob_set"] = set_result["value"]
    before = series(METRIC)
    detail["samples_before"] = before["sample_size"] if before else None
    pid = main_pid()
    result = run("systemctl", "restart", UNIT)
    detail["restart_status"] = result.returncode
    new_pid = wait_active()
    detail["pid_before"], detail["pid_after"] = pid, new_pid
    knobs = cli_json("knobs")["knobs"]
    detail["knob_after"] = knobs[KNOB]["value"]
    after = wait_until(lambda: series(METRIC), 10, f"{METRIC} after the restart")
    detail["samples_after"] = after["sample_size"]
    detail["warning_after"] = after["warning"]
    check(result.returncode == 0, "systemctl restart failed")
    check(new_pid != pid, "the process was not replaced")
    check(detail["knob_after"] == KNOB_VALUE, "the knob value was lost")
    check(detail["samples_after"] == SAMPLES, "the samples were lost")
    check(detail["warning_after"] == WARNING_AFTER, "the edited config was lost")


def step_watchdog(detail: dict[str, Any]) -> None:
    """A stopped daemon stops pinging: systemd kills it and ``Restart=`` revives it.

    SIGSTOP freezes the whole process (event loop and all threads), which is how a
    wedged loop looks to systemd: no ``WATCHDOG=1``. (A busy loop in the evaluator
    cannot be induced from outside without a debug hook in the daemon.)
    """
    pid = main_pid()
    restarts = int(show("NRestarts") or 0)
    detail["watchdog_usec"] = show("WatchdogUSec")
    started = time.monotonic()
    os.kill(pid, signal.SIGSTOP)

    def probe() -> int | None:
        new = main_pid()
        if new in (0, pid):
            return None
        active = run("systemctl", "is-active", UNIT).stdout.strip() == "active"
        return new if active else None

    new_pid = wait_until(probe, 60, "a new MainPID after the watchdog", step=0.5)
    detail["seconds_to_new_pid"] = round(time.monotonic() - started, 1)
    detail["pid_before"], detail["pid_after"] = pid, new_pid
    detail["restarts_before"] = restarts
    detail["restarts_after"] = int(show("NRestarts") or 0)
    log = run("journalctl", "-b", "-u", UNIT, "--no-pager", "-o", "short-monotonic")
    detail["watchdog_lines"] = [
        line for line in log.stdout.splitlines() if "atchdog" in line or "abort" in line
    ]
    detail["old_pid_gone"] = not Path(f"/proc/{pid}").exists()
    check(detail["restarts_after"] == restarts + 1, "NRestarts did not go up by one")
    check(
        any("Watchdog timeout" in line for line in detail["watchdog_lines"]),
        "no 'Watchdog timeout' in the journal",
    )
    check(
        any("result 'watchdog'" in line for line in detail["watchdog_lines"]),
        "the unit did not fail with result 'watchdog'",
    )
    check(detail["old_pid_gone"], "the stopped process is still there")


# -- driver -----------------------------------------------------------------------


def main(results_dir: Path) -> int:
    """Run every step, recording each; write the results; return 0."""
    results: dict[str, Any] = {"steps": {}, "started": time.time()}
    out = results_dir / "results.json"
    children: list[subprocess.Popen[str]] = []
    steps: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("active", step_active),
        ("metrics", step_metrics),
        ("journal", step_journal),
        ("app", step_app),
        ("http", lambda detail: step_http(detail, children)),
        ("reload", step_reload),
        ("other_user", lambda detail: step_other_user(detail, children)),
        ("restart", step_restart),
        ("watchdog", step_watchdog),
    ]
    try:
        for name, function in steps:
            detail: dict[str, Any] = {}
            started = time.monotonic()
            try:
                function(detail)
            except Exception as exc:  # noqa: BLE001 - recorded for the host to report
                detail["error"] = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, StepFailedError):
                    detail["traceback"] = traceback.format_exc()
            detail["ok"] = "error" not in detail
            detail["seconds"] = round(time.monotonic() - started, 2)
            results["steps"][name] = detail
            out.write_text(json.dumps(results, indent=2))
    finally:
        for child in children:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                child.kill()
                child.wait(5)
        results["finished"] = time.time()
        out.write_text(json.dumps(results, indent=2))
        (results_dir / "journal.txt").write_text(journal())
        with contextlib.suppress(OSError):
            (results_dir / "prometheus.log").write_text(
                (PROMETHEUS_DIR / "prometheus.log").read_text()
            )
        (results_dir / "show.txt").write_text(run("systemctl", "show", UNIT).stdout)
        (results_dir / "boot-journal.txt").write_text(
            run("journalctl", "-b", "--no-pager", "-o", "short-monotonic").stdout
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
