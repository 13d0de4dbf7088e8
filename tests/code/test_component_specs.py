"""Each Kubeflow component on its own, as opendatahub's pipelines-components test theirs: it compiles to a
component spec, its signature is typed artifacts and plain parameters, and its body is a thin adapter."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from kfp import compiler
from kfp.dsl.base_component import BaseComponent

from components import IMAGE

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = sorted(p.parent.name for p in (ROOT / "components").glob("*/component.py"))
MAX_BODY_STATEMENTS = 12  # a component body parses its artifacts and calls the library, nothing more


def _components() -> list[tuple[str, BaseComponent]]:
    found = []
    for folder in FOLDERS:
        module = importlib.import_module(f"components.{folder}.component")
        found += [(folder, obj) for obj in vars(module).values() if isinstance(obj, BaseComponent)]
    return found


COMPONENTS = _components()
IDS = [c.name for _, c in COMPONENTS]


def test_every_component_folder_has_a_component_and_a_readme():
    assert FOLDERS and {folder for folder, _ in COMPONENTS} == set(FOLDERS)
    for folder in FOLDERS:
        readme = ROOT / "components" / folder / "README.md"
        assert readme.is_file() and "isoclr" in readme.read_text(), f"components/{folder}/README.md"


@pytest.mark.parametrize(("folder", "component"), COMPONENTS, ids=IDS)
def test_component_compiles_to_a_spec_in_the_project_image(folder, component, tmp_path):
    path = tmp_path / f"{component.name}.yaml"
    compiler.Compiler().compile(component, str(path))
    spec = yaml.safe_load(path.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 1
    container = next(iter(executors.values()))["container"]
    assert container["image"] == IMAGE
    assert "pip install" not in " ".join(container["command"])  # the package comes with the image, not at run time


@pytest.mark.parametrize(("folder", "component"), COMPONENTS, ids=IDS)
def test_component_signature_is_typed(folder, component):
    signature = inspect.signature(component.python_func)
    for name, parameter in signature.parameters.items():
        assert parameter.annotation is not inspect.Parameter.empty, f"{component.name}.{name} has no type"
    # Files travel as typed artifacts (Input[Dataset], Output[Model], ...), never as path strings.
    for name in signature.parameters:
        assert not name.endswith("_path"), f"{component.name}.{name}: pass an artifact, not a path"


@pytest.mark.parametrize(("folder", "component"), COMPONENTS, ids=IDS)
def test_component_body_is_a_thin_adapter_over_the_library(folder, component):
    tree = ast.parse(inspect.getsource(component.python_func))
    body = tree.body[0].body
    statements = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    assert len(statements) <= MAX_BODY_STATEMENTS, f"{component.name}: move the logic into the isoclr package"
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert "isoclr" in imported, f"{component.name} does not call the library"
    assert not imported & {"components", "pipelines"}
