"""share/: the man page and completions are current and work in the real programs.

bash and groff are always there; zsh and fish tests skip without them (Debian:
``apt-get install -y zsh fish``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from perfwarden.generate.__main__ import main as generate
from perfwarden.generate.files import PATHS, generated_files

ROOT = Path(__file__).resolve().parents[2]
SHARE = ROOT / "share"


def shell(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and capture its output (never raises on status)."""
    return subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LC_ALL": "C.UTF-8"},
    )


class TestCurrent:
    """The checked-in files are what the parser generates now."""

    def test_share_is_current(self) -> None:
        """Regenerate with: python -m perfwarden.generate share."""
        stale = [
            relative
            for relative, content in generated_files().items()
            if (SHARE / relative).read_text() != content
        ]
        assert [] == stale, "run `python -m perfwarden.generate share`"

    def test_check_mode(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--check reports stale files and writes nothing; then they are current."""
        assert 1 == generate([str(tmp_path), "--check"])
        assert not any(tmp_path.iterdir())
        assert 0 == generate([str(tmp_path)])
        assert 0 == generate([str(tmp_path), "--check"])
        assert "stale" in capsys.readouterr().out

    def test_packaged_as_data(self) -> None:
        """pyproject.toml installs every generated file under share/."""
        text = (ROOT / "pyproject.toml").read_text()
        for relative in PATHS.values():
            assert f'"share/{relative}" = "share/{relative}"' in text


def bash_complete(line: str) -> list[str]:
    """What the bash completion offers for the words of *line* (the last one is
    being typed; a trailing space starts a new one)."""
    script = SHARE / PATHS["bash"]
    words = line.split(" ")
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_perfwarden\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = shell("bash", "--norc", "--noprofile", stdin=program)
    assert "" == result.stderr
    return [word for word in result.stdout.splitlines() if word]


class TestBash:
    """The bash script completes commands, options and their values."""

    def test_commands(self) -> None:
        """The first word: subcommands and top-level options."""
        assert ["reload", "report", "run"] == sorted(bash_complete("perfwarden r"))
        assert "check-config" in bash_complete("perfwarden ")

    def test_options_of_the_command(self) -> None:
        """Options are those of the command typed, after an option's value too."""
        assert ["--log-buffer", "--log-format", "--log-level"] == sorted(
            bash_complete("perfwarden run --config /x --log-")
        )

    def test_choices(self) -> None:
        """An option with choices completes them."""
        assert ["debug", "error", "info", "warning"] == sorted(
            bash_complete("perfwarden run --log-level ")
        )
        assert ["ms"] == bash_complete("perfwarden send x 1 --type m")

    def test_nested(self) -> None:
        """``knobs set`` is a command of its own."""
        assert ["set"] == bash_complete("perfwarden knobs s")
        assert "--reason" in bash_complete("perfwarden knobs set --")

    def test_directories(self, tmp_path: Path) -> None:
        """--socket-dir offers directories."""
        (tmp_path / "sockets").mkdir()
        (tmp_path / "socket-file").write_text("")
        offered = bash_complete(f"perfwarden status --socket-dir {tmp_path}/so")
        assert [f"{tmp_path}/sockets"] == offered


class TestManPage:
    """groff reads the page without a warning, and man shows every command."""

    def test_groff_is_silent(self) -> None:
        """No warning of any kind (-ww)."""
        result = shell("groff", "-man", "-ww", "-z", str(SHARE / PATHS["man"]))
        assert (0, "") == (result.returncode, result.stderr)

    @pytest.mark.skipif(shutil.which("man") is None, reason="man not installed")
    def test_renders_commands(self) -> None:
        """Each command has a section; the environment and files are listed."""
        result = shell("man", "-l", str(SHARE / PATHS["man"]))
        text = result.stdout
        for section in ("perfwarden run", "perfwarden knobs set", "ENVIRONMENT"):
            assert section in text
        assert "/etc/perfwarden/conf.d" in text


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
class TestZsh:
    """The zsh function parses and defines a function per command."""

    def test_loads(self) -> None:
        """zsh -n accepts it; sourcing defines _perfwarden_knobs_set."""
        script = SHARE / PATHS["zsh"]
        assert 0 == shell("zsh", "-n", str(script)).returncode
        program = (
            "autoload -Uz compinit && compinit -u -D\n"
            "_arguments() { :; }\n"
            f"source {script} 2>/dev/null\n"
            "print -l ${(k)functions[(I)_perfwarden*]}\n"
        )
        result = shell("zsh", "-f", stdin=program)
        assert "_perfwarden_knobs_set" in result.stdout.split()


def fish_complete(line: str) -> list[str]:
    """What fish offers for *line*, with the script loaded (first column only)."""
    script = SHARE / PATHS["fish"]
    result = shell(
        "fish", "--no-config", "-c", f"source {script}; complete -C {line!r}"
    )
    assert "" == result.stderr
    return sorted(entry.split("\t")[0] for entry in result.stdout.splitlines())


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
class TestFish:
    """fish completes through the real ``complete -C``."""

    def test_commands_and_choices(self) -> None:
        """Subcommands, then an option's choices, then a nested command."""
        assert ["reload", "report", "run"] == fish_complete("perfwarden r")
        assert ["debug", "error", "info", "warning"] == fish_complete(
            "perfwarden run --log-level "
        )
        assert "set" in fish_complete("perfwarden knobs ")


class TestCompletionCommand:
    """``perfwarden completion SHELL`` prints the same script as share/ holds."""

    @pytest.mark.parametrize("name", ["bash", "zsh", "fish"])
    def test_prints_the_script(
        self, name: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Byte for byte the installed file."""
        from perfwarden.cli import main

        assert 0 == main(["completion", name])
        assert (SHARE / PATHS[name]).read_text() == capsys.readouterr().out
