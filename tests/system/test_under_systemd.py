"""systemd/perfwarden.service under a real systemd (252) booted in systemd-nspawn.

One end-to-end test. The container's root is an overlay of this machine's own ``/``
(lower) with a private tmpfs holding the upper and work directories (overlayfs refuses
an upper directory inside its lower tree, and ``/tmp`` may be on ``/``), so nothing
the container writes reaches the host. The upper layer gets:

* a fresh ``/etc/machine-id``, and every unit enabled on the host masked;
* the shipped unit *unchanged* in ``/etc/systemd/system`` (``ExecStart=
  /opt/perfwarden/bin/perfwarden run``), the sysusers snippet in ``/etc/sysusers.d``
  (``systemd-sysusers`` creates the user at boot) and a test config in
  ``/etc/perfwarden``, hard-linked from ``/etc/perfwarden-test`` (see
  ``in_container.py``);
* ``/opt/perfwarden``, a venv skeleton over *this* test environment: its
  ``site-packages`` and base interpreter are bind-mounted read-only (under
  ``/opt``, because the unit's ``ProtectHome=``/``PrivateTmp=`` hide ``/root``,
  ``/home`` and ``/tmp``, where pyenv interpreters and test venvs usually live),
  plus a drop-in that only sets ``LD_LIBRARY_PATH`` when that interpreter links a
  shared ``libpython`` through an absolute RUNPATH;
* ``perfwarden-test.target`` (booted with ``systemd.unit=``): ``basic.target`` plus
  a oneshot finisher running ``in_container.py``, which checks that the service
  reaches ``active``, that ``journalctl -p warning`` shows the daemon's warnings and
  not its info lines, that an instrumented application run as a service of its own
  (``perfwarden-test-app.service``: user ``nobody``, ``RuntimeDirectory=``) reaches
  ``/run/perfwarden``, that with ``systemd/perfwarden.service.d/http-loopback.conf``
  and ``http.listen`` from ``/etc/perfwarden/conf.d/`` a real Prometheus scrapes
  ``/metrics``, that ``systemctl reload`` applies an edited threshold, that a
  stopped (SIGSTOP) daemon is killed by the watchdog and restarted, that a knob and
  the metric windows survive ``systemctl restart``, and that psutil sees a process
  of user ``nobody``; it writes ``results.json`` to a bind-mounted directory and
  powers the container off.

The container is not registered with machined (``--register=no --keep-unit``: the
host need not run systemd) and has a private network. Every mount is undone in a
``finally``; the test checks afterwards that none is left. Skipped, with the reason,
unless root, ``systemd-nspawn`` (Debian: ``apt-get install -y systemd-container``),
systemd and ``setpriv`` are present and an overlay of ``/`` can be mounted. Takes
about a minute, mostly the unit's own ``WatchdogSec=30s``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import perfwarden
import perfwarden_optimizers

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "perfwarden.service"
SYSUSERS = ROOT / "systemd" / "perfwarden.sysusers.conf"
FINISHER_SCRIPT = Path(__file__).with_name("in_container.py")

NSPAWN = shutil.which("systemd-nspawn")
SYSTEMD = Path("/usr/lib/systemd/systemd")
#: Whole boot: the finisher's steps take ~45 s, the watchdog wait most of it.
BOOT_TIMEOUT = 150
#: Paths the unit hides from the daemon (ProtectHome=yes, PrivateTmp=yes).
HIDDEN_FROM_UNIT = ("/home", "/root", "/run/user", "/tmp", "/var/tmp")
#: Where the interpreter and the venv appear in the container.
PYTHON_IN = Path("/opt/perfwarden-python")
VENV_IN = Path("/opt/perfwarden")
RESULTS_IN = Path("/perfwarden-test-results")
SCRIPT_IN = Path("/usr/local/lib/perfwarden-test/in_container.py")
#: Files the boot changes inside the container (sysusers, machine-id) but must not
#: change on the host.
HOST_FILES = [Path("/etc/passwd"), Path("/etc/group"), Path("/etc/machine-id")]
HOST_HAS_STATE = Path("/var/lib/perfwarden/state.db").exists()
STEPS = (
    "active", "metrics", "journal", "app", "http", "reload", "other_user",
    "restart", "watchdog",
)  # fmt: skip
HTTP_DROP_IN = ROOT / "systemd" / "perfwarden.service.d" / "http-loopback.conf"
APP_SCRIPT_IN = Path("/usr/local/lib/perfwarden-test/app.py")

CONFIG = """\
version: 1
statistics:
  window: 1000
  min_samples: 30
evaluation:
  interval: 1s
metrics:
  context_loading_time:
    unit: ms
    bound: upper
    target: 100
    warning: 150
    critical: 200
knobs:
  batch.size: {min: 1, max: 256, initial: 16}
processes:
  - name: other
    match: {cmdline: "^sleep 321$"}
    interval: 1s
state:
  checkpoint_interval: 2s
sockets:
  metrics_access: group
  group: perfwarden
"""

#: In /etc/perfwarden/conf.d/: the drop-in directory beside the system config.
HTTP_CONFIG = """http:
  listen: "127.0.0.1:9464"
"""

#: The instrumented application: discovery must not take its own RuntimeDirectory=.
APP = """import os, sys
from perfwarden import client
runtime = os.environ.get("RUNTIME_DIRECTORY", "")
client.gauge("app_under_systemd", 42.0, tags={"runtime": os.path.basename(runtime)})
client.get_client().flush(timeout=10.0)
print(f"RUNTIME_DIRECTORY={runtime} sent={client.sent} dropped={client.dropped}")
sys.exit(0 if runtime and client.sent == 1 and client.dropped == 0 else 1)
"""

APP_UNIT = """[Unit]
Description=perfwarden system test: an application with its own RuntimeDirectory=
After=perfwarden.service

[Service]
Type=oneshot
User=nobody
Group=nogroup
SupplementaryGroups=perfwarden
RuntimeDirectory=perfwarden-test-app
StateDirectory=perfwarden-test-app
{environment}ExecStart={python} {script}
"""

TARGET = """\
[Unit]
Description=perfwarden system test
Requires=basic.target
Wants=perfwarden-test-finisher.service
After=basic.target
AllowIsolate=yes
"""

FINISHER = """\
[Unit]
Description=perfwarden system test: drive perfwarden.service, record, power off
Wants=perfwarden.service
After=basic.target perfwarden.service

[Service]
Type=oneshot
{environment}ExecStart={python} {script} {results}
ExecStopPost=/bin/systemctl --no-block poweroff
TimeoutStartSec={timeout}
StandardOutput=journal+console
StandardError=journal+console
"""


def _unavailable() -> str | None:
    """Why the test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (overlay mounts and systemd-nspawn)"
    if NSPAWN is None:
        return "systemd-nspawn not installed (apt-get install -y systemd-container)"
    if not SYSTEMD.is_file():
        return f"no systemd at {SYSTEMD} to boot (apt-get install -y systemd)"
    if shutil.which("setpriv") is None:
        return "setpriv not installed (util-linux)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(BOOT_TIMEOUT + 60),
    pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable())),
]


def run(*argv: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with output captured; never raises on status."""
    return subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def is_hidden(path: Path) -> bool:
    """True when the unit's sandbox hides ``path`` from the daemon."""
    return any(path.is_relative_to(prefix) for prefix in HIDDEN_FROM_UNIT)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (from ``/proc/self/mountinfo``)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if Path(point).is_relative_to(path):
            found.append(point)
    return found


@dataclass(frozen=True)
class Layout:
    """The host-side directories of one container."""

    base: Path
    upper: Path
    merged: Path
    results: Path
    machine: str


@pytest.fixture(name="overlay")
def _overlay(tmp_path: Path) -> Iterator[Layout]:
    """An overlay of ``/`` on a private tmpfs; unmounted (and checked) afterwards."""
    layers, merged = tmp_path / "layers", tmp_path / "merged"
    results = tmp_path / "results"
    for directory in (layers, merged, results):
        directory.mkdir()
    machine = f"perfwarden-test-{os.getpid()}"
    propagate = Path("/run/systemd/nspawn/propagate") / machine
    nspawn_dirs = [Path("/run/systemd/nspawn"), propagate.parent]
    existed = {d for d in nspawn_dirs if d.exists()}
    mounted: list[Path] = []
    try:
        result = run("mount", "-t", "tmpfs", "-o", "mode=0755", "pw-layers", layers)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
        mounted.append(layers)
        upper, work = layers / "upper", layers / "work"
        upper.mkdir()
        work.mkdir()
        options = f"lowerdir=/,upperdir={upper},workdir={work}"
        result = run("mount", "-t", "overlay", "-o", options, "pw-root", merged)
        if result.returncode != 0:
            pytest.skip(f"overlayfs over / does not mount: {result.stderr.strip()}")
        mounted.append(merged)
        yield Layout(tmp_path, upper, merged, results, machine)
    finally:
        for point in reversed(mounted):
            if run("umount", point).returncode != 0:
                run("umount", "--lazy", point)
        # nspawn leaves its (empty) propagation directory behind on a /run that is
        # not a tmpfs; remove it and the parents it created.
        with contextlib.suppress(OSError):
            propagate.rmdir()
        for directory in reversed(nspawn_dirs):
            if directory not in existed:
                with contextlib.suppress(OSError):
                    (directory / "locks").rmdir()
                with contextlib.suppress(OSError):
                    directory.rmdir()
    assert mounts_under(tmp_path) == [], "mounts left behind"
    assert not propagate.exists()


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    """Create ``path`` (and its parents) with ``text`` and ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def mask_enabled_units(upper: Path) -> list[str]:
    """Mask (in the upper layer) every unit the host enables in /etc/systemd/system."""
    masked = []
    for link in sorted(Path("/etc/systemd/system").glob("*.*/*")):
        if link.parent.suffix in (".wants", ".requires") and link.name != "perfwarden":
            target = upper / "etc/systemd/system" / link.name
            if not target.is_symlink():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to("/dev/null")
                masked.append(link.name)
    return masked


def install_interpreter(upper: Path) -> tuple[list[str], dict[str, str]]:
    """A venv skeleton at /opt/perfwarden over this interpreter and site-packages.

    Returns the nspawn bind options and the environment the unit needs."""
    base = Path(sys.base_prefix).resolve()
    real = Path(sys.executable).resolve()
    assert real.is_relative_to(base), f"{real} is not inside {base}"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    venv = upper / VENV_IN.relative_to("/")
    site_in = VENV_IN / "lib" / f"python{version}" / "site-packages"
    binds = [f"--bind-ro={base}:{PYTHON_IN}"]
    in_venv = sys.prefix != sys.base_prefix
    if in_venv:
        purelib = Path(sysconfig.get_path("purelib"))
        assert purelib == Path(sysconfig.get_path("platlib")), "split site-packages"
        (upper / site_in.relative_to("/")).mkdir(parents=True)
        binds.append(f"--bind-ro={purelib}:{site_in}")
    (upper / PYTHON_IN.relative_to("/")).mkdir(parents=True)
    write(
        venv / "pyvenv.cfg",
        f"home = {PYTHON_IN / 'bin'}\n"
        f"include-system-site-packages = {'false' if in_venv else 'true'}\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n",
    )
    (venv / "bin").mkdir()
    (venv / "bin" / "python3").symlink_to(PYTHON_IN / real.relative_to(base))
    (venv / "bin" / "python").symlink_to("python3")
    write(
        venv / "bin" / "perfwarden",
        f"#!{VENV_IN}/bin/python3\n"
        "import sys\nfrom perfwarden.cli import main\nsys.exit(main())\n",
        0o755,
    )
    # The sources of an editable install must be visible at the same path.
    for package in (perfwarden, perfwarden_optimizers):
        source = Path(package.__file__ or "").resolve().parent.parent
        if in_venv and source.is_relative_to(Path(sys.prefix).resolve()):
            continue
        if is_hidden(source):
            pytest.skip(f"{package.__name__} lives in {source}, hidden from the unit")
        binds.append(f"--bind-ro={source}")
    environment = {}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        environment["LD_LIBRARY_PATH"] = str(PYTHON_IN / "lib")
    return binds, environment


def install(layout: Layout) -> list[str]:
    """Populate the upper layer; return the nspawn bind options."""
    upper = layout.upper
    write(upper / "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    mask_enabled_units(upper)
    binds, environment = install_interpreter(upper)
    units = upper / "etc/systemd/system"
    shutil.copyfile(UNIT, units / "perfwarden.service")
    env_lines = "".join(f"Environment={k}={v}\n" for k, v in environment.items())
    if env_lines:
        write(
            units / "perfwarden.service.d/50-test-interpreter.conf",
            "# The test's interpreter, relocated under /opt (ProtectHome= hides it).\n"
            f"[Service]\n{env_lines}",
        )
    write(units / "perfwarden.service.d/http-loopback.conf", HTTP_DROP_IN.read_text())
    write(upper / "etc/sysusers.d/perfwarden.conf", SYSUSERS.read_text())
    config = write(upper / "etc/perfwarden/perfwarden.yaml", CONFIG)
    write(upper / "etc/perfwarden/conf.d/50-http.yaml", HTTP_CONFIG)
    write(upper / APP_SCRIPT_IN.relative_to("/"), APP)
    write(
        units / "perfwarden-test-app.service",
        APP_UNIT.format(
            environment=env_lines,
            python=VENV_IN / "bin" / "python3",
            script=APP_SCRIPT_IN,
        ),
    )
    edit_link = upper / "etc/perfwarden-test/perfwarden.yaml"
    edit_link.parent.mkdir(parents=True)
    edit_link.hardlink_to(config)
    write(upper / SCRIPT_IN.relative_to("/"), FINISHER_SCRIPT.read_text(), 0o755)
    write(units / "perfwarden-test.target", TARGET)
    write(
        units / "perfwarden-test-finisher.service",
        FINISHER.format(
            environment=env_lines,
            python=VENV_IN / "bin" / "python3",
            script=SCRIPT_IN,
            results=RESULTS_IN,
            timeout=BOOT_TIMEOUT - 20,
        ),
    )
    return [*binds, f"--bind={layout.results}:{RESULTS_IN}"]


def boot(layout: Layout, binds: list[str]) -> tuple[int, str]:
    """Boot the container to perfwarden-test.target; return (status, console)."""
    assert NSPAWN is not None
    argv = [
        "timeout",
        "--kill-after=10",
        str(BOOT_TIMEOUT),
        NSPAWN,
        "--quiet",
        f"--directory={layout.merged}",
        f"--machine={layout.machine}",
        "--register=no",
        "--keep-unit",
        "--private-network",
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
        "--console=pipe",
        *binds,
        "--boot",
        "systemd.unit=perfwarden-test.target",
        "systemd.log_color=0",
        "systemd.show_status=yes",
    ]
    result = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=BOOT_TIMEOUT + 30,
        check=False,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    return result.returncode, result.stdout


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of ``path``, or a note that it is missing."""
    if not path.is_file():
        return f"({path.name} missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def test_perfwarden_under_systemd(overlay: Layout) -> None:
    """Active, reload, watchdog restart, state across restart, psutil: one boot."""
    binds = install(overlay)
    host_files = {path: path.read_bytes() for path in HOST_FILES}
    status, console = boot(overlay, binds)
    assert {path: path.read_bytes() for path in HOST_FILES} == host_files
    assert not Path("/var/lib/perfwarden/state.db").exists() or HOST_HAS_STATE
    (overlay.base / "console.log").write_text(console)
    results_file = overlay.results / "results.json"
    context = (
        f"nspawn exit {status}; console:\n{console[-6000:]}\n"
        f"--- perfwarden journal:\n{tail(overlay.results / 'journal.txt')}"
    )
    assert results_file.is_file(), f"no results.json. {context}"
    results: dict[str, Any] = json.loads(results_file.read_text())
    steps: dict[str, dict[str, Any]] = results["steps"]
    failed = {name: detail for name, detail in steps.items() if not detail["ok"]}
    assert failed == {}, f"{json.dumps(failed, indent=2)}\n{context}"
    assert tuple(steps) == STEPS, f"steps missing: {context}"
    assert "finished" in results, f"the finisher did not finish: {context}"
    assert status == 0, f"the container did not power off cleanly: {context}"

    # The numbers behind the verdicts, for a reader of a failure report.
    reload, watchdog = steps["reload"], steps["watchdog"]
    assert (reload["warning_before_reload"], reload["warning_after_reload"]) == (
        150.0,
        175.0,
    )
    assert watchdog["watchdog_usec"] == "30s"
    # Pings every 15 s: the kill comes 15 to 30 s after the stop, then RestartSec=2s.
    assert 10 <= watchdog["seconds_to_new_pid"] <= 45, watchdog
    other = steps["other_user"]
    assert other["uid"] == other["nobody_uid"] != steps["active"]["uid"]
    assert re.fullmatch(
        r"\d+ series, \d+ lines accepted", steps["active"]["StatusText"]
    )
