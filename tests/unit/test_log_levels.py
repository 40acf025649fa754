"""perfwarden.logs.setup: journald priority prefixes and the reloadable level."""

from __future__ import annotations

import io
import json
import logging
import os
from typing import TYPE_CHECKING

import pytest
import structlog

from perfwarden.logs import setup
from perfwarden.logs.setup import (
    configure_logging,
    flush_logging,
    get_logger,
    set_log_level,
    shutdown_logging,
    stdout_is_journal,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(name="log_file")
def _log_file(tmp_path: Path) -> Iterator[Path]:
    """A file to log into; structlog's configuration is restored afterwards."""
    saved = structlog.get_config()
    yield tmp_path / "log.txt"
    shutdown_logging(5)
    setup._writer = None
    setup._threshold, setup._pinned = logging.INFO, False
    structlog.configure(**saved)


def lines_of(path: Path) -> list[str]:
    """What was written, once the writer thread caught up."""
    assert flush_logging()
    return path.read_text().splitlines()


class TestJournalStream:
    """$JOURNAL_STREAM is ``dev:inode`` of the stream systemd connected."""

    def test_matches_only_that_stream(self, tmp_path: Path) -> None:
        """The same file matches; another file, garbage or no variable do not."""
        path = tmp_path / "out"
        path.write_text("")
        status = os.stat(path)
        env = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        with path.open("w") as stream, (tmp_path / "other").open("w") as other:
            assert stdout_is_journal(stream, env)
            assert not stdout_is_journal(other, env)
            assert not stdout_is_journal(stream, {})
            assert not stdout_is_journal(stream, {"JOURNAL_STREAM": "x:y"})
        assert not stdout_is_journal(io.StringIO(), env)  # no descriptor


class TestPrefixes:
    """Each line starts with <priority> and is still one JSON object."""

    def test_priorities(self, log_file: Path) -> None:
        """debug 7, info 6, warning 4, error 3, critical 2."""
        with log_file.open("w") as stream:
            configure_logging("debug", stream=stream, json=True, journal=True)
            log = get_logger("test")
            for method in ("debug", "info", "warning", "error", "critical"):
                getattr(log, method)(f"test.{method}")
            found = [
                (line[:3], json.loads(line[3:])["event"]) for line in lines_of(log_file)
            ]
        assert [
            ("<7>", "test.debug"),
            ("<6>", "test.info"),
            ("<4>", "test.warning"),
            ("<3>", "test.error"),
            ("<2>", "test.critical"),
        ] == found


class TestLevel:
    """The level filters at call time and a reload may change it."""

    def test_reload_changes_an_unpinned_level(self, log_file: Path) -> None:
        """None at start: info; set_log_level moves it both ways."""
        with log_file.open("w") as stream:
            configure_logging(None, stream=stream, json=True, journal=False)
            log = get_logger("test")
            log.debug("hidden.1")
            assert set_log_level("debug")
            log.debug("shown.1")
            assert set_log_level("error")
            log.warning("hidden.2")
            log.error("shown.2")
            assert not set_log_level("error")  # no change
            events = [json.loads(line)["event"] for line in lines_of(log_file)]
        assert ["shown.1", "shown.2"] == events

    def test_pinned_level_stays(self, log_file: Path) -> None:
        """A level given to configure_logging (--log-level) ignores reloads."""
        with log_file.open("w") as stream:
            configure_logging("warning", stream=stream, json=True, journal=False)
            assert not set_log_level("debug")
            get_logger("test").info("hidden")
            get_logger("test").warning("shown")
            events = [json.loads(line)["event"] for line in lines_of(log_file)]
        assert ["shown"] == events
