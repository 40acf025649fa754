"""docs/fleet.md: every manifest and config block in it is parsed and checked.

Kubernetes objects structurally (the sidecar's config comes from the ConfigMap,
its probes use perfwarden's paths on the port it listens on), perfwarden configs by
perfwarden's own parser, Prometheus configs by ``promtool check config``, the
Alertmanager config by ``amtool check-config``, the learning export by the
importer. Every block must be one of these, so a new one cannot go unchecked.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from perfwarden.config.load import parse_config
from perfwarden.optimize.learning import merge_exports

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
