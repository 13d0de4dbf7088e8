"""The model registry: immutable, checksummed versions and a compare-and-swap champion pointer.

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
* Every object of a version is created only if absent, so a version can
  never be overwritten; a retried upload of the same bytes is a no-op.
* The champion pointer moves by compare-and-swap (read it with its
  generation, write only if the generation is unchanged, else re-read and
  retry), so racing promotions never lose an update; it is only ever set to
  a trusted version and versions are never deleted, so it cannot dangle.

Backends implement :class:`Backend`. ``file://`` is :class:`FileBackend`
(staging folder + rename; an exclusive ``flock`` around the pointer's
read-compare-replace); ``gs://BUCKET/PREFIX`` is :class:`GCSBackend`
(google-cloud-storage; ``if_generation_match``, where 0 means "only if
absent"). Both are chosen by URI scheme through :data:`BACKENDS`.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import random
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from isoclr import metrics, provenance
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

# The generation of a key that does not exist: swap(key, data, ABSENT) creates it only if absent.
ABSENT = 0
Generation = int | str
# Compare-and-swap of the champion pointer: attempts, and the jittered back-off between them.
CAS_ATTEMPTS = 60
CAS_BACKOFF_FIRST_S = 0.01
CAS_BACKOFF_MAX_S = 0.5

# Against an emulator (STORAGE_EMULATOR_HOST), google-cloud-storage needs a project name but no credentials.
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "isoclr-emulator"


class RegistryError(Exception):
    """The registry cannot do what was asked (unknown or untrusted version, unreadable URI, no access, ...)."""


# --------------------------------------------------------------------------- backends


class Backend(Protocol):
    """What the registry needs from a store. Keys are ``/``-separated, relative to the registry root."""

    def get(self, key: str) -> bytes:
        """The object's bytes; ``KeyError`` if absent."""

    def read(self, key: str) -> tuple[bytes | None, Generation]:
        """The object's bytes and generation, read together; ``(None, ABSENT)`` if absent."""

    def swap(self, key: str, data: bytes, expected: Generation) -> bool:
        """Replace the object only if its generation is still ``expected`` (ABSENT: only if absent); False if not."""

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (recursively), sorted."""

    def publish(self, prefix: str, files: Mapping[str, Path], last: tuple[str, bytes]) -> None:
        """Upload ``files`` (key relative to ``prefix`` -> local file), then ``last``; fail if ``prefix`` exists."""


class FileBackend:
    """A registry in a local (or mounted) folder.

    The pointer's generation is the sha256 of its bytes: every promotion
    appends to the history, so equal bytes mean the same state (no ABA).
    """

    STAGING = ".staging"
    LOCKS = ".locks"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = self.root / key
        if ".." in Path(key).parts or Path(key).is_absolute():
            raise RegistryError(f"registry key {key!r} leaves the registry root")
        return path

    @contextmanager
    def _os_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except PermissionError as err:
            raise RegistryError(f"registry {self.root}: permission denied to {action} ({err.filename})") from err
        except OSError as err:
            if isinstance(err, (FileNotFoundError, FileExistsError)):
                raise
            raise RegistryError(f"registry {self.root}: cannot {action}: {err}") from err

    def get(self, key: str) -> bytes:
        with self._os_errors(f"read {key}"):
            try:
                return self._path(key).read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
                raise KeyError(key) from err

    def read(self, key: str) -> tuple[bytes | None, Generation]:
        try:
            data = self.get(key)
        except KeyError:
            return None, ABSENT
        return data, hashlib.sha256(data).hexdigest()

    def _temp(self, directory: Path, data: bytes) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return Path(name)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """An exclusive flock per key: held by one open file description, so it excludes threads and processes."""
        lock = self.root / self.LOCKS / (key.replace("/", "%") + ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def swap(self, key: str, data: bytes, expected: Generation) -> bool:
        path = self._path(key)
        with self._os_errors(f"write {key}"), self._locked(key):
            if self.read(key)[1] != expected:
                return False
            tmp = self._temp(path.parent, data)
            os.replace(tmp, path)  # readers see the old or the new bytes, never a mix
        return True

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        keys = []
        with self._os_errors(f"list {prefix}"):
            for path in base.rglob("*"):
                rel = path.relative_to(self.root)
                if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                    keys.append(rel.as_posix())
        return sorted(keys)

    def publish(self, prefix: str, files: Mapping[str, Path], last: tuple[str, bytes]) -> None:
        target = self._path(prefix)
        if target.exists():
            raise RegistryError(f"{target} already exists: versions are immutable")
        with self._os_errors(f"write {prefix}"):
            staging = self.root / self.STAGING / f"{target.name}-{secrets.token_hex(_SUFFIX_BYTES)}"
            staging.mkdir(parents=True)
            try:
                for key, source in files.items():
                    dest = staging / key
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self._copy(source, dest)
                (staging / last[0]).write_bytes(last[1])
                _fsync_tree(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staging, target)  # atomic; fails if a non-empty target appeared meanwhile
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise

    @staticmethod
    def _copy(source: Path, dest: Path) -> None:
        shutil.copyfile(source, dest)


def _fsync_tree(root: Path) -> None:
    """Flush the staged files before the rename makes them visible."""
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())


class GCSBackend:
    """A registry under ``gs://BUCKET/PREFIX`` (google-cloud-storage).

    Versions are written object by object with ``if_generation_match=0``
    (create only), the manifest last; the pointer is replaced with
    ``if_generation_match=<generation read>``. With ``STORAGE_EMULATOR_HOST``
    set the client talks to that emulator with anonymous credentials (DESIGN §7).
    Every failure of the store becomes one :class:`RegistryError` that says
    what to fix (bucket, credentials, permissions).
    """

    def __init__(self, bucket: str, prefix: str) -> None:
        if not bucket:
            raise RegistryError("a gs:// registry URI needs a bucket: gs://BUCKET/PREFIX")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"gs://{bucket}/{self.prefix}".rstrip("/")
        self._bucket = None

    # -- plumbing

    @property
    def bucket(self):
        if self._bucket is None:
            with self._errors("connect"):
                self._bucket = _gcs_client().bucket(self.bucket_name)
        return self._bucket

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth
        from requests import exceptions as http

        where = f"registry {self.uri}"
        try:
            yield
        except auth.DefaultCredentialsError as err:
            raise RegistryError(
                f"{where}: no Google Cloud credentials found (while trying to {action}). Set "
                "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run `gcloud auth "
                f"application-default login`, or set {EMULATOR_ENV} to use an emulator."
            ) from err
        except auth.GoogleAuthError as err:
            raise RegistryError(f"{where}: the Google Cloud credentials were rejected ({action}): {err}") from err
        except (api.Forbidden, api.Unauthorized) as err:
            raise RegistryError(
                f"{where}: permission denied to {action} in bucket {self.bucket_name!r} (HTTP {err.code}: "
                f"{err.message}). The account needs storage.objects.get/list/create/delete there, "
                "e.g. roles/storage.objectUser."
            ) from err
        except api.NotFound as err:
            raise RegistryError(
                f"{where}: bucket {self.bucket_name!r} does not exist (while trying to {action}); "
                "create it or fix registry.uri."
            ) from err
        except (api.GoogleAPIError, http.RequestException) as err:
            raise RegistryError(f"{where}: cannot {action}: {err}") from err

    def _bucket_exists(self) -> bool:
        from google.api_core import exceptions as api

        try:
            return self.bucket.exists()
        except (api.Forbidden, api.Unauthorized):
            return True  # an object-only role may not read bucket metadata: assume it is there

    # -- the Backend interface

    def get(self, key: str) -> bytes:
        return self._download(key)[0]

    def _download(self, key: str) -> tuple[bytes, int]:
        from google.api_core import exceptions as api

        with self._errors(f"read {key}"):
            blob = self.bucket.blob(self._name(key))
            try:
                data = blob.download_as_bytes()
            except api.NotFound:
                if not self._bucket_exists():
                    raise
                raise KeyError(key) from None
            return data, int(blob.generation)  # from the same response as the bytes

    def read(self, key: str) -> tuple[bytes | None, Generation]:
        try:
            return self._download(key)
        except KeyError:
            return None, ABSENT

    def swap(self, key: str, data: bytes, expected: Generation) -> bool:
        from google.api_core import exceptions as api

        with self._errors(f"write {key}"):
            try:
                self.bucket.blob(self._name(key)).upload_from_string(
                    data, content_type="application/json", if_generation_match=int(expected)
                )
            except api.PreconditionFailed:
                return False
        return True

    def list(self, prefix: str) -> list[str]:
        with self._errors(f"list {prefix}"):
            names = [blob.name for blob in self.bucket.client.list_blobs(self.bucket, prefix=self._name(prefix))]
        cut = len(self._name(""))
        return sorted(name[cut:] for name in names)

    def _create(self, key: str, upload: Callable, digest: str) -> None:
        """Create an object only if absent; an existing one with the same sha256 is a retry that already landed."""
        from google.api_core import exceptions as api

        blob = self.bucket.blob(self._name(key))
        with self._errors(f"write {key}"):
            try:
                upload(blob)
                return
            except api.PreconditionFailed:
                existing = blob.download_as_bytes()
        if hashlib.sha256(existing).hexdigest() != digest:
            raise RegistryError(f"registry {self.uri}: {key} already exists with other content: versions are immutable")

    def publish(self, prefix: str, files: Mapping[str, Path], last: tuple[str, bytes]) -> None:
        if self.list(prefix + "/"):
            raise RegistryError(f"registry {self.uri}: {prefix} already exists: versions are immutable")
        written: list[str] = []
        try:
            for key, source in files.items():
                self._upload_file(f"{prefix}/{key}", Path(source))
                written.append(f"{prefix}/{key}")
            name, data = last
            self._create(
                f"{prefix}/{name}",
                lambda blob: blob.upload_from_string(data, content_type="application/json", if_generation_match=ABSENT),
                hashlib.sha256(data).hexdigest(),
            )
        except BaseException:
            self._discard(written)  # invisible without a manifest anyway; this only saves space
            raise

    def _upload_file(self, key: str, source: Path) -> None:
        self._create(key, lambda blob: blob.upload_from_filename(str(source), if_generation_match=ABSENT), _sha256_file(source))

    def _discard(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.bucket.blob(self._name(key)).delete()
            except Exception as err:  # best effort: the caller's error is the one to report
                log.warning("could not remove %s after a failed upload: %s", key, err)


_clients = threading.local()


def _gcs_client():
    """One google-cloud-storage client per thread and endpoint (clients are not shared across threads)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    emulator = os.environ.get(EMULATOR_ENV)
    cache = _clients.__dict__.setdefault("by_endpoint", {})
    if emulator not in cache:
        if emulator:
            cache[emulator] = storage.Client(project=EMULATOR_PROJECT, credentials=AnonymousCredentials())
        else:
            cache[emulator] = storage.Client()
    return cache[emulator]


def _file_backend(parsed) -> Backend:
    # file://registry -> ./registry (netloc + path); file:///abs -> /abs
    return FileBackend(Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path))


def _gcs_backend(parsed) -> Backend:
    return GCSBackend(parsed.netloc, parsed.path)


# Scheme -> constructor from the parsed URI.
BACKENDS: dict[str, Callable[..., Backend]] = {"file": _file_backend, "gs": _gcs_backend}


def backend_for(uri: str) -> Backend:
    """The backend of a registry URI: ``file://relative``, ``file:///absolute``, a plain path, or ``gs://bucket/prefix``."""
    parsed = urlparse(str(uri))
    if parsed.scheme == "":
        return FileBackend(Path(uri))
    if parsed.scheme not in BACKENDS:
        raise RegistryError(f"registry {uri}: no backend for scheme {parsed.scheme!r} (known: {sorted(BACKENDS)})")
    return BACKENDS[parsed.scheme](parsed)


def _counted(operation: str) -> Callable:
    """Count a public registry call (outermost only) and its failures in the running stage's metrics."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            with metrics.registry_operation(operation):
                return fn(*args, **kwargs)

        return counted

    return wrap


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


@_counted("register")
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


@_counted("verify")
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


@_counted("show")
def version_metadata(uri: str, version: str) -> dict:
    """metadata.json of a trusted version."""
    verify(uri, version)
    return json.loads(backend_for(uri).get(f"{VERSIONS}/{version}/{METADATA}"))


@_counted("list")
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


@_counted("fetch")
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


@_counted("champion")
def champion(uri: str) -> str | None:
    """The champion version id; None before the first champion. Raises if it points at an untrusted version."""
    version = _read_champion(backend_for(uri)).get("version")
    if version is not None:
        verify(uri, version)
    return version


@_counted("set_champion")
def set_champion(uri: str, version: str) -> None:
    """Point the champion at a trusted version (promotion or rollback), by compare-and-swap.

    Read the pointer with its generation, append to its history, write it
    only if the generation is unchanged; on a lost race re-read and retry
    with jittered back-off. Idempotent: a pointer that already names
    ``version``, or whose history already holds this call's entry (a write
    whose reply was lost), is left as it is.
    """
    backend = backend_for(uri)
    verify(uri, version)  # versions are immutable and never deleted: trusted now means trusted later
    entry_id = secrets.token_hex(_SUFFIX_BYTES * 2)
    for attempt in range(CAS_ATTEMPTS):
        data, generation = backend.read(CHAMPION)
        pointer = json.loads(data) if data else {}
        history = pointer.get("history", [])
        if pointer.get("version") == version or any(h.get("id") == entry_id for h in history):
            return
        entry = {
            "version": version,
            "previous": pointer.get("version"),
            "set_utc": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "id": entry_id,
        }
        new = json.dumps({"version": version, "history": [*history, entry]}, indent=2).encode() + b"\n"
        if backend.swap(CHAMPION, new, generation):
            log.info("champion of %s -> %s (was %s)", uri, version, entry["previous"])
            return
        metrics.count_registry_conflict()
        time.sleep(random.uniform(0, min(CAS_BACKOFF_MAX_S, CAS_BACKOFF_FIRST_S * 2**attempt)))
    raise RegistryError(
        f"registry {uri}: the champion pointer changed under every one of {CAS_ATTEMPTS} attempts "
        f"to set it to {version}; nothing was changed, try again"
    )


def champion_history(uri: str) -> list[dict]:
    """Every move of the champion pointer, oldest first: ``{"version", "previous", "set_utc", "id"}``."""
    return _read_champion(backend_for(uri)).get("history", [])


# --------------------------------------------------------------------------- the stage


def _registered_already(backend: Backend, uri: str, files: dict[str, Path]) -> str | None:
    """The newest trusted version with exactly these model and attachment files (a re-run stage)."""
    checksums = {key: _sha256_file(path) for key, path in files.items()}
    for version, manifest in sorted(_trusted(backend, uri).items(), reverse=True):
        stored = {k: v["sha256"] for k, v in manifest["files"].items() if k != METADATA}
        if stored == checksums:
            return version
    return None


@metrics.stage("register")
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
