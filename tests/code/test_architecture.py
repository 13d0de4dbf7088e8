"""The shape of the code, held by tests: dependency direction, no import cycles, module size,
and dvc.yaml deps that follow each stage's imports (so a change can never leave a stale stage)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from isoclr.artifacts import STAGE_INPUTS, STAGE_OUTPUTS, STAGES, Paths

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "isoclr"
MAX_MODULE_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imported(node: ast.AST, module: str) -> set[str]:
    """Names of the package's modules an import statement loads (function-level imports included)."""
    names = set()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.level:
        base = module.rsplit(".", node.level)[0]
        names = {f"{base}.{node.module}"} if node.module else {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in names if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its body."""
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            edges |= _imported(node, name)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def closure(graph: dict[str, set[str]], roots: set[str]) -> set[str]:
    """Every module the roots load, the packages that hold them included."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b runs a/__init__ first
        todo += graph[name]
    return seen


def test_tarjan_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_library_never_imports_components_or_pipelines():
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            offenders += [f"{name} imports {t}" for t in targets if t.split(".")[0] in ("components", "pipelines")]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_fits_one_sitting(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{MODULES[name]} has {lines} lines: split it along its seams"


def _dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _listed(entries: list) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries}


def stage_sources(stage: str) -> set[str]:
    """The source files a stage runs: the closure of its module and of the runner that loads it."""
    modules = closure(import_graph(), {f"{PACKAGE}.{stage}", f"{PACKAGE}.stage"})
    return {str(MODULES[m].relative_to(ROOT)) for m in modules}


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_stage_lists_exactly_the_code_it_runs(stage):
    listed = {d for d in _listed(_dvc_stages()[stage]["deps"]) if d.startswith("src/")}
    expected = stage_sources(stage)
    assert listed == expected, (
        f"dvc.yaml stage {stage}: add {sorted(expected - listed)}, remove {sorted(listed - expected)}"
    )


def _covers(declared: set[str], path: str) -> bool:
    """``path`` is declared itself, or files inside it are (the probe folder's tables and plots)."""
    return path in declared or any(d.startswith(path + "/") for d in declared)


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_stage_artifacts_are_the_paths_of_the_code(stage):
    defaults = Paths()
    declared = _dvc_stages()[stage]
    outs = _listed(declared.get("outs", [])) | _listed(declared.get("metrics", [])) | _listed(declared.get("plots", []))
    expected = {str(getattr(defaults, f)) for f in STAGE_OUTPUTS[stage]}
    # resumable state, outside the staged outputs
    kept = {"train": {str(defaults.checkpoints)}, "reconstruct": {str(defaults.reconstruction_checkpoints)}}.get(
        stage, set()
    )
    assert all(_covers(outs, path) for path in expected), f"dvc.yaml stage {stage} does not declare {expected}"
    strays = {o for o in outs - kept if not any(o == p or o.startswith(p + "/") for p in expected)}
    assert not strays, f"dvc.yaml stage {stage} declares outputs the code does not write: {strays}"
    deps = _listed(declared["deps"])
    missing = [f for f in STAGE_INPUTS[stage] if not _covers(deps, str(getattr(defaults, f)))]
    assert not missing, f"dvc.yaml stage {stage} does not list its inputs {missing}"


def test_dvc_stages_list_the_data_files_params_yaml_names():
    from isoclr.config import load

    cfg = load(ROOT / "params.yaml")
    named = {
        "validate": {f for a in cfg.data.annotations for f in a.files()},
        "pairs": {cfg.data.paralogs} | ({cfg.data.orthologs.table} if cfg.data.orthologs else set()),
        "probe": {t.file for t in cfg.probe.tasks if t.file}
        | ({cfg.data.go} if any(t.source == "go" for t in cfg.probe.tasks) else set()),
        "finetune": {t.file for t in cfg.probe.tasks if t.file and t.name in cfg.finetune.tasks},
    }
    stages = _dvc_stages()
    for stage, files in named.items():
        listed = {d for d in _listed(stages[stage]["deps"]) if d.startswith(f"{cfg.data.dir}/")}
        assert listed == {f"{cfg.data.dir}/{f}" for f in files}, f"dvc.yaml stage {stage}"
