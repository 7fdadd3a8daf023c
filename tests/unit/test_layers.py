"""The package's layers are folders, and a test holds them:

- ragloop.airflow: the Airflow layer (hook and connections, task groups and operators, DAG
  factories and assets, the plugins' apps, lineage, asset events, dag.test() for the CLI, doctor);
- ragloop.local: local operations (local Airflow environment, local Weaviate, processes, the
  cluster on one machine, the ONNX export);
- ragloop.cli: the `ragloop` command, the entry point that drives both;
- the core: every other module (documents, chunking, embedding, index, ingest, grading, feedback,
  runs, sources, answering, staging). A new module is core unless it is put in one of those folders.

The core loads no Airflow when imported (a fresh interpreter imports every core module and looks
for `airflow` in sys.modules), and no core module imports a module of the upper layers anywhere in
its file (read with ast: top-level, deferred inside functions, under TYPE_CHECKING), except the few
deferred imports in ALLOWED that resolve a connection through Airflow's secrets backends. Local
operations import nothing of the Airflow layer, and the Airflow layer nothing of local operations."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ragloop

PACKAGE = Path(ragloop.__file__).parent
AIRFLOW, LOCAL, CLI = "ragloop.airflow", "ragloop.local", "ragloop.cli"
UPPER = (AIRFLOW, LOCAL, CLI)

# The only imports of an upper layer a core module may make: deferred (inside a function), each the
# way a connection is read through Airflow's secrets backends (absent told apart from unreadable,
# docs/connections.md). Moving them up would put the run store, the staging store, the OpenAI
# clients, git credentials and the Weaviate client above the code that needs them.
ALLOWED = {
    ("ragloop.chat", "ragloop.airflow.connections"),  # the OpenAI client from openai_default
    ("ragloop.embedding.openai_api", "ragloop.airflow.connections"),  # the same, for embeddings
    ("ragloop.index.connection", "ragloop.airflow.hooks.weaviate"),  # the hook makes the Weaviate client
    ("ragloop.runs.connection", "ragloop.airflow.connections"),  # ragloop_runs_default, or the SQLite file
    ("ragloop.sources.docs.git", "ragloop.airflow.connections"),  # a git repository's token
    ("ragloop.staging", "ragloop.airflow.connections"),  # staging_conn_id must exist
}


def layer(module: str) -> str:
    """"airflow", "local", "cli" or "core"."""
    top = next((top for top in UPPER if module == top or module.startswith(top + ".")), None)
    return top.removeprefix("ragloop.") if top else "core"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(name: str, source: str, modules: set[str]) -> list[tuple[str, bool]]:
    """Every ragloop module `source` (the file of module `name`) imports, anywhere in the file, and
    whether that import is deferred (inside a function). `from a import b` imports a.b when that is
    one of `modules`, else a."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: ragloop imports by absolute names"
            base = node.module or ""
            if base == "ragloop" or base.startswith("ragloop."):
                found.extend((f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base, deferred) for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, deferred) for alias in node.names if alias.name.startswith("ragloop"))
        inner = deferred or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def crossings(files: dict[str, str]) -> list[tuple[str, str, bool]]:
    """(module, imported module, deferred) for every import that goes against the layers: core ->
    any upper layer, local <-> airflow, airflow or local -> cli (the cli may import every layer)."""
    bad = []
    modules = set(files) | {module_name(path) for path in PACKAGE.rglob("*.py")}
    for name, source in sorted(files.items()):
        here = layer(name)
        for target, deferred in imports(name, source, modules):
            there = layer(target)
            if there == here or there == "core" or here == "cli":  # the command drives both layers
                continue
            bad.append((name, target, deferred))
    return sorted(set(bad))


def package_files() -> dict[str, str]:
    return {module_name(path): path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}


def test_the_layers_are_folders():
    for top in UPPER:
        assert (PACKAGE.parent / Path(*top.split(".")) / "__init__.py").is_file(), top


def test_no_module_imports_across_the_layers_but_the_allowed_connection_lookups():
    bad = crossings(package_files())
    allowed = {(name, target) for name, target, deferred in bad if (name, target) in ALLOWED and deferred}
    assert [b for b in bad if (b[0], b[1]) not in allowed] == [], "move what is needed down into the core"
    # Exactly those: a lookup that is gone (or became a top-level import) is dropped from ALLOWED.
    assert allowed == ALLOWED


def test_the_check_sees_an_import_of_an_upper_layer():
    files = {
        "ragloop.documents": "from ragloop.airflow.hooks.weaviate import RagloopWeaviateHook\n",
        "ragloop.chunking": "def f():\n    from ragloop.local import localenv\n",
        "ragloop.tokens": "import typing\nif typing.TYPE_CHECKING:\n    from ragloop.cli.common import emit\n",
        "ragloop.local.processes": "from ragloop.airflow.connections import get_connection\n",
        "ragloop.chat": "from ragloop.airflow.connections import openai_client\n",  # allowed only when deferred
    }
    assert crossings(files) == [
        ("ragloop.chat", "ragloop.airflow.connections", False),
        ("ragloop.chunking", "ragloop.local.localenv", True),
        ("ragloop.documents", "ragloop.airflow.hooks.weaviate", False),
        ("ragloop.local.processes", "ragloop.airflow.connections", False),
        ("ragloop.tokens", "ragloop.cli.common", False),
    ]


PROBE = """
import importlib, json, pkgutil, sys
import ragloop
outside = tuple(json.loads(sys.argv[1]))
core, loaders = [], []
for info in pkgutil.walk_packages(ragloop.__path__, prefix="ragloop."):
    if any(info.name == p or info.name.startswith(p + ".") for p in outside):
        continue
    had = "airflow" in sys.modules
    importlib.import_module(info.name)
    core.append(info.name)
    if not had and "airflow" in sys.modules:
        loaders.append(info.name)
print(json.dumps({"core": core, "loaders": loaders}))
"""


def probe(outside: tuple[str, ...]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(outside)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def core_probe() -> dict:
    return probe(UPPER)


def test_the_core_loads_no_airflow(core_probe):
    assert core_probe["loaders"] == [], "core modules that load Airflow (move them up, or defer the import)"


def test_the_core_is_most_of_the_package(core_probe):
    # The upper folders stay small: the layer rule means something only while most code is core.
    names = set(core_probe["core"])
    assert {"ragloop.index.weaviate_index", "ragloop.ingest.plan", "ragloop.grading.writeback", "ragloop.runs.store",
            "ragloop.answer", "ragloop.sources.registry", "ragloop.feedback.boosts", "ragloop.staging",
            "ragloop.catalog", "ragloop.index.endpoint", "ragloop.paths"} <= names
    assert not any(layer(name) != "core" for name in names)
    assert len(names) >= 70, len(names)


def test_the_probe_sees_a_module_that_loads_airflow():
    # With the Airflow layer counted as core, the probe must name the first of its modules it
    # imports (after that, Airflow is loaded and no later module can be caught).
    found = probe((LOCAL, CLI))["loaders"]
    assert len(found) == 1 and layer(found[0]) == "airflow", found
