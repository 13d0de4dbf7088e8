"""Where a model came from: code commit, data version, package versions, parameters."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

# The packages whose versions change what a model computes.
TRACKED_PACKAGES = ("isoclr", "torch", "numpy", "pandas", "scikit-learn", "kfp", "dvc")


def git_commit(repo: Path = Path(".")) -> str | None:
    """HEAD commit, with ``-dirty`` when the work tree has uncommitted changes; None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head


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
    return {
        "git_commit": git_commit(repo),
        "data_md5": data_version(repo / "data.dvc"),
        "packages": package_versions(),
        "python": platform.python_version(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
