"""The package's layers: which subpackage may import which, and no import circles.

Read from the source with :mod:`ast`, so a type-only import (under
``TYPE_CHECKING``) counts as much as a runtime one: both are a dependency a reader
has to follow. Function-local imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "perfwarden"

#: subpackage (or root module) -> the perfwarden parts it must never import.
FORBIDDEN: dict[str, set[str]] = {
    "ingest": {"alerts", "optimize", "views", "commands", "control", "app", "state"},
    # series may read the line format's vocabulary (``ingest.statsd``'s types)
    "series": {"alerts", "optimize", "views", "commands", "control", "app"},
    "alerts": {"ingest", "optimize", "views", "commands", "control", "app", "state"},
    "config": {
        "ingest", "series", "alerts", "optimize", "views", "commands", "control",
        "app", "state", "sampling",
    },
    "logs": {
        "ingest", "series", "alerts", "optimize", "views", "commands", "control",
        "app", "state", "sampling", "config",
    },
    "sampling": {"alerts", "optimize", "views", "commands", "control", "app"},
    "optimize": {"ingest", "views", "commands", "control", "app"},
    "state": {"views", "commands", "control", "app"},
    "views": {"commands", "app"},
    "recording": {
        "series", "alerts", "optimize", "views", "commands", "control", "app",
    },
    "backtest": {"optimize", "views", "commands", "control", "app", "state"},
    "routes": {"optimize", "commands", "control", "app", "state"},
    "control": {"commands", "app"},
}  # fmt: skip

#: The plugin contract imports nothing of the core but the deadline it exposes.
PLUGIN_API_MAY_IMPORT = {"perfwarden.deadline"}
#: The client is what applications import: its own modules and the plugin contract's
#: value type, nothing of the daemon (the wire format and paths it needs are its own).
CLIENT_MAY_IMPORT = {
    "perfwarden.client",
    "perfwarden.plugin_api",  # for the KnobValue type only
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def perfwarden_imports(path: Path) -> set[str]:
    """Every ``perfwarden.*`` module this file imports, resolved to module names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("perfwarden."))
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.level:
                base = module_name(path).split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module])
            else:
                module = node.module
            if module == "perfwarden" or module.startswith("perfwarden."):
                for alias in node.names:
                    candidate = f"{module}.{alias.name}"
                    found.add(candidate if candidate in MODULES else module)
    return found


MODULES = {
    module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
}
GRAPH = {name: perfwarden_imports(path) - {name} for name, path in MODULES.items()}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_forbidden_layer_import(module: str) -> None:
    forbidden = FORBIDDEN.get(part_of(module), set())
    wrong = sorted(i for i in GRAPH[module] if part_of(i) in forbidden)
    assert not wrong, f"{module} imports {wrong}"


def test_plugin_api_imports_only_the_deadline() -> None:
    assert GRAPH["perfwarden.plugin_api"] <= PLUGIN_API_MAY_IMPORT


def test_client_imports_nothing_of_the_daemon() -> None:
    for module, imports in GRAPH.items():
        if part_of(module) == "client":
            outside = {
                i for i in imports if not any(
                    i == allowed or i.startswith(allowed + ".")
                    for allowed in CLIENT_MAY_IMPORT
                )
            }  # fmt: skip
            assert not outside, f"{module} imports {sorted(outside)}"


def test_no_import_circle() -> None:
    """Tarjan-free: a depth-first search that reports the first cycle it meets."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for dep in sorted(GRAPH.get(module, ())):
            if dep not in GRAPH:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_the_graph_is_read() -> None:
    """Guards the guards: the app's imports are found, so the checks above see edges."""
    assert "perfwarden.control.handlers" in GRAPH["perfwarden.app"]
    assert "perfwarden.series.store" in GRAPH["perfwarden.ingest.receivers"]
