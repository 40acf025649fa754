"""The command line's usage errors, help text and client-side checks (in-process)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import pytest

from perfwarden.cli import EXIT_USAGE, build_parser, main

if TYPE_CHECKING:
    from pathlib import Path


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


class TestUsageErrors:
    @pytest.mark.parametrize("rate", ["2", "0", "-1", "nan", "x"])
    def test_send_sample_rate_out_of_range(
        self, rate: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A sample rate outside (0, 1] is a usage error, not a dropped line."""
        with pytest.raises(SystemExit) as exited:
            main(["send", "m", "1", "--sample-rate", rate])
        assert EXIT_USAGE == exited.value.code
        assert "--sample-rate" in capsys.readouterr().err

    @pytest.mark.parametrize("duration", ["-5", "0", "inf"])
    def test_demo_duration_must_be_positive(self, duration: str) -> None:
        """demo --duration -5 is refused before anything starts."""
        with pytest.raises(SystemExit) as exited:
            main(["demo", "--duration", duration])
        assert EXIT_USAGE == exited.value.code

    def test_silence_for_banana(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """silence --for banana exits 2 and names the option (no daemon needed)."""
        code = main(["silence", "m", "--for", "banana", "--socket-dir", str(tmp_path)])
        assert EXIT_USAGE == code
        assert "--for" in capsys.readouterr().err

    def test_time_without_daemon_warns(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """time keeps the command's status and says that nothing was sent."""
        code = main(["time", "--socket-dir", str(tmp_path), "--", "sh", "-c", "exit 0"])
        assert 0 == code
        err = capsys.readouterr().err
        assert "no perfwarden daemon listens" in err
        assert "not sent" in err


class TestHelp:
    def test_every_argument_has_help_and_default(self) -> None:
        """Each option and argument has a help line, and it states its default."""
        missing = []
        for name, sub in _subparsers(build_parser()).items():
            for action in sub._actions:
                if (
                    isinstance(
                        action, argparse._HelpAction | argparse._SubParsersAction
                    )
                    or action.help == argparse.SUPPRESS
                ):
                    continue
                label = f"{name} {action.dest}"
                if not action.help:
                    missing.append(f"{label}: no help")
                    continue
                default = action.default
                if default not in (None, False, [], argparse.SUPPRESS) and (
                    "default" not in action.help
                ):
                    missing.append(f"{label}: default {default!r} not stated")
        assert [] == missing

    def test_knobs_usage_shows_the_action_optional(self) -> None:
        """knobs works without an action, and its usage says so."""
        usage = _subparsers(build_parser())["knobs"].format_usage()
        assert "[set NAME VALUE" in usage

    def test_report_offers_one_json_option(self) -> None:
        """report's help shows --json and --verbose, not also --format."""
        text = _subparsers(build_parser())["report"].format_help()
        assert "--json" in text
        assert "--verbose" in text
        assert "--format" not in text

    def test_no_undefined_seed_wording(self) -> None:
        """The help does not lean on "the seed's report layout" without saying it."""
        parser = build_parser()
        texts = [parser.format_help()] + [
            sub.format_help() for sub in _subparsers(parser).values()
        ]
        assert not [t for t in texts if "seed" in t]
