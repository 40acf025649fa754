"""docs/fleet.md: every manifest and config block in it is parsed and checked.

Kubernetes objects structurally (the sidecar's config comes from the ConfigMap,
its probes use perfwarden's paths on the port it listens on), perfwarden configs by
perfwarden's own parser, Prometheus configs by ``promtool check config``, the
Alertmanager config by ``amtool check-config``, the learning export by the
importer, the shell snippets and the sidecar's ``postStart`` hook by ``sh -n``
and every ``perfwarden`` command in them by perfwarden's own parser; the hook runs
against a real daemon. Every block must be one of these, so a new one cannot go
unchecked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from perfwarden.cli import build_parser
from perfwarden.config.load import parse_config
from perfwarden.optimize.learning import merge_exports
from perfwarden.testing import DaemonProcess

if TYPE_CHECKING:
    from perfwarden.config.load import Config

DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"
BLOCK = re.compile(r"```(?P<lang>\w+)\n(?P<body>.*?)```", re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [m["body"] for m in BLOCK.finditer(DOC.read_text()) if m["lang"] == lang]


def kind_of(document: dict[str, Any]) -> str:
    if "apiVersion" in document:
        return "kubernetes"
    if "version" in document and "metrics" in document:
        return "perfwarden"
    if "route" in document and "receivers" in document:
        return "alertmanager"
    if {"scrape_configs", "remote_write"} & document.keys():
        return "prometheus"
    return "unknown"


def yaml_documents() -> list[tuple[str, str]]:
    """(kind, text) of every YAML block (a block may hold several documents)."""
    out = []
    for body in blocks("yaml"):
        kinds = {kind_of(d) for d in yaml.safe_load_all(body)}
        assert len(kinds) == 1, kinds
        out.append((kinds.pop(), body))
    return out


def test_every_block_is_checked() -> None:
    """No YAML block of an unknown kind; the shell and JSON blocks are known."""
    kinds = [kind for kind, _ in yaml_documents()]
    assert "unknown" not in kinds
    assert {"kubernetes", "perfwarden", "prometheus", "alertmanager"} == set(kinds)
    assert {"yaml", "sh", "json"} == {
        m["lang"] for m in BLOCK.finditer(DOC.read_text())
    }


def sidecar_config() -> tuple[dict[str, Any], Config]:
    objects = {
        d["kind"]: d
        for kind, text in yaml_documents()
        if kind == "kubernetes"
        for d in yaml.safe_load_all(text)
    }
    assert {"ConfigMap", "Deployment", "PodMonitor"} == objects.keys()
    config_map = objects["ConfigMap"]
    return objects, parse_config(config_map["data"]["perfwarden.yaml"])


def test_the_configmap_holds_a_valid_perfwarden_config() -> None:
    """The thresholds in the ConfigMap are a config perfwarden accepts."""
    _, config = sidecar_config()
    assert "context_loading_time" in config.metrics
    assert ("0.0.0.0", 9464) == config.http.listen  # noqa: S104 - the doc's value
    assert config.alertmanager.urls


def test_the_sidecar_is_wired_to_the_configmap_and_the_app() -> None:
    """Config volume from the ConfigMap (no subPath), shared sockets, probes on
    /-/ready and /-/healthy at the listen port, a native sidecar."""
    objects, config = sidecar_config()
    assert config.http.listen is not None
    spec = objects["Deployment"]["spec"]["template"]["spec"]
    (sidecar,) = spec["initContainers"]
    (app,) = spec["containers"]
    assert "Always" == sidecar["restartPolicy"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    config_volume = volumes["perfwarden-config"]
    assert (
        objects["ConfigMap"]["metadata"]["name"] == config_volume["configMap"]["name"]
    )
    assert all("subPath" not in m for m in sidecar["volumeMounts"])
    config_path = sidecar["args"][sidecar["args"].index("--config") + 1]
    assert Path(config_path).parent == Path(mounts["perfwarden-config"]["mountPath"])
    assert ["run", "--config", config_path] == sidecar["args"]
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    app_env = {e["name"]: e["value"] for e in app["env"]}
    sockets = env["PERFWARDEN_SOCKET_DIR"]
    assert sockets == app_env["PERFWARDEN_SOCKET_DIR"]
    shared = {m["mountPath"]: m["name"] for m in app["volumeMounts"]}
    assert mounts[shared[sockets]]["mountPath"] == sockets
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert config.http.listen[1] == ports["perfwarden"]
    assert {"path": "/-/ready", "port": "perfwarden"} == sidecar["readinessProbe"][
        "httpGet"
    ]
    assert "/-/healthy" == sidecar["livenessProbe"]["httpGet"]["path"]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    deployment_selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert deployment_selector.items() <= pod_labels.items()
    monitor = objects["PodMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= pod_labels.items()
    assert ["perfwarden"] == [e["port"] for e in monitor["podMetricsEndpoints"]]


def test_the_perfwarden_configs_parse() -> None:
    """The alertmanager: example is a config perfwarden accepts."""
    configs = [parse_config(t) for k, t in yaml_documents() if k == "perfwarden"]
    assert configs
    assert all(len(c.alertmanager.urls) == 2 for c in configs)


def _tool(name: str, package: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        pytest.skip(f"no {name} (apt-get install -y --no-install-recommends {package})")
    return binary


@pytest.mark.parametrize(
    "index", range(len([1 for k, _ in yaml_documents() if k == "prometheus"]))
)
def test_the_prometheus_configs_pass_promtool(index: int, tmp_path: Path) -> None:
    """Scrape, federation and remote_write configs as Prometheus reads them."""
    promtool = _tool("promtool", "prometheus")
    text = [t for k, t in yaml_documents() if k == "prometheus"][index]
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_the_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    """The routing example as Alertmanager reads it."""
    amtool = _tool("amtool", "prometheus-alertmanager")
    ((text),) = [t for k, t in yaml_documents() if k == "alertmanager"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    result = subprocess.run(
        [amtool, "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stdout + result.stderr


def test_the_learning_export_example_imports() -> None:
    """The documented export is one the importer takes."""
    (text,) = blocks("json")
    merged = merge_exports([json.loads(text)])
    assert ["search-7f9c-2"] == merged["hosts"]
    assert 2 == len(merged["by_metric"])


#: Shell words after which a word is a command's name (``kubectl exec ... --``).
_COMMAND_POSITION = frozenset({"", "&&", "||", ";", "|", "(", "--", "do", "then"})
_END_OF_COMMAND = frozenset({"&&", "||", ";", "|", ")", ">", ">>", "<", "&"})


def post_start_hook() -> str:
    """The sidecar's ``postStart`` script (``sh -c SCRIPT``)."""
    objects, _ = sidecar_config()
    (sidecar,) = objects["Deployment"]["spec"]["template"]["spec"]["initContainers"]
    command = sidecar["lifecycle"]["postStart"]["exec"]["command"]
    assert ["sh", "-c"] == command[:2]
    return str(command[2])


def shell_scripts() -> list[str]:
    return [*blocks("sh"), post_start_hook()]


def perfwarden_commands(script: str) -> list[list[str]]:
    """The arguments of every ``perfwarden`` command in a shell script."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        for index, word in enumerate(words):
            before = words[index - 1] if index else ""
            if word == "perfwarden" and before in _COMMAND_POSITION:
                args = []
                for arg in words[index + 1 :]:
                    if arg in _END_OF_COMMAND:
                        break
                    args.append(arg)
                commands.append(args)
    return commands


def test_the_shell_snippets_pass_sh_n() -> None:
    """Every shell block and the hook are valid POSIX sh."""
    for script in shell_scripts():
        result = subprocess.run(
            ["sh", "-n"], input=script, capture_output=True, text=True, check=False
        )
        assert 0 == result.returncode, f"{result.stderr}\n{script}"


def test_every_perfwarden_command_parses() -> None:
    """Each documented command is one perfwarden's command line accepts."""
    output = ["-o", "learning-$(hostname).json"]
    commands = [c for script in shell_scripts() for c in perfwarden_commands(script)]
    assert [
        ["learning", "export", *output],
        ["learning", "export", "--state-dir", "/var/lib/perfwarden", *output],
        ["learning", "import", "learning-*.json", "--weight", "0.5"],
        ["learning", "export"],
        ["learning", "import", "$@", "--weight", "0.5"],
    ] == commands
    parser = build_parser()
    for args in commands:
        try:
            parser.parse_args(args)
        except SystemExit:  # argparse has printed why
            pytest.fail(f"perfwarden {shlex.join(args)} does not parse")


def test_the_hook_imports_the_published_configmap() -> None:
    """The hook reads the volume of the ConfigMap the snippet publishes."""
    objects, _ = sidecar_config()
    spec = objects["Deployment"]["spec"]["template"]["spec"]
    (sidecar,) = spec["initContainers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    fleet = volumes[mounts["/etc/perfwarden-fleet"]]["configMap"]
    assert fleet["optional"] is True
    published = re.search(r"kubectl create configmap (\S+)", "".join(blocks("sh")))
    assert published is not None
    assert fleet["name"] == published[1]
    assert "set -- /etc/perfwarden-fleet/*.json" in post_start_hook()


def run_hook(fleet: Path, daemon: DaemonProcess) -> subprocess.Popen[str]:
    """The hook, with the fleet directory at ``fleet`` and this perfwarden."""
    script = post_start_hook().replace("/etc/perfwarden-fleet", str(fleet))
    bin_dir = Path(sys.executable).parent
    return subprocess.Popen(
        ["sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PERFWARDEN_SOCKET_DIR": str(daemon.socket_dir),
        },
    )


def test_the_hook_waits_for_the_daemon_and_imports(tmp_path: Path) -> None:
    """Started before the daemon, the hook retries until it answers, then
    imports every export in the directory at the documented weight."""
    if shutil.which("perfwarden", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("perfwarden's console script is not installed beside python")
    (text,) = blocks("json")
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "search-1.json").write_text(text)
    (fleet / "search-2.json").write_text(text.replace("search-7f9c-2", "search-2"))
    with DaemonProcess("version: 1\n") as daemon:
        daemon.stop()
        hook = run_hook(fleet, daemon)
        assert hook.stdout is not None
        assert "no perfwarden daemon answers" in hook.stdout.readline()
        daemon.start()  # while the hook waits to try again
        output, _ = hook.communicate(timeout=120)
        assert 0 == hook.returncode, output
        assert "imported 24 trials of 2 strategies" in output
        imported = daemon.cli_json("status")["learning"]["fleet_import"]
        assert 0.5 == imported["weight"]
        assert ["search-2", "search-7f9c-2"] == sorted(imported["hosts"])


def test_the_hook_without_exports_does_nothing(tmp_path: Path) -> None:
    """No ConfigMap (an empty directory): the hook ends at once, successfully."""
    with DaemonProcess("version: 1\n") as daemon:
        hook = run_hook(tmp_path, daemon)
        output, _ = hook.communicate(timeout=60)
        assert (0, "") == (hook.returncode, output)
        assert daemon.cli_json("status")["learning"]["fleet_import"] is None
