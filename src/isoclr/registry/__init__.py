"""The model registry: immutable, checksummed versions and a compare-and-swap champion pointer.

:mod:`~isoclr.registry.backends` says where objects live (``file://`` folder or
``gs://`` bucket); :mod:`~isoclr.registry.versions` what a trusted version is and how
the champion moves. The `register` stage that uses both is :mod:`isoclr.register`.
"""

from __future__ import annotations

from pathlib import Path

from isoclr.config import Config
from isoclr.registry.backends import (
    ABSENT,
    BACKENDS,
    EMULATOR_ENV,
    Backend,
    FileBackend,
    GCSBackend,
    Generation,
    RegistryError,
    backend_for,
    sha256_file,
)
from isoclr.registry.versions import (
    CHAMPION,
    MANIFEST,
    METADATA,
    POINTER,
    VERSIONS,
    champion,
    champion_history,
    content_files,
    download,
    list_versions,
    new_version_id,
    register,
    registered_version,
    resolve,
    set_champion,
    verify,
    version_metadata,
)

__all__ = [
    "ABSENT",
    "BACKENDS",
    "CHAMPION",
    "EMULATOR_ENV",
    "MANIFEST",
    "METADATA",
    "POINTER",
    "VERSIONS",
    "Backend",
    "FileBackend",
    "GCSBackend",
    "Generation",
    "RegistryError",
    "backend_for",
    "champion",
    "champion_history",
    "content_files",
    "download",
    "list_versions",
    "new_version_id",
    "register",
    "registered_version",
    "resolve",
    "run_register",
    "set_champion",
    "sha256_file",
    "verify",
    "version_metadata",
]


def run_register(
    cfg: Config, model_dir: Path, metrics_path: Path, decision_path: Path, record_out: Path
) -> dict | None:
    """The old entry of the register stage, kept until cli.py and the component call ``stage.run("register", ...)``.

    Runs :func:`isoclr.register.run` through the stage runner (so it is metered as before);
    ``metrics_path`` must be the probe folder's metrics.json. Returns the registration record,
    or None when nothing was registered.
    """
    from isoclr import stage
    from isoclr.artifacts import PROBE_METRICS, Paths

    if Path(metrics_path).name != PROBE_METRICS:
        raise ValueError(f"{metrics_path}: the register stage reads the probe folder's {PROBE_METRICS}")
    paths = Paths().replace(
        model=model_dir, probe=Path(metrics_path).parent, decision=decision_path, registration=record_out
    )
    result = stage.run("register", cfg, paths)
    return result.as_record() if result.registered else None
