"""The model registry: immutable, checksummed versions and an atomically replaced champion pointer.

Layout under the registry root (the same keys on every backend)::

    versions/<version>/model/...          the model folder, as train wrote it
    versions/<version>/attachments/...    metrics.json, gate decision, ...
    versions/<version>/metadata.json      provenance + config + metrics + decision
    versions/<version>/MANIFEST.json      sha256 + size of every file above; written LAST
    champion.json                         {"version": ..., "history": [...]}

Rules that keep it safe (DESIGN §5):

* A version is trusted only if its manifest exists, names the version, and
  every file it lists is present with its checksum, and nothing else is
  there. A crash before the manifest leaves an invisible, ignored version.
* The file:// backend stages a version under ``.staging/`` and renames the
  folder into place, so even the manifest-less state is never visible.
* The champion pointer is replaced atomically and only ever set to a
  trusted version; versions are never deleted here, so it cannot dangle.

Backends implement :class:`Backend` (bytes in, bytes out, create-if-absent,
list, publish); ``file://`` is :class:`FileBackend`, and a ``gs://`` backend
(objects with ``if_generation_match=0``) registers itself in :data:`BACKENDS`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from isoclr import provenance
from isoclr.config import Config

log = logging.getLogger(__name__)

VERSIONS = "versions"
MANIFEST = "MANIFEST.json"
METADATA = "metadata.json"
CHAMPION = "champion.json"
MANIFEST_FORMAT = 1
# Version ids: UTC time to the microsecond (sortable) + random hex (unique).
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_SUFFIX_BYTES = 4
_CHUNK = 1 << 20


class RegistryError(Exception):
    """The registry cannot do what was asked (unknown or untrusted version, unreadable URI, ...)."""


# --------------------------------------------------------------------------- backends


class Backend(Protocol):
    """What the registry needs from a store. Keys are ``/``-separated, relative to the registry root."""

    def get(self, key: str) -> bytes:
        """The object's bytes; ``KeyError`` if absent."""

    def put(self, key: str, data: bytes) -> None:
        """Create or replace the object atomically (a reader sees the old or the new bytes, never a mix)."""

    def create(self, key: str, data: bytes) -> bool:
        """Create the object only if absent, atomically; False if it already existed."""

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (recursively), sorted."""

    def publish(self, prefix: str, files: Mapping[str, Path], last: tuple[str, bytes]) -> None:
        """Upload ``files`` (key relative to ``prefix`` -> local file), then ``last``; fail if ``prefix`` exists."""


class FileBackend:
    """A registry in a local (or mounted) folder."""

    STAGING = ".staging"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = self.root / key
        if ".." in Path(key).parts or Path(key).is_absolute():
            raise RegistryError(f"registry key {key!r} leaves the registry root")
        return path

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise KeyError(key) from err

    def _temp(self, directory: Path, data: bytes) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return Path(name)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._temp(path.parent, data)
        os.replace(tmp, path)

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._temp(path.parent, data)
        try:
            os.link(tmp, path)  # fails if the name exists: create-if-absent with complete content
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            rel = path.relative_to(self.root)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                keys.append(rel.as_posix())
        return sorted(keys)

    def publish(self, prefix: str, files: Mapping[str, Path], last: tuple[str, bytes]) -> None:
        target = self._path(prefix)
        if target.exists():
            raise RegistryError(f"{target} already exists: versions are immutable")
        staging = self.root / self.STAGING / f"{target.name}-{secrets.token_hex(_SUFFIX_BYTES)}"
        staging.mkdir(parents=True)
        try:
            for key, source in files.items():
                dest = staging / key
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)
            (staging / last[0]).write_bytes(last[1])
            _fsync_tree(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, target)  # atomic; fails if a non-empty target appeared meanwhile
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _fsync_tree(root: Path) -> None:
    """Flush the staged files before the rename makes them visible."""
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())


def _file_backend(parsed) -> Backend:
    # file://registry -> ./registry (netloc + path); file:///abs -> /abs
    return FileBackend(Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path))


# Scheme -> constructor from the parsed URI. A gs:// backend adds itself here.
BACKENDS: dict[str, Callable[..., Backend]] = {"file": _file_backend}


def backend_for(uri: str) -> Backend:
    """The backend of a registry URI: ``file://relative``, ``file:///absolute``, a plain path, or a registered scheme."""
    parsed = urlparse(str(uri))
    if parsed.scheme == "":
        return FileBackend(Path(uri))
    if parsed.scheme not in BACKENDS:
        raise RegistryError(f"registry {uri}: no backend for scheme {parsed.scheme!r} (known: {sorted(BACKENDS)})")
    return BACKENDS[parsed.scheme](parsed)


# --------------------------------------------------------------------------- versions


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files_of(path: Path, prefix: str) -> dict[str, Path]:
    """Key -> local file for a file or every file of a folder."""
    path = Path(path)
    if path.is_file():
        return {prefix: path}
    if not path.is_dir():
        raise RegistryError(f"{path} does not exist")
    return {f"{prefix}/{p.relative_to(path).as_posix()}": p for p in sorted(path.rglob("*")) if p.is_file()}


def new_version_id(now: datetime | None = None) -> str:
    """``20250101T120000123456Z-1a2b3c4d``: sorts by creation time, unique by its random tail."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime(_TIME_FORMAT)}-{secrets.token_hex(_SUFFIX_BYTES)}"


def content_files(model_dir: Path, attachments: dict[str, Path]) -> dict[str, Path]:
    """Key in a version -> local file: ``model/...`` and ``attachments/<name><suffix>``."""
    files = _files_of(Path(model_dir), "model")
    for name, path in attachments.items():
        path = Path(path)
        key = f"attachments/{name}" + (path.suffix if path.is_file() and not name.endswith(path.suffix) else "")
        files.update(_files_of(path, key))
    return files


def register(uri: str, model_dir: Path, attachments: dict[str, Path], metadata: dict) -> str:
    """Write a new immutable version; returns its id. Does not move the champion.

    ``attachments`` maps a name to a file or folder; a file is stored as
    ``attachments/<name><suffix>`` (``metrics`` + metrics.json -> attachments/metrics.json).
    """
    backend = backend_for(uri)
    model_dir = Path(model_dir)
    if not model_dir.is_dir() or not any(p.is_file() for p in model_dir.rglob("*")):
        raise RegistryError(f"model folder {model_dir} is missing or empty")
    files = content_files(model_dir, attachments)
    version = new_version_id()
    with tempfile.TemporaryDirectory() as tmp:
        meta_path = Path(tmp) / METADATA
        meta_path.write_text(json.dumps({"version": version, **metadata}, indent=2, default=str) + "\n")
        files[METADATA] = meta_path
        entries = {key: {"sha256": _sha256_file(p), "bytes": p.stat().st_size} for key, p in files.items()}
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": version,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": entries,
        }
        backend.publish(
            f"{VERSIONS}/{version}", files, (MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
        )
    log.info("registered %s in %s (%d files)", version, uri, len(files))
    return version


def _version_keys(backend: Backend) -> dict[str, list[str]]:
    """Version id -> its keys (relative to the version folder)."""
    found: dict[str, list[str]] = {}
    for key in backend.list(f"{VERSIONS}/"):
        parts = key.split("/", 2)
        if len(parts) == 3:
            found.setdefault(parts[1], []).append(parts[2])
    return found


def verify(uri: str, version: str) -> dict:
    """The version's manifest, after checking every file against it; RegistryError naming what is wrong."""
    backend = backend_for(uri)
    keys = _version_keys(backend).get(version)
    if keys is None:
        raise RegistryError(f"registry {uri}: no version {version!r}")
    return _verified_manifest(backend, uri, version, keys)


def _verified_manifest(backend: Backend, uri: str, version: str, keys: list[str]) -> dict:
    where = f"registry {uri}, version {version}"
    if MANIFEST not in keys:
        raise RegistryError(f"{where}: no {MANIFEST} (incomplete write): not a trusted version")
    try:
        manifest = json.loads(backend.get(f"{VERSIONS}/{version}/{MANIFEST}"))
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise RegistryError(f"{where}: unreadable {MANIFEST}: {err}") from err
    if manifest.get("version") != version:
        raise RegistryError(f"{where}: {MANIFEST} names version {manifest.get('version')!r}")
    extra = sorted(set(keys) - set(files) - {MANIFEST})
    if extra:
        raise RegistryError(f"{where}: files not in the manifest: {extra[:5]}")
    for key, entry in files.items():
        try:
            data = backend.get(f"{VERSIONS}/{version}/{key}")
        except KeyError:
            raise RegistryError(f"{where}: {key} is listed in the manifest but missing") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry["sha256"]:
            raise RegistryError(f"{where}: {key} has sha256 {actual}, the manifest says {entry['sha256']}")
    return manifest


def _trusted(backend: Backend, uri: str) -> dict[str, dict]:
    """Version id -> manifest, for every version that verifies; others are logged and skipped."""
    trusted = {}
    for version, keys in sorted(_version_keys(backend).items()):
        try:
            trusted[version] = _verified_manifest(backend, uri, version, keys)
        except RegistryError as err:
            log.warning("ignoring untrusted version: %s", err)
    return trusted


def version_metadata(uri: str, version: str) -> dict:
    """metadata.json of a trusted version."""
    verify(uri, version)
    return json.loads(backend_for(uri).get(f"{VERSIONS}/{version}/{METADATA}"))


def list_versions(uri: str) -> list[dict]:
    """Trusted versions, oldest first: ``{"version", "created_utc", "champion", "files", "metadata"}``."""
    backend = backend_for(uri)
    current = _read_champion(backend).get("version")
    out = []
    for version, manifest in _trusted(backend, uri).items():
        out.append(
            {
                "version": version,
                "created_utc": manifest.get("created_utc"),
                "champion": version == current,
                "files": sorted(manifest["files"]),
                "metadata": json.loads(backend.get(f"{VERSIONS}/{version}/{METADATA}")),
            }
        )
    return out


def download(uri: str, version: str, dest: Path) -> Path:
    """Copy a trusted version's model folder to ``dest`` (checksums verified); returns ``dest``."""
    backend = backend_for(uri)
    manifest = verify(uri, version)
    dest = Path(dest)
    for key in manifest["files"]:
        if key.startswith("model/"):
            path = dest / key.removeprefix("model/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(backend.get(f"{VERSIONS}/{version}/{key}"))
    return dest


# --------------------------------------------------------------------------- champion


def _read_champion(backend: Backend) -> dict:
    try:
        return json.loads(backend.get(CHAMPION))
    except KeyError:
        return {}


def champion(uri: str) -> str | None:
    """The champion version id; None before the first champion. Raises if it points at an untrusted version."""
    version = _read_champion(backend_for(uri)).get("version")
    if version is not None:
        verify(uri, version)
    return version


def set_champion(uri: str, version: str) -> None:
    """Point the champion at a trusted version (promotion or rollback); history is kept in the pointer."""
    backend = backend_for(uri)
    verify(uri, version)
    pointer = _read_champion(backend)
    history = pointer.get("history", [])
    history.append(
        {
            "version": version,
            "previous": pointer.get("version"),
            "set_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )
    backend.put(CHAMPION, json.dumps({"version": version, "history": history}, indent=2).encode() + b"\n")


# --------------------------------------------------------------------------- the stage


def _registered_already(backend: Backend, uri: str, files: dict[str, Path]) -> str | None:
    """The newest trusted version with exactly these model and attachment files (a re-run stage)."""
    checksums = {key: _sha256_file(path) for key, path in files.items()}
    for version, manifest in sorted(_trusted(backend, uri).items(), reverse=True):
        stored = {k: v["sha256"] for k, v in manifest["files"].items() if k != METADATA}
        if stored == checksums:
            return version
    return None


def run_register(
    cfg: Config, model_dir: Path, metrics_path: Path, decision_path: Path, record_out: Path
) -> dict | None:
    """Register the model and make it champion if the gate passed; write ``record_out`` either way.

    Idempotent: a model already in the registry with the same metrics and
    decision (same files, same checksums) is not written again; its version is reported and made champion.
    Returns the record of the registered version, or None when nothing was registered.
    """
    uri = cfg.registry.uri
    record_out = Path(record_out)
    record_out.parent.mkdir(parents=True, exist_ok=True)
    decision = json.loads(Path(decision_path).read_text()) if Path(decision_path).exists() else None
    if decision is None or decision.get("passed") is not True:
        if decision is None:
            reason = f"not registered: no gate decision at {decision_path}"
        else:
            failed = [f"{r.get('task')} {r.get('metric')}: {r.get('reason')}" for r in decision.get("rules", [])
                      if not r.get("passed")]
            reason = "not registered: gate failed (" + "; ".join(failed or ["no rule passed"]) + ")"
        record = {"registered": False, "reason": reason, "registry": uri}
        record_out.write_text(json.dumps(record, indent=2) + "\n")
        return None

    metrics = json.loads(Path(metrics_path).read_text())
    backend = backend_for(uri)
    attachments = {"metrics": Path(metrics_path), "decision": Path(decision_path)}
    existing = _registered_already(backend, uri, content_files(model_dir, attachments))
    if existing is not None:
        version, note = existing, "same model, metrics and decision already registered: version reused"
    else:
        metadata = {
            "provenance": provenance.collect(),
            "config": cfg.to_dict(),
            "metrics": metrics,
            "decision": decision,
        }
        version, note = register(uri, model_dir, attachments, metadata), "new version"
    set_champion(uri, version)
    record = {"registered": True, "version": version, "champion": version, "registry": uri, "note": note}
    record_out.write_text(json.dumps(record, indent=2) + "\n")
    return record
