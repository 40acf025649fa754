"""systemd/perfwarden.service: verifies without a single warning, scores <= 1.0.

``systemd-analyze verify`` exits 0 on a misspelt key and only warns, so any output at
all is a failure (a negative control proves the check catches ``ProtectSytem=``).
``systemd-analyze security --offline=yes`` scores the hardening; the shipped unit must
stay at or below 1.0.  Needs ``systemd-analyze`` (Debian: ``apt-get install -y
systemd``); skipped with that reason when it is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "perfwarden.service"
SYSUSERS = ROOT / "systemd" / "perfwarden.sysusers.conf"
HTTP_DROP_IN = ROOT / "systemd" / "perfwarden.service.d" / "http-loopback.conf"
MAX_EXPOSURE = 1.0
#: With the loopback /metrics drop-in: the host network namespace and IP sockets.
MAX_EXPOSURE_WITH_HTTP = 1.5
ENV = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C.UTF-8"}

ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze not installed (Debian: apt-get install -y systemd)",
)


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``systemd-analyze ARGS`` with stdout and stderr merged."""
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "--no-pager", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        timeout=120,
        check=False,
    )


def install_unit(directory: Path, text: str | None = None) -> Path:
    """The unit as ``perfwarden.service`` in ``directory``, ExecStart= pointing at
    this environment's real ``perfwarden`` (verify checks that it is executable)."""
    binary = Path(sys.executable).parent / "perfwarden"
    assert binary.is_file(), f"no perfwarden console script at {binary}"
    text = UNIT.read_text() if text is None else text
    text, count = re.subn(
        r"^ExecStart=\S+", f"ExecStart={binary}", text, flags=re.MULTILINE
    )
    assert count == 1, "the unit must have exactly one ExecStart="
    path = directory / "perfwarden.service"
    path.write_text(text)
    return path


def exposure(output: str) -> float:
    """The number on the ``Overall exposure level`` line."""
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, f"no overall exposure level in:\n{output}"
    return float(match.group(1))


class TestVerify:
    """``systemd-analyze verify`` has nothing to say about the unit."""

    def test_verify_is_silent(self, tmp_path: Path) -> None:
        """No warning, no error, exit 0."""
        result = analyze("verify", str(install_unit(tmp_path)))
        assert (result.returncode, result.stdout) == (0, "")

    def test_negative_control_misspelt_key(self, tmp_path: Path) -> None:
        """A misspelt key exits 0 but prints a warning, which the check catches."""
        text = UNIT.read_text().replace("\nProtectSystem=", "\nProtectSytem=")
        assert "ProtectSytem=" in text
        result = analyze("verify", str(install_unit(tmp_path, text)))
        assert "ProtectSytem" in result.stdout
        assert result.stdout != ""

    def test_contract_settings(self) -> None:
        """The settings the contract and the daemon rely on are present."""
        settings = {
            line.partition("=")[0]: line.partition("=")[2]
            for line in UNIT.read_text().splitlines()
            if line and not line.startswith(("#", "["))
        }
        expected = {
            "Type": "notify",
            "NotifyAccess": "main",
            "ExecReload": "/bin/kill -HUP $MAINPID",
            "ExecStart": "/opt/perfwarden/bin/perfwarden run",
            "Restart": "on-failure",
            "RuntimeDirectory": "perfwarden",
            "StateDirectory": "perfwarden",
            "ConfigurationDirectory": "perfwarden",
            "ProtectSystem": "strict",
            "RestrictAddressFamilies": "AF_UNIX",
            "CapabilityBoundingSet": "",
            "AmbientCapabilities": "",
        }
        assert {k: settings.get(k) for k in expected} == expected
        assert settings.get("WatchdogSec")
        # Resource ceilings for the daemon and its plugin hosts.
        ceilings = {"MemoryMax": "1G", "TasksMax": "256", "LimitNOFILE": "8192"}
        assert {k: settings.get(k) for k in ceilings} == ceilings
        # psutil must see (and correctly attribute) other users' processes.
        for breaks_psutil in ("ProtectProc", "ProcSubset", "PrivateUsers"):
            assert breaks_psutil not in settings

    def test_ceilings_give_their_reasons(self) -> None:
        """MemoryMax, TasksMax and LimitNOFILE each follow a comment saying why."""
        lines = UNIT.read_text().splitlines()
        for key in ("MemoryMax", "TasksMax", "LimitNOFILE"):
            (index,) = [i for i, line in enumerate(lines) if line.startswith(key)]
            above = lines[index - 1]
            if above.startswith("MemoryHigh="):
                above = lines[index - 2]
            assert above.startswith("# "), f"{key}= has no reason above it"


class TestSecurity:
    """``systemd-analyze security --offline=yes`` rates the unit SAFE."""

    def test_exposure_at_most_one(self, tmp_path: Path) -> None:
        """The overall exposure level is <= 1.0."""
        result = analyze("security", "--offline=yes", str(install_unit(tmp_path)))
        score = exposure(result.stdout)
        assert score <= MAX_EXPOSURE, result.stdout

    def test_score_parser_sees_a_weak_unit(self, tmp_path: Path) -> None:
        """Control: an unhardened unit scores far above the limit."""
        text = "[Service]\nType=notify\nExecStart=/opt/perfwarden/bin/perfwarden run\n"
        result = analyze("security", "--offline=yes", str(install_unit(tmp_path, text)))
        assert exposure(result.stdout) > 5.0


def with_http_drop_in(directory: Path) -> Path:
    """The unit with the loopback-HTTP drop-in appended (what systemd merges)."""
    return install_unit(directory, UNIT.read_text() + "\n" + HTTP_DROP_IN.read_text())


class TestHttpDropIn:
    """systemd/perfwarden.service.d/http-loopback.conf: valid, loopback only."""

    def test_verify_is_silent(self, tmp_path: Path) -> None:
        """The unit plus the drop-in verifies without a word."""
        result = analyze("verify", str(with_http_drop_in(tmp_path)))
        assert (result.returncode, result.stdout) == (0, "")

    def test_exposure(self, tmp_path: Path) -> None:
        """Still hardened: at most 1.5, and only loopback addresses allowed."""
        result = analyze("security", "--offline=yes", str(with_http_drop_in(tmp_path)))
        assert exposure(result.stdout) <= MAX_EXPOSURE_WITH_HTTP, result.stdout
        assert "only localhost entries" in result.stdout

    def test_settings(self) -> None:
        """It opens IP sockets and the host network, and allows only localhost."""
        lines = [
            line
            for line in HTTP_DROP_IN.read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert [
            "[Service]",
            "PrivateNetwork=no",
            "RestrictAddressFamilies=",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "IPAddressAllow=localhost",
        ] == lines


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None, reason="systemd-sysusers not installed"
)
def test_sysusers_dry_run() -> None:
    """The sysusers snippet parses and would create the perfwarden user and group."""
    result = subprocess.run(
        ["systemd-sysusers", "--dry-run", str(SYSUSERS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    assert "Failed" not in result.stdout
    assert "ignoring" not in result.stdout
    assert (
        "'perfwarden'" in result.stdout
        or "perfwarden" in Path("/etc/passwd").read_text()
    )
