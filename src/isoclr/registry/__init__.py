"""The model registry: immutable, checksummed versions and a compare-and-swap champion pointer.

:mod:`~isoclr.registry.backends` says where objects live (``file://`` folder or
``gs://`` bucket); :mod:`~isoclr.registry.versions` what a trusted version is and how
the champion moves. The `register` stage that uses both is :mod:`isoclr.register`.
"""

from __future__ import annotations

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
    GC_OLDER_THAN_HOURS,
    MANIFEST,
    METADATA,
    POINTER,
    VERSIONS,
    champion,
    champion_history,
    check_version_id,
    content_files,
    download,
    gc,
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
    "GC_OLDER_THAN_HOURS",
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
    "check_version_id",
    "content_files",
    "download",
    "gc",
    "list_versions",
    "new_version_id",
    "register",
    "registered_version",
    "resolve",
    "set_champion",
    "sha256_file",
    "verify",
    "version_metadata",
]
