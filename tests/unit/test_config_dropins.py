"""conf.d drop-ins and where the config file is looked for."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

from perfwarden.config.load import (
    ConfigError,
    default_config_path,
    load_config,
    resolve_config_path,
)

if TYPE_CHECKING:
    from pathlib import Path

MAIN = """\
version: 1
metrics:
  latency:
    bound: upper
    warning: 150
    critical: 200
processes:
  - {name: web, match: {pid: 1}}
"""


def write(directory: Path, drop_ins: dict[str, str], main: str = MAIN) -> Path:
    """The main file and its conf.d drop-ins; returns the main file's path."""
    path = directory / "perfwarden.yaml"
    path.write_text(main)
    conf_d = directory / "conf.d"
    conf_d.mkdir(exist_ok=True)
    for name, text in drop_ins.items():
        (conf_d / name).write_text(text)
    return path


def problems(path: Path) -> list[str]:
    """Every problem of the set, as printed."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(problem) for problem in caught.value.problems]


class TestMerge:
    """Mappings merge key by key; anything else replaces; name order."""

    def test_keys_merge_and_lists_replace(self, tmp_path: Path) -> None:
        """A drop-in changes one threshold, adds a metric and replaces a list."""
        path = write(
            tmp_path,
            {
                "10-tune.yaml": "metrics:\n  latency: {warning: 120}\n",
                "20-more.yaml": (
                    "metrics:\n  errors: {bound: upper, warning: 1}\n"
                    "processes: []\nlogging: {level: warning}\n"
                ),
            },
        )
        config = load_config(path)
        latency = config.metrics["latency"]
        assert (120.0, 200.0) == (latency.warning, latency.critical)
        assert ["latency", "errors"] == list(config.metrics)
        assert () == config.processes
        assert "warning" == config.logging.level

    def test_later_name_wins(self, tmp_path: Path) -> None:
        """Files apply in name order: 20- over 10-; other names are ignored."""
        path = write(
            tmp_path,
            {
                "20-b.yaml": "metrics: {latency: {warning: 90}}\n",
                "10-a.yaml": "metrics: {latency: {warning: 80}}\n",
                ".30-hidden.yaml": "metrics: {latency: {warning: 1}}\n",
                "40-c.yaml.bak": "metrics: {latency: {warning: 2}}\n",
                "50-d.yml": "metrics: {latency: {warning: 3}}\n",
            },
        )
        assert 90.0 == load_config(path).metrics["latency"].warning

    def test_empty_drop_in_changes_nothing(self, tmp_path: Path) -> None:
        """An empty or all-comment drop-in is fine."""
        path = write(tmp_path, {"10-empty.yaml": "", "20-note.yaml": "# later\n"})
        assert 150.0 == load_config(path).metrics["latency"].warning

    def test_digest_covers_the_drop_ins(self, tmp_path: Path) -> None:
        """The sha256 is the main file's alone without drop-ins, else of the set."""
        path = write(tmp_path, {})
        alone = load_config(path).sha256
        assert hashlib.sha256(MAIN.encode()).hexdigest() == alone
        (tmp_path / "conf.d" / "10-a.yaml").write_text("logging: {level: error}\n")
        assert alone != load_config(path).sha256


class TestProblems:
    """A problem in a drop-in names its file and line; the set is rejected."""

    def test_file_and_line(self, tmp_path: Path) -> None:
        """Wrong value, unknown key and bad order are reported in the drop-in."""
        path = write(
            tmp_path,
            {
                "10-bad.yaml": (
                    "# tuning\nmetrics:\n  latency:\n    warning: 300\n    critcal: 1\n"
                ),
            },
        )
        drop_in = tmp_path / "conf.d" / "10-bad.yaml"
        found = problems(path)
        assert any(
            line.startswith(f"{drop_in}:5: metrics.latency.critcal: unknown key")
            for line in found
        ), found
        # The order check blames critical, which the main file gives.
        assert any("must be above warning" in line for line in found), found

    def test_main_file_problems_keep_their_file(self, tmp_path: Path) -> None:
        """Problems of the main file still name it, first."""
        path = write(
            tmp_path,
            {"10-a.yaml": "logging: {level: loud}\n"},
            main=MAIN.replace("bound: upper", "bound: sideways"),
        )
        found = problems(path)
        assert found[0].startswith(f"{path}:4: metrics.latency.bound:"), found
        assert found[1].startswith(f"{tmp_path / 'conf.d' / '10-a.yaml'}:1:"), found

    def test_syntax_error_and_not_a_mapping(self, tmp_path: Path) -> None:
        """Broken YAML and a top-level list are problems of their own file."""
        path = write(tmp_path, {"10-a.yaml": "metrics: [\n", "20-b.yaml": "- 1\n"})
        found = problems(path)
        assert any("10-a.yaml:" in line and "invalid YAML" in line for line in found)
        assert any(
            "20-b.yaml:1: must be a mapping, got a list" in line for line in found
        )

    def test_duplicate_key_inside_a_drop_in(self, tmp_path: Path) -> None:
        """A key twice in one drop-in is a duplicate, as in one file."""
        path = write(tmp_path, {"10-a.yaml": "logging: {}\nlogging: {}\n"})
        assert any("duplicate key" in line for line in problems(path))

    def test_unreadable_drop_in(self, tmp_path: Path) -> None:
        """A drop-in that cannot be read rejects the set, naming it."""
        path = write(tmp_path, {})
        (tmp_path / "conf.d" / "10-a.yaml").mkdir()  # a directory is not a file
        (tmp_path / "conf.d" / "20-b.yaml").symlink_to(tmp_path / "missing")
        assert 150.0 == load_config(path).metrics["latency"].warning  # not files
        (tmp_path / "conf.d" / "30-c.yaml").write_text("logging: {}\n")
        (tmp_path / "conf.d" / "30-c.yaml").chmod(0)
        try:
            (tmp_path / "conf.d" / "30-c.yaml").read_bytes()
        except PermissionError:
            found = problems(path)
            assert [f"{tmp_path / 'conf.d' / '30-c.yaml'}:0:"] == [
                line.split(" ")[0] for line in found
            ]
        else:
            pytest.skip("running as root: every file is readable")


class TestLocation:
    """--config, $PERFWARDEN_CONFIG, systemd, /etc, XDG, then the packaged file."""

    def test_order(self, tmp_path: Path) -> None:
        """Each candidate is used when it exists and nothing before it is given."""
        system = tmp_path / "etc" / "perfwarden.yaml"
        xdg = tmp_path / "xdg" / "perfwarden" / "perfwarden.yaml"
        systemd = tmp_path / "systemd" / "perfwarden.yaml"
        env = {
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "CONFIGURATION_DIRECTORY": str(systemd.parent),
        }

        def resolve(cli: str | None = None, **extra: str) -> Path:
            return resolve_config_path(cli, env | extra, system_config=system)

        assert default_config_path() == resolve()
        xdg.parent.mkdir(parents=True)
        xdg.write_text(MAIN)
        assert xdg == resolve()
        system.parent.mkdir()
        system.write_text(MAIN)
        assert system == resolve()
        systemd.parent.mkdir()
        systemd.write_text(MAIN)
        assert systemd == resolve()
        assert tmp_path / "e.yaml" == resolve(
            PERFWARDEN_CONFIG=str(tmp_path / "e.yaml")
        )
        assert tmp_path / "c.yaml" == resolve(str(tmp_path / "c.yaml"))

    def test_xdg_defaults_to_home_config(self, tmp_path: Path) -> None:
        """Without $XDG_CONFIG_HOME, ~/.config/perfwarden/perfwarden.yaml."""
        home_config = tmp_path / ".config" / "perfwarden" / "perfwarden.yaml"
        home_config.parent.mkdir(parents=True)
        home_config.write_text(MAIN)
        found = resolve_config_path(
            None, {"HOME": str(tmp_path)}, system_config=tmp_path / "none"
        )
        assert home_config == found
