"""The JSON Schema built from the config model: current, valid, and it agrees with
``check-config`` on the example configs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from perfwarden.config.load import load_config, parse_config
from perfwarden.config.schema import config_schema

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "perfwarden.schema.json"
EXAMPLES = sorted(
    [
        ROOT / "config" / "perfwarden.yaml",
        *(ROOT / "config" / "examples").glob("*.yaml"),
    ]
)
BAD = ROOT / "tests" / "data" / "config"


def validator() -> jsonschema.Draft202012Validator:
    """A validator of the generated schema."""
    return jsonschema.Draft202012Validator(config_schema())


class TestGenerated:
    """config/perfwarden.schema.json is the model's schema, and a valid one."""

    def test_shipped_file_is_current(self) -> None:
        """Regenerate with: python -m perfwarden.config.schema > SHIPPED."""
        assert json.loads(SHIPPED.read_text()) == config_schema(), (
            "config/perfwarden.schema.json is stale: run "
            "`python -m perfwarden.config.schema > config/perfwarden.schema.json`"
        )

    def test_is_a_valid_schema(self) -> None:
        """It is a well-formed draft 2020-12 schema."""
        jsonschema.Draft202012Validator.check_schema(config_schema())

    def test_every_section_of_the_model(self) -> None:
        """Each top-level section is described, unknown keys are flagged."""
        schema = config_schema()
        assert {
            "version", "statistics", "evaluation", "metrics", "knobs", "optimizer",
            "processes", "plugins", "control", "sockets", "ingest", "state", "http",
            "logging", "recording", "alertmanager",
        } == set(schema["properties"])  # fmt: skip
        assert schema["additionalProperties"] is False


class TestExamples:
    """Every example config is valid for check-config and for the schema."""

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
    def test_example_validates(self, path: Path) -> None:
        """No schema error on a config that check-config accepts."""
        load_config(path)
        errors = [
            e.message for e in validator().iter_errors(yaml.safe_load(path.read_text()))
        ]
        assert [] == errors

    def test_durations_and_off(self) -> None:
        """Compound durations, days and a quoted off are valid for both."""
        text = (
            "version: 1\nstatistics: {expire_after: 'off'}\n"
            "evaluation: {interval: 1h30m, missing_after: 1d}\n"
        )
        parse_config(text)
        assert [] == list(validator().iter_errors(yaml.safe_load(text)))


class TestRejects:
    """Mistakes an editor should flag are schema errors too."""

    @pytest.mark.parametrize(
        ("name", "fragment"),
        [
            ("bad-unknown-keys.yaml", "'intervall' was unexpected"),
            ("bad-sockets-access.yaml", "'public' is not one of"),
            ("bad-optimizer.yaml", "'soon' is not valid"),
            ("bad-version-missing.yaml", "'version' is a required property"),
            ("bad-bound-missing.yaml", "'bound' is a required property"),
        ],
    )
    def test_bad_files(self, name: str, fragment: str) -> None:
        """The schema reports the mistake the file was written for."""
        document = yaml.safe_load((BAD / name).read_text())
        messages = [error.message for error in validator().iter_errors(document)]
        assert any(fragment in message for message in messages), messages
