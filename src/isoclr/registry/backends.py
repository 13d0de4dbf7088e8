"""Where registry objects live: one small interface, a local-folder and a Google Cloud Storage implementation.

The registry (:mod:`isoclr.registry.versions`) needs five operations from a
store: read a key, read it with its generation, compare-and-swap it, list a
prefix, and publish a folder of objects that appears whole or not at all.
``file://`` is :class:`FileBackend` (staging folder + rename; an exclusive
``flock`` around the pointer's read-compare-replace); ``gs://BUCKET/PREFIX`` is
:class:`GCSBackend` (google-cloud-storage; ``if_generation_match``, where 0
means "only if absent"). :func:`backend_for` picks one by URI scheme.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from isoclr.errors import IsoclrError

log = logging.getLogger(__name__)

# The generation of a key that does not exist: swap(key, data, ABSENT) creates it only if absent.
ABSENT = 0
Generation = int | str
_STAGING_SUFFIX_BYTES = 4
_CHUNK = 1 << 20

# Against an emulator (STORAGE_EMULATOR_HOST), google-cloud-storage needs a project name but no credentials.
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "isoclr-emulator"


class RegistryError(IsoclrError):
    """The registry cannot do what was asked (unknown or untrusted version, unreadable URI, no access, ...)."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (model weights can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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

    def modified(self, prefix: str) -> dict[str, float]:
        """Every key under ``prefix`` (as :meth:`list`) -> its last change, in seconds since the epoch."""

    def remove(self, keys: list[str]) -> None:
        """Delete these keys (absent ones are skipped). Only the registry's garbage collection calls it."""


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

    def _inside(self, key: str) -> Path:
        """The key's path, refused when a link in it leads out of the registry root."""
        path = self._path(key)
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise RegistryError(f"registry {self.root}: {key} is a link that leaves the registry root")
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
                return self._inside(key).read_bytes()
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

    def modified(self, prefix: str) -> dict[str, float]:
        base = self._path(prefix)
        if not base.is_dir():
            return {}
        found = {}
        with self._os_errors(f"list {prefix}"):
            for path in base.rglob("*"):
                rel = path.relative_to(self.root)
                hidden = any(part.startswith(".") for part in path.relative_to(base).parts)
                if not hidden and (path.is_file() or path.is_symlink()):
                    found[rel.as_posix()] = path.lstat().st_mtime
        return found

    def remove(self, keys: list[str]) -> None:
        with self._os_errors("remove objects"):
            for key in keys:
                self._path(key).unlink(missing_ok=True)
                folder = self._path(key).parent
                while folder != self.root and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()  # an empty version folder goes with its last file
                    folder = folder.parent

    def publish(self, prefix: str, files: Mapping[str, Path], last: tuple[str, bytes]) -> None:
        target = self._path(prefix)
        if target.exists():
            raise RegistryError(f"{target} already exists: versions are immutable")
        with self._os_errors(f"write {prefix}"):
            staging = self.root / self.STAGING / f"{target.name}-{secrets.token_hex(_STAGING_SUFFIX_BYTES)}"
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
    set the client talks to that emulator with anonymous credentials.
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

    def modified(self, prefix: str) -> dict[str, float]:
        with self._errors(f"list {prefix}"):
            blobs = list(self.bucket.client.list_blobs(self.bucket, prefix=self._name(prefix)))
        cut = len(self._name(""))
        return {blob.name[cut:]: blob.updated.timestamp() for blob in blobs}

    def remove(self, keys: list[str]) -> None:
        from google.api_core import exceptions as api

        with self._errors("remove objects"):
            for key in keys:
                try:
                    self.bucket.blob(self._name(key)).delete()
                except api.NotFound:
                    pass

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
        self._create(
            key,
            lambda blob: blob.upload_from_filename(str(source), if_generation_match=ABSENT),
            sha256_file(source),
        )

    def _discard(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.bucket.blob(self._name(key)).delete()
            except Exception as err:  # noqa: BLE001 -- best effort: the caller's error is the one to report
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
    """The backend of a registry URI.

    ``file://relative``, ``file:///absolute`` and a plain path are folders; ``gs://bucket/prefix`` is a bucket.
    """
    parsed = urlparse(str(uri))
    if parsed.scheme == "":
        return FileBackend(Path(uri))
    if parsed.scheme not in BACKENDS:
        raise RegistryError(f"registry {uri}: no backend for scheme {parsed.scheme!r} (known: {sorted(BACKENDS)})")
    return BACKENDS[parsed.scheme](parsed)
