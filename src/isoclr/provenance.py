"""Where a model came from: code commit, data version, package versions, parameters.

The commit is "-dirty" only when the source or config the model depends on (:data:`SOURCES`)
differs from it, not when files that DVC itself rewrites (dvc.lock) do.
"""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

# The packages whose versions change what a model computes.
TRACKED_PACKAGES = ("isoclr", "torch", "numpy", "pandas", "scikit-learn", "kfp", "dvc")

# What a model depends on, relative to the repository root: an uncommitted change to a tracked file
# here makes the recorded commit "-dirty". dvc.lock and the outputs are not in it on purpose:
# `dvc repro` rewrites them itself, so they would turn every model from a clean clone dirty.
SOURCES = ("src", "pyproject.toml", "params.yaml", "data.dvc", "dvc.yaml")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def dirty_paths(repo: Path = Path("."), sources: tuple[str, ...] = SOURCES) -> list[str] | None:
    """Tracked files under ``sources`` that differ from HEAD (staged or not), sorted; None outside git."""
    try:
        status = _git(
            repo,
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=no",
            "--",
            *(f":(top){source}" for source in sources),
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    entries = iter(status.split("\0"))
    paths = []
    for entry in entries:
        if not entry:
            continue
        paths.append(entry[3:])  # "XY path"
        if entry[0] in "RC":
            next(entries, None)  # a rename or copy: the next field is the old path
    return sorted(paths)


def git_state(repo: Path = Path(".")) -> tuple[str | None, list[str]]:
    """``(commit, dirty sources)``: HEAD, with ``-dirty`` when a source differs from it; ``(None, [])`` outside git."""
    try:
        head = _git(repo, "rev-parse", "HEAD").strip()
    except (OSError, subprocess.CalledProcessError):
        return None, []
    dirty = dirty_paths(repo) or []
    return (f"{head}-dirty" if dirty else head), dirty


def git_commit(repo: Path = Path(".")) -> str | None:
    """HEAD commit, ``-dirty`` when a tracked file under :data:`SOURCES` has uncommitted changes; None outside git."""
    return git_state(repo)[0]


def data_version(dvc_file: Path = Path("data.dvc")) -> str | None:
    """The md5 DVC recorded for the data directory; None when there is no .dvc file."""
    if not dvc_file.exists():
        return None
    outs = yaml.safe_load(dvc_file.read_text()).get("outs", [])
    return outs[0].get("md5") if outs else None


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def collect(repo: Path = Path(".")) -> dict:
    """Everything recorded beside a model (checkpoint, registry version)."""
    commit, dirty = git_state(repo)
    return {
        "git_commit": commit,
        "git_dirty_paths": dirty,  # the sources that made the commit "-dirty"; empty when clean
        "data_md5": data_version(repo / "data.dvc"),
        "packages": package_versions(),
        "python": platform.python_version(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
