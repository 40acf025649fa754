"""perfwarden.config.load: the YAML schema, its problems with line numbers, the
defaults."""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import pickle
import re
from importlib import resources
from types import MappingProxyType

import pytest

from perfwarden.config.load import (
    Basis,
    Bound,
    Config,
    ConfigError,
    ConfigProblem,
    KnobConfig,
    MetricConfig,
    MetricsAccess,
    default_config_path,
    load_config,
    parse_config,
    resolve_config_path,
)
from perfwarden.config.plugins import WEBHOOK_BACKOFF, WEBHOOK_RETRIES
from perfwarden_optimizers.webhook import WebhookOptimizer

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "config"
BAD_FILES = sorted(DATA.glob("bad-*.yaml"))
EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml"))
EXPECT = re.compile(r"# expect: (\d+): (.*?): (.*)")

#: The seed's thresholds: PerformanceMonitor.thresholds as targets and
#: AlertManager.alert_rules as warning/critical (ours where the seed has none).
SEED = {
    "context_loading_time": (Bound.UPPER, 100, 150, 200),
    "command_execution_time": (Bound.UPPER, 2000, 3000, 5000),
    "token_efficiency_ratio": (Bound.LOWER, 0.40, 0.35, 0.30),
    "quality_retention_score": (Bound.LOWER, 0.95, 0.90, 0.85),
    "parallel_execution_speedup": (Bound.LOWER, 2.0, 1.5, 1.2),
    "memory_usage_mb": (Bound.UPPER, 50, 60, 80),
    "user_satisfaction_score": (Bound.LOWER, 0.9, 0.85, 0.80),
}


def problems_of(text: str | bytes) -> list[str]:
    """The problems parse_config reports for *text*, as strings."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="t.yaml")
    return [str(problem) for problem in info.value.problems]


def expectations(path: pathlib.Path) -> list[tuple[int, str, str]]:
    """The ``# expect: LINE: key: message`` lines at the top of a bad-*.yaml file."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = EXPECT.fullmatch(line)
        if match:
            found.append((int(match[1]), match[2], match[3]))
    return found


@pytest.fixture(name="default")
def _default() -> Config:
    return load_config(default_config_path())


class TestDefaultConfig:
    def test_validates(self, default: Config) -> None:
        """The packaged default loads without problems."""
        assert 1 == default.version

    def test_has_the_seven_seed_metrics(self, default: Config) -> None:
        """The default carries the seed's seven metrics, in the seed's order,
        then the daemon's own memory."""
        assert [*SEED, "perfwarden.self.memory_mb"] == list(default.metrics)

    @pytest.mark.parametrize("name", list(SEED))
    def test_seed_thresholds(self, default: Config, name: str) -> None:
        """Each metric has the seed's bound, target, warning and critical."""
        metric = default.metrics[name]
        assert SEED[name] == (
            metric.bound,
            metric.target,
            metric.warning,
            metric.critical,
        )

    def test_quality_is_a_guard(self, default: Config) -> None:
        """quality_retention_score is the guard metric, and the only one."""
        guards = [name for name, metric in default.metrics.items() if metric.guard]
        assert ["quality_retention_score"] == guards

    def test_speedup_is_grouped_by_combination(self, default: Config) -> None:
        """parallel_execution_speedup compares tool combinations."""
        assert "combination" == default.metrics["parallel_execution_speedup"].group_by

    def test_latency_metrics_hold_before_firing(self, default: Config) -> None:
        """The latency metrics carry a 5s hold time."""
        assert 5.0 == default.metrics["context_loading_time"].for_
        assert 5.0 == default.metrics["command_execution_time"].for_

    def test_sections_take_the_documented_defaults(self, default: Config) -> None:
        """The other sections equal the model's defaults."""
        assert Config().statistics == default.statistics
        assert Config().evaluation == default.evaluation
        assert Config().optimizer == default.optimizer
        assert Config().sockets == default.sockets
        assert Config().ingest == default.ingest
        assert Config().control == default.control
        assert () == default.processes
        assert {} == dict(default.plugins)

    def test_knobs(self, default: Config) -> None:
        """The five default knobs with their ranges."""
        assert {
            "compression.ratio": KnobConfig("compression.ratio", 0.1, 0.9, 0.1, 0.4),
            "batch.size": KnobConfig("batch.size", 1, 256, None, 16),
            "parallelism.limit": KnobConfig("parallelism.limit", 1, 16, None, 4),
            "cache.size": KnobConfig("cache.size", 0, 4096, None, 256),
            "context.layers": KnobConfig("context.layers", 1, 8, None, 4),
        } == dict(default.knobs)

    def test_source_and_hash(self, default: Config) -> None:
        """The packaged default is named "<default>" and hashed over its bytes."""
        digest = hashlib.sha256(default_config_path().read_bytes()).hexdigest()
        assert ("<default>", digest) == (default.source, default.sha256)

    def test_default_path_is_the_repository_file(self) -> None:
        """default_config_path() has the bytes of config/perfwarden.yaml."""
        repo_file = REPO / "config" / "perfwarden.yaml"
        assert repo_file.read_bytes() == default_config_path().read_bytes()

    def test_installed_copy_is_used_when_present(self) -> None:
        """An installed wheel's perfwarden/_data/perfwarden.yaml is preferred."""
        packaged = resources.files("perfwarden") / "_data" / "perfwarden.yaml"
        if not packaged.is_file():
            pytest.skip("perfwarden is not installed from a wheel")
        assert pathlib.Path(str(packaged)) == default_config_path()

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
    def test_examples_validate(self, path: pathlib.Path) -> None:
        """Every shipped example under config/examples validates."""
        assert str(path) == load_config(path).source


class TestBadFiles:
    def test_there_are_cases(self) -> None:
        """The bad-*.yaml cases are found (a guard against a wrong glob)."""
        assert len(BAD_FILES) >= 20

    @pytest.mark.parametrize("path", BAD_FILES, ids=lambda path: path.name)
    def test_reports_expected_problems(self, path: pathlib.Path) -> None:
        """Each bad file gives exactly its `# expect:` problems, with line numbers."""
        expected = expectations(path)
        with pytest.raises(ConfigError) as info:
            load_config(path)
        got = [(p.line, p.key, p.message) for p in info.value.problems]
        assert expected, f"{path.name} has no '# expect:' lines"
        assert len(expected) == len(got), "\n".join(map(str, info.value.problems))
        for (line, key, fragment), (got_line, got_key, message) in zip(
            expected, got, strict=True
        ):
            assert (line, key) == (got_line, got_key)
            assert fragment in message
        assert {str(path)} == {problem.path for problem in info.value.problems}


class TestSeveralErrors:
    def test_lists_all_of_them(self) -> None:
        """A file with problems in six sections reports all six, in file order."""
        with pytest.raises(ConfigError) as info:
            load_config(DATA / "bad-several.yaml")
        problems = info.value.problems
        keys = [problem.key for problem in problems]
        assert [
            "statistics.confidence_level",
            "evaluation.basis",
            "metrics.context_loading_time.warning",
            "metrics.quality_retention_score.guard",
            "knobs.batch.size.initial",
            "sockets.metrics_access",
        ] == keys
        assert sorted(p.line for p in problems) == [p.line for p in problems]

    def test_error_text_is_one_problem_per_line(self) -> None:
        """str(ConfigError) is PATH:LINE: key: message, one per line."""
        path = DATA / "bad-several.yaml"
        with pytest.raises(ConfigError) as info:
            load_config(path)
        lines = str(info.value).splitlines()
        assert len(info.value.problems) == len(lines)
        assert f"{path}:10: statistics.confidence_level: must be between" in lines[0]

    def test_problem_without_key(self) -> None:
        """A problem that belongs to no key prints as PATH:LINE: message."""
        assert "f:3: bad" == str(ConfigProblem("f", 3, "", "bad"))
        assert "f:3: a.b: bad" == str(ConfigProblem("f", 3, "a.b", "bad"))

    def test_error_pickles(self) -> None:
        """ConfigError survives pickling with its problems (for process pools, logs)."""
        error = ConfigError([ConfigProblem("f", 1, "k", "m")])
        assert error.problems == pickle.loads(pickle.dumps(error)).problems  # noqa: S301


class TestUnknownKeys:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "version: 1\nmetric: {}\n",
                "t.yaml:2: metric: unknown key; did you mean 'metrics'?",
            ),
            (
                "version: 1\nstatistics: {confidence: 0.9}\n",
                "t.yaml:2: statistics.confidence: unknown key;"
                " did you mean 'confidence_level'?",
            ),
            (
                "version: 1\nmetrics:\n  m: {bound: upper, warn: 3}\n",
                "t.yaml:3: metrics.m.warn: unknown key; did you mean 'warning'?",
            ),
            (
                "version: 1\nsockets: {access: world}\n",
                "t.yaml:2: sockets.access: unknown key; did you mean 'metrics_access'?",
            ),
            (
                "version: 1\nprocesses:\n  - {name: a, match: {cmd_line: x}}\n",
                "t.yaml:3: processes[0].match.cmd_line: unknown key;"
                " did you mean 'cmdline'?",
            ),
            (
                "version: 1\nknobs:\n  k: {minimum: 0, max: 1, initial: 0}\n",
                "t.yaml:3: knobs.k.minimum: unknown key; did you mean 'min'?",
            ),
        ],
    )
    def test_suggestion(self, text: str, expected: str) -> None:
        """A misspelt key is rejected with the closest known key."""
        assert expected in problems_of(text)

    def test_no_close_match_lists_the_keys(self) -> None:
        """With nothing close, the message lists every allowed key."""
        [problem] = problems_of("version: 1\nstate: {zzz: 1}\n")
        assert problem.endswith("expected one of: checkpoint_interval")

    def test_enum_value_suggestion(self) -> None:
        """A misspelt enum value gets a hint too."""
        [problem] = problems_of("version: 1\nevaluation: {basis: meen}\n")
        assert problem.endswith("got 'meen'; did you mean 'mean'?")

    def test_plugin_options_are_free(self) -> None:
        """Plugin mappings accept any key: those are the plugin's own options."""
        config = parse_config("version: 1\nplugins:\n  webhook: {url: x, retries: 3}\n")
        assert {"url": "x", "retries": 3} == dict(config.plugins["webhook"].options)


class TestYamlEdges:
    def test_syntax_error_has_a_line(self) -> None:
        """A YAML syntax error is one problem at the mark's line."""
        [problem] = problems_of("version: 1\nmetrics:\n  a: b\n c: d\n")
        assert problem.startswith("t.yaml:4: invalid YAML: ")

    def test_several_documents(self) -> None:
        """A stream with two documents is rejected."""
        [problem] = problems_of("version: 1\n---\nversion: 1\n")
        assert "t.yaml:2: invalid YAML: " in problem

    def test_not_utf8(self) -> None:
        """Bytes that are not UTF-8 are reported on their line."""
        assert ["t.yaml:2: not UTF-8 (byte 0xff)"] == problems_of(b"version: 1\n\xff\n")

    def test_control_character(self) -> None:
        """A control character is reported on its line."""
        [problem] = problems_of("version: 1\nx: \x01\n")
        assert problem.startswith("t.yaml:2: invalid YAML: ")

    def test_bom_is_accepted(self) -> None:
        """A UTF-8 byte-order mark is allowed."""
        assert 1 == parse_config("\ufeffversion: 1\n".encode()).version

    def test_unknown_tag(self) -> None:
        """An unknown tag is a problem, not an exception."""
        [problem] = problems_of("version: 1\nstatistics: {window: !x 5}\n")
        assert "statistics.window: invalid value" in problem

    def test_python_tags_are_not_constructed(self) -> None:
        """Only safe YAML is built: python/object tags are problems."""
        [problem] = problems_of(
            "version: 1\nplugins:\n  p: {x: !!python/name:os.system }\n"
        )
        assert "plugins.p.x: invalid value" in problem

    def test_non_string_keys(self) -> None:
        """Keys must be strings; YAML 1.1 booleans like `on` are caught."""
        assert [
            "t.yaml:2: keys must be strings (quote it), got a number (1)",
            "t.yaml:3: keys must be strings (quote it), got a boolean (true)",
        ] == problems_of("version: 1\n1: x\non: y\n")

    def test_merge_keys(self) -> None:
        """`<<` merges work, and the merging mapping's own keys win."""
        text = (
            "version: 1\nmetrics:\n"
            "  a: &base {bound: upper, target: 1, warning: 2}\n"
            "  b: {<<: *base, target: 0}\n"
        )
        metric = parse_config(text).metrics["b"]
        assert (Bound.UPPER, 0.0, 2.0) == (metric.bound, metric.target, metric.warning)

    def test_alias_bomb_in_options_is_cheap(self) -> None:
        """Nested aliases in plugin options are shared, not expanded."""
        lines = [
            "version: 1",
            "plugins:",
            "  p:",
            "    l0: &l0 [x, x, x, x, x, x, x, x, x]",
        ]
        lines += [
            f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 12)
        ]
        options = parse_config("\n".join(lines) + "\n").plugins["p"].options
        assert options["l11"][0] is options["l10"]  # type: ignore[index]

    def test_recursive_alias(self) -> None:
        """An alias inside its own anchor is rejected."""
        [problem] = problems_of("version: 1\nplugins:\n  p:\n    a: &a [1, *a]\n")
        assert "plugins.p.a[1]: an alias refers to the value that holds it" in problem


class TestEmptyAndShape:
    @pytest.mark.parametrize(
        "text", ["", "\n\n", "# only a comment\n", "null\n", "~\n"]
    )
    def test_empty_config(self, text: str) -> None:
        """An empty file or a null document is one "empty config" problem."""
        [problem] = problems_of(text)
        assert problem.endswith(": empty config")

    def test_minimal_config(self) -> None:
        """`version: 1` alone is valid: every section takes its default, no metrics."""
        config = parse_config("version: 1\n")
        assert dataclasses.replace(Config(), sha256=config.sha256) == config

    def test_null_sections_take_defaults(self) -> None:
        """A section left empty (null) counts as absent."""
        text = "version: 1\nstatistics:\nmetrics:\nknobs:\nprocesses:\nplugins:\n"
        assert Config().statistics == parse_config(text).statistics

    def test_null_plugin_is_enabled_without_options(self) -> None:
        """`plugins: {caching: }` enables caching with no options."""
        plugin = parse_config("version: 1\nplugins:\n  caching:\n").plugins["caching"]
        assert (True, {}) == (plugin.enabled, dict(plugin.options))

    def test_version_must_be_an_int(self) -> None:
        """`version: "1"` is not version 1."""
        assert [
            "t.yaml:1: version: must be an integer, got a string ('1')"
        ] == problems_of('version: "1"\n')


class TestValues:
    def test_ints_accepted_for_floats(self) -> None:
        """An int where a float is expected is fine and becomes a float threshold."""
        metric = parse_config(
            "version: 1\nmetrics:\n  m: {bound: upper, target: 1}\n"
        ).metrics["m"]
        assert (1.0, float) == (metric.target, type(metric.target))

    def test_durations(self) -> None:
        """Durations accept units and bare seconds."""
        config = parse_config(
            "version: 1\nevaluation: {interval: 250ms, for: 2}\n"
            "optimizer: {cooldown: 1h}\n"
        )
        assert (0.25, 2.0, 3600.0) == (
            config.evaluation.interval,
            config.evaluation.for_,
            config.optimizer.cooldown,
        )

    def test_metric_fields(self) -> None:
        """Every metric key lands in its field."""
        text = """\
version: 1
metrics:
  m:
    unit: ms
    description: d
    bound: lower
    target: 3
    warning: 2
    critical: 1
    for: 1m
    window: 50
    optimizers: [a, b]
    guard: true
    group_by: host
"""
        assert (
            MetricConfig(
                name="m",
                bound=Bound.LOWER,
                unit="ms",
                description="d",
                target=3.0,
                warning=2.0,
                critical=1.0,
                for_=60.0,
                window=50,
                optimizers=("a", "b"),
                guard=True,
                group_by="host",
            )
            == parse_config(text).metrics["m"]
        )

    def test_optimizers_need_not_be_configured_plugins(self) -> None:
        """An optimizer need not be listed under plugins (nor be installed yet)."""
        text = (
            "version: 1\nmetrics:\n  m: {bound: upper, optimizers: [not_installed]}\n"
        )
        assert ("not_installed",) == parse_config(text).metrics["m"].optimizers

    def test_metric_order_is_kept(self) -> None:
        """metrics keeps the file's order."""
        text = "version: 1\nmetrics:\n  z: {bound: upper}\n  a: {bound: upper}\n"
        text += "  m: {bound: lower}\n"
        assert ["z", "a", "m"] == list(parse_config(text).metrics)

    def test_metric_window(self) -> None:
        """metric_window(): the override, else statistics.window (unknown names too)."""
        config = parse_config(
            "version: 1\nstatistics: {window: 300}\nmetrics:\n"
            "  a: {bound: upper, window: 40}\n  b: {bound: upper}\n"
        )
        assert (40, 300, 300) == (
            config.metric_window("a"),
            config.metric_window("b"),
            config.metric_window("wire.only"),
        )

    def test_expire_after(self) -> None:
        """statistics.expire_after: 1h by default, a duration; 0/off/false: never."""
        assert 3600.0 == Config().statistics.expire_after
        for text, expected in (
            ("90m", 5400.0),
            ("0", 0.0),
            ("0s", 0.0),
            ("off", 0.0),
            ('"off"', 0.0),
            ("'OFF'", 0.0),
            ("false", 0.0),
            ("1d", 86400.0),
            ("1h30m", 5400.0),
        ):
            config = parse_config(f"version: 1\nstatistics: {{expire_after: {text}}}\n")
            assert expected == config.statistics.expire_after, text

    def test_metric_expire_after(self) -> None:
        """metric_expire_after(): the override (off: 0), else the global value."""
        config = parse_config(
            "version: 1\nstatistics: {expire_after: 2h}\nmetrics:\n"
            "  a: {bound: upper, expire_after: 10m}\n  b: {bound: upper}\n"
            "  c: {bound: upper, warning: 1, expire_after: off}\n"
        )
        assert (600.0, 7200.0, 0.0, 7200.0) == (
            config.metric_expire_after("a"),
            config.metric_expire_after("b"),
            config.metric_expire_after("c"),
            config.metric_expire_after("wire.only"),
        )

    def test_expiry_below_missing_after_blames_missing_after_when_defaulted(
        self,
    ) -> None:
        """A missing_after above the default expiry is reported at missing_after."""
        assert [
            "t.yaml:2: evaluation.missing_after: must not exceed"
            " statistics.expire_after (3600s): a silent series is reported no_data"
            " before it is forgotten"
        ] == problems_of("version: 1\nevaluation: {missing_after: 2h}\n")

    def test_choice_knob(self) -> None:
        """A choice knob keeps its choices and initial."""
        knob = parse_config(
            "version: 1\nknobs:\n  codec: {choices: [lz4, zstd, 3], initial: zstd}\n"
        ).knobs["codec"]
        assert KnobConfig("codec", None, None, None, "zstd", ("lz4", "zstd", 3)) == knob

    def test_process(self) -> None:
        """A process entry with its matcher, interval and children flag."""
        [process] = parse_config(
            "version: 1\nprocesses:\n  - {name: api, match: {pidfile: /run/a.pid},"
            " interval: 5s, children: true}\n"
        ).processes
        assert ("api", {"pidfile": "/run/a.pid"}, 5.0, True) == (
            process.name,
            dict(process.match),
            process.interval,
            process.children,
        )

    def test_sockets_and_control(self) -> None:
        """Group access with its group, and the control allow lists."""
        config = parse_config(
            "version: 1\nsockets: {metrics_access: group, group: perfwarden}\n"
            "control: {allow_uids: [0, 1001], allow_groups: [wheel]}\n"
        )
        assert (MetricsAccess.GROUP, "perfwarden", (0, 1001), ("wheel",)) == (
            config.sockets.metrics_access,
            config.sockets.group,
            config.control.allow_uids,
            config.control.allow_groups,
        )

    def test_enums(self) -> None:
        """Enum fields are the StrEnum members, equal to their strings."""
        config = parse_config("version: 1\nevaluation: {basis: sample}\n")
        assert (Basis.SAMPLE, "sample") == (
            config.evaluation.basis,
            config.evaluation.basis,
        )


class TestImmutability:
    def test_mappings_are_read_only(self) -> None:
        """metrics, knobs, plugins, match and options cannot be changed."""
        config = parse_config(
            "version: 1\nmetrics: {m: {bound: upper}}\n"
            "knobs: {k: {min: 0, max: 1, initial: 0}}\n"
            "processes: [{name: a, match: {pid: 1}}]\n"
            "plugins: {p: {opt: {nested: [1, {x: 2}]}}}\n"
        )
        for mapping in (
            config.metrics,
            config.knobs,
            config.plugins,
            config.processes[0].match,
            config.plugins["p"].options,
            config.plugins["p"].options["opt"],
        ):
            assert isinstance(mapping, MappingProxyType)
        nested = config.plugins["p"].options["opt"]["nested"]  # type: ignore[index]
        assert (1, MappingProxyType({"x": 2})) == nested

    def test_records_are_frozen(self) -> None:
        """The records refuse attribute assignment."""
        config = parse_config("version: 1\n")
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.version = 2  # type: ignore[misc]


class TestLoad:
    def test_unreadable_file(self, tmp_path: pathlib.Path) -> None:
        """A missing file is one problem on line 0."""
        path = tmp_path / "missing.yaml"
        with pytest.raises(ConfigError) as info:
            load_config(path)
        [problem] = info.value.problems
        assert (str(path), 0, "") == (problem.path, problem.line, problem.key)
        assert "cannot read the config file" in problem.message

    def test_directory(self, tmp_path: pathlib.Path) -> None:
        """A directory is not a config file."""
        with pytest.raises(ConfigError, match="cannot read the config file"):
            load_config(tmp_path)

    def test_source_and_hash(self, tmp_path: pathlib.Path) -> None:
        """source is the path given; sha256 is over the file's bytes."""
        path = tmp_path / "c.yaml"
        path.write_bytes(b"version: 1\n")
        config = load_config(path)
        assert (str(path), hashlib.sha256(b"version: 1\n").hexdigest()) == (
            config.source,
            config.sha256,
        )

    def test_parse_config_source(self) -> None:
        """parse_config names the source in the model and in problems."""
        assert "<x>" == parse_config("version: 1\n", source="<x>").source
        with pytest.raises(
            ConfigError, match=r"^<x>:1: version: unsupported version 7"
        ):
            parse_config("version: 7\n", source="<x>")


class TestResolveConfigPath:
    def test_cli_wins(self, tmp_path: pathlib.Path) -> None:
        """--config beats the environment."""
        (tmp_path / "perfwarden.yaml").write_text("version: 1\n")
        environ = {
            "PERFWARDEN_CONFIG": "/env.yaml",
            "CONFIGURATION_DIRECTORY": str(tmp_path),
        }
        assert pathlib.Path("/cli.yaml") == resolve_config_path("/cli.yaml", environ)

    def test_env_var_next(self, tmp_path: pathlib.Path) -> None:
        """$PERFWARDEN_CONFIG beats systemd's configuration directory."""
        (tmp_path / "perfwarden.yaml").write_text("version: 1\n")
        environ = {
            "PERFWARDEN_CONFIG": "/env.yaml",
            "CONFIGURATION_DIRECTORY": str(tmp_path),
        }
        assert pathlib.Path("/env.yaml") == resolve_config_path(None, environ)

    def test_systemd_directory_when_the_file_exists(
        self, tmp_path: pathlib.Path
    ) -> None:
        """$CONFIGURATION_DIRECTORY/perfwarden.yaml is used when it exists."""
        (tmp_path / "perfwarden.yaml").write_text("version: 1\n")
        environ = {"CONFIGURATION_DIRECTORY": str(tmp_path)}
        assert tmp_path / "perfwarden.yaml" == resolve_config_path(None, environ)

    def test_systemd_first_directory_with_a_file(self, tmp_path: pathlib.Path) -> None:
        """Of several systemd directories, the first holding perfwarden.yaml wins."""
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "perfwarden.yaml").write_text("version: 1\n")
        environ = {"CONFIGURATION_DIRECTORY": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
        assert tmp_path / "b" / "perfwarden.yaml" == resolve_config_path(None, environ)

    def test_systemd_directory_without_the_file(self, tmp_path: pathlib.Path) -> None:
        """An empty systemd configuration directory falls through to the default."""
        environ = {"CONFIGURATION_DIRECTORY": str(tmp_path)}
        assert default_config_path() == resolve_config_path(None, environ)

    def test_default_last(self) -> None:
        """With nothing set, the packaged default."""
        assert default_config_path() == resolve_config_path(None, {})

    def test_empty_values_count_as_unset(self) -> None:
        """Empty --config and $PERFWARDEN_CONFIG are ignored."""
        environ = {"PERFWARDEN_CONFIG": "", "CONFIGURATION_DIRECTORY": ""}
        assert default_config_path() == resolve_config_path("", environ)


class TestPluginTiming:
    """exec and webhook timings must fit in a plugin call (plugin_timeout less
    its grace); other plugins' options are their own."""

    @staticmethod
    def config(plugins: str, plugin_timeout: str = "5s") -> str:
        return (
            f"version: 1\noptimizer: {{plugin_timeout: {plugin_timeout}}}\n"
            f"plugins:\n{plugins}"
        )

    def test_exec_timeout_up_to_the_budget(self) -> None:
        """4.5 s fits the default 5 s; 4.6 s does not, and the fix is named."""
        parse_config(self.config("  exec: {timeout: 4.5}\n"))
        (problem,) = problems_of(self.config("  exec: {timeout: 4.6s}\n"))
        assert problem.startswith("t.yaml:4: plugins.exec.timeout: 4.6s is longer")
        assert problem.endswith("raise optimizer.plugin_timeout to at least 5.1s")

    @pytest.mark.parametrize("timeout", [0.01, 2, 2.5, 4.5, 10, 59.99, 3600])
    def test_suggested_plugin_timeout_is_accepted(self, timeout: float) -> None:
        """The plugin_timeout the message suggests does accept the timeout."""
        (problem,) = problems_of(
            self.config(f"  exec: {{timeout: {timeout}}}\n", "0.01s")
        )
        suggested = problem.rsplit(" ", 1)[1]
        parse_config(self.config(f"  exec: {{timeout: {timeout}}}\n", suggested))

    def test_durations_and_disabled_plugins(self) -> None:
        """Durations are read as in the config; a disabled plugin is not checked."""
        parse_config(self.config("  exec: {timeout: 4500ms}\n"))
        parse_config(self.config("  exec: {enabled: false, timeout: 1h}\n"))

    def test_invalid_values_left_to_the_plugin(self) -> None:
        """A value the plugin will reject at load is not a config problem."""
        parse_config(self.config("  exec: {timeout: soon}\n"))
        parse_config(self.config("  webhook: {timeout: 0, retries: many}\n"))

    def test_webhook_defaults_adapt(self) -> None:
        """Only a URL: the retries stop at the deadline, whatever plugin_timeout."""
        parse_config(self.config("  webhook: {url: 'http://h/'}\n", "0.5s"))

    def test_webhook_documented_example_fits(self) -> None:
        """timeout 1 s with the default retries and backoff is exactly 4.5 s."""
        parse_config(self.config("  webhook: {timeout: 1}\n"))

    def test_webhook_worst_case(self) -> None:
        """All attempts and backoffs asked for must fit; the problem is reported
        on the line of the option that multiplies them."""
        (problem,) = problems_of(self.config("  webhook: {timeout: 2s}\n"))
        assert "plugins.webhook.timeout: timeout 2s x 3 attempts + 1.5s" in problem
        assert "= 7.5s is longer than a plugin call may run 4.5s" in problem

    def test_webhook_backoffs_alone(self) -> None:
        """Without a timeout, the backoffs must end before the deadline."""
        (problem,) = problems_of(self.config("  webhook: {retries: 4}\n"))
        assert "plugins.webhook.retries: retry 4 would start only after 7.5s" in (
            problem
        )
        parse_config(self.config("  webhook: {retries: 4}\n", "8.5s"))

    def test_defaults_match_the_plugin(self) -> None:
        """The defaults used here are the webhook plugin's own."""
        plugin = WebhookOptimizer({"url": "http://h/"})
        assert (WEBHOOK_RETRIES, WEBHOOK_BACKOFF) == (plugin.retries, plugin.backoff)


class TestFleetPriorWeight:
    """optimizer.fleet_prior_weight: more than 0, at most 10, a number."""

    @pytest.mark.parametrize("value", ["0.01", "0.5", "1", "10"])
    def test_accepted(self, value: str) -> None:
        """Any number in (0, 10] is the weight; the default is 1."""
        config = parse_config(
            f"version: 1\noptimizer: {{fleet_prior_weight: {value}}}\n"
        )
        assert float(value) == config.optimizer.fleet_prior_weight
        assert 1.0 == parse_config("version: 1\n").optimizer.fleet_prior_weight

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("0", "must be greater than 0 and at most 10"),
            ("-1", "must be greater than 0 and at most 10"),
            ("10.5", "must be greater than 0 and at most 10"),
            (".nan", "must be a finite number"),
            ("half", "must be a number, got a string ('half')"),
            ("true", "must be a number, got a boolean (true)"),
        ],
    )
    def test_refused_with_its_line(self, value: str, message: str) -> None:
        """A wrong weight is reported as PATH:LINE: key: message."""
        text = (
            f"version: 1\noptimizer:\n  cooldown: 1m\n  fleet_prior_weight: {value}\n"
        )
        problem = f"t.yaml:4: optimizer.fleet_prior_weight: {message}"
        assert [problem] == problems_of(text)
