"""Model versions: immutable, checksummed folders and a compare-and-swap champion pointer.

Layout under the registry root (the same keys on every backend)::

    versions/<version>/model/...          the model folder, as train wrote it
    versions/<version>/attachments/...    metrics.json, gate decision, ...
    versions/<version>/metadata.json      provenance + config + metrics + decision
    versions/<version>/MANIFEST.json      sha256 + size of every file above; written LAST
    champion.json                         {"version": ..., "history": [...]}

Rules that keep it safe:

* A version is trusted only if its manifest exists, names the version, and
  every file it lists is present with its checksum, and nothing else is
  there. A crash before the manifest leaves an invisible, ignored version.
* Every object of a version is created only if absent, so a version can
  never be overwritten; a retried upload of the same bytes is a no-op.
* The champion pointer moves by compare-and-swap (read it with its
  generation, write only if the generation is unchanged, else re-read and
  retry), so racing promotions never lose an update; it is only ever set to
  a trusted version and versions are never deleted, so it cannot dangle.

The stores themselves are in :mod:`isoclr.registry.backends`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from isoclr import metrics
from isoclr.registry.backends import Backend, RegistryError, backend_for, sha256_file

log = logging.getLogger(__name__)

VERSIONS = "versions"
MANIFEST = "MANIFEST.json"
METADATA = "metadata.json"
POINTER = "champion.json"  # the champion pointer's key
CHAMPION = "champion"  # the word that names the current champion wherever a version id is asked for
MANIFEST_FORMAT = 1
# Version ids: UTC time to the microsecond (sortable) + random hex (unique).
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_SUFFIX_BYTES = 4

# What a version id may be (ids come from users and from listings): one path segment, no `..`, no `/`.
_VERSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# gc: partial uploads younger than this are left alone by default (an upload may still be writing them).
GC_OLDER_THAN_HOURS = 24.0
STAGING = ".staging"  # file:// backends stage a version here before the rename that publishes it

# Compare-and-swap of the champion pointer: attempts, and the jittered back-off between them.
CAS_ATTEMPTS = 60
CAS_BACKOFF_FIRST_S = 0.01
CAS_BACKOFF_MAX_S = 0.5


def _counted(operation: str) -> Callable:
    """Count a public registry call (outermost only) and its failures in the running stage's metrics."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            with metrics.registry_operation(operation):
                return fn(*args, **kwargs)

        return counted

    return wrap


def _files_of(path: Path, prefix: str) -> dict[str, Path]:
    """Key -> local file for a file or every file of a folder."""
    path = Path(path)
    if path.is_file():
        return {prefix: path}
    if not path.is_dir():
        raise RegistryError(f"{path} does not exist")
    return {f"{prefix}/{p.relative_to(path).as_posix()}": p for p in sorted(path.rglob("*")) if p.is_file()}


def check_version_id(version: str) -> str:
    """``version`` if it is one safe path segment (letters, digits, ``._-``; not ``..``); else RegistryError."""
    if not isinstance(version, str) or not _VERSION_ID.fullmatch(version) or ".." in version:
        raise RegistryError(f"{version!r} is not a version id (letters, digits, '.', '_', '-'; no '/' or '..')")
    return version


def _check_entry(where: str, key: object) -> str:
    """A manifest entry must be a relative ``/``-separated path inside its version: no ``..``, no absolute path."""
    parts = key.split("/") if isinstance(key, str) else [""]
    unsafe = any(part in ("", ".", "..") or "\\" in part for part in parts) or ":" in parts[0]
    if unsafe:  # "" also catches a leading "/" (absolute) and "//"
        raise RegistryError(f"{where}: manifest entry {key!r} is not a relative path inside the version: refused")
    return key


def new_version_id(now: datetime | None = None) -> str:
    """``20250101T120000123456Z-1a2b3c4d``: sorts by creation time, unique by its random tail."""
    now = now or datetime.now(UTC)
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
        entries = {key: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for key, p in files.items()}
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": version,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": entries,
        }
        backend.publish(f"{VERSIONS}/{version}", files, (MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n"))
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
    check_version_id(version)
    backend = backend_for(uri)
    keys = _version_keys(backend).get(version)
    if keys is None:
        raise RegistryError(f"registry {uri}: no version {version!r}")
    return _verified_manifest(backend, uri, version, keys)


def _verified_manifest(backend: Backend, uri: str, version: str, keys: list[str]) -> dict:
    where = f"registry {uri}, version {version}"
    check_version_id(version)
    if MANIFEST not in keys:
        raise RegistryError(f"{where}: no {MANIFEST} (incomplete write): not a trusted version")
    try:
        manifest = json.loads(backend.get(f"{VERSIONS}/{version}/{MANIFEST}"))
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise RegistryError(f"{where}: unreadable {MANIFEST}: {err}") from err
    if manifest.get("version") != version:
        raise RegistryError(f"{where}: {MANIFEST} names version {manifest.get('version')!r}")
    if not isinstance(files, dict):
        raise RegistryError(f"{where}: unreadable {MANIFEST}: 'files' is not a mapping")
    for key, entry in files.items():
        _check_entry(where, key)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise RegistryError(f"{where}: unreadable {MANIFEST}: entry {key!r} has no sha256")
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
        if key == METADATA and not _is_json_object(data):
            raise RegistryError(f"{where}: {METADATA} is not a JSON object")
    if METADATA not in files:
        raise RegistryError(f"{where}: no {METADATA} in the manifest")
    return manifest


def _is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def _trusted(backend: Backend, uri: str) -> dict[str, dict]:
    """Version id -> manifest, for every version that verifies; others are logged and skipped."""
    trusted = {}
    for version, keys in sorted(_version_keys(backend).items()):
        try:
            trusted[version] = _verified_manifest(backend, uri, version, keys)
        except RegistryError as err:
            log.warning("ignoring untrusted version: %s", err)
    return trusted


def registered_version(uri: str, model_dir: Path, attachments: dict[str, Path]) -> str | None:
    """The newest trusted version with exactly these model and attachment files (same checksums), or None.

    A re-run register stage finds its earlier version this way instead of writing a duplicate.
    """
    backend = backend_for(uri)
    checksums = {key: sha256_file(path) for key, path in content_files(model_dir, attachments).items()}
    for version, manifest in sorted(_trusted(backend, uri).items(), reverse=True):
        stored = {k: v["sha256"] for k, v in manifest["files"].items() if k != METADATA}
        if stored == checksums:
            return version
    return None


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
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    targets = {key: dest / key.removeprefix("model/") for key in manifest["files"] if key.startswith("model/")}
    for path in targets.values():  # all checked before anything is written or any folder made
        if not path.parent.resolve().is_relative_to(root):  # e.g. a link in dest that leads elsewhere
            raise RegistryError(f"fetch {version}: {path.parent} leads out of {dest} (a link?): refused")
    for key, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        data = backend.get(f"{VERSIONS}/{version}/{key}")
        if hashlib.sha256(data).hexdigest() != manifest["files"][key]["sha256"]:  # changed since verify
            raise RegistryError(f"registry {uri}, version {version}: {key} changed while it was fetched")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fetch-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # replaces a link at ``path`` itself, never writes through it
    return dest


def _read_champion(backend: Backend) -> dict:
    try:
        return _parse_pointer(backend.get(POINTER))
    except KeyError:
        return {}


def _parse_pointer(data: bytes | None) -> dict:
    """The champion pointer's bytes as a dict (``{}`` when absent); RegistryError when it is not one."""
    if data is None:
        return {}
    try:
        pointer = json.loads(data)
    except ValueError as err:  # not JSON (or not UTF-8): nothing can be trusted about the champion
        raise RegistryError(f"the champion pointer {POINTER} is unreadable: {err}") from err
    if not isinstance(pointer, dict) or not isinstance(pointer.get("history", []), list):
        raise RegistryError(f"the champion pointer {POINTER} is not a champion pointer: {str(pointer)[:80]}")
    return pointer


@_counted("champion")
def champion(uri: str) -> str | None:
    """The champion version id; None before the first champion. Raises if it points at an untrusted version."""
    version = _read_champion(backend_for(uri)).get("version")
    if version is not None:
        verify(uri, version)
    return version


def resolve(uri: str, ref: str = CHAMPION) -> str:
    """The version id that ``ref`` names: ``ref`` itself, or the current champion's for :data:`CHAMPION`.

    The one place that reads the word "champion": the CLI, ``Encoder.from_registry`` and the
    pipeline resolve a user's version this way. Raises :class:`RegistryError` when there is no
    champion yet (callers for whom that is normal call :func:`champion`, which returns None).
    """
    if ref != CHAMPION:
        return check_version_id(ref)
    current = champion(uri)
    if current is None:
        raise RegistryError(f"{uri} has no champion yet")
    return current


@_counted("set_champion")
def set_champion(uri: str, version: str) -> bool:
    """Point the champion at a trusted version (promotion or rollback), by compare-and-swap.

    Read the pointer with its generation, append to its history, write it
    only if the generation is unchanged; on a lost race re-read and retry
    with jittered back-off. Idempotent: a pointer that already names
    ``version``, or whose history already holds this call's entry (a write
    whose reply was lost), is left as it is. Returns True when this call
    added the move to the history, False when the pointer already named ``version``.
    """
    backend = backend_for(uri)
    verify(uri, version)  # versions are immutable and never deleted: trusted now means trusted later
    entry_id = secrets.token_hex(_SUFFIX_BYTES * 2)
    for attempt in range(CAS_ATTEMPTS):
        data, generation = backend.read(POINTER)
        pointer = _parse_pointer(data)
        history = pointer.get("history", [])
        if any(h.get("id") == entry_id for h in history):
            return True  # an earlier attempt landed although its reply was lost
        if pointer.get("version") == version:
            return False
        entry = {
            "version": version,
            "previous": pointer.get("version"),
            "set_utc": datetime.now(UTC).isoformat(timespec="microseconds"),
            "id": entry_id,
        }
        new = json.dumps({"version": version, "history": [*history, entry]}, indent=2).encode() + b"\n"
        if backend.swap(POINTER, new, generation):
            log.info("champion of %s -> %s (was %s)", uri, version, entry["previous"])
            return True
        metrics.count_registry_conflict()
        time.sleep(random.uniform(0, min(CAS_BACKOFF_MAX_S, CAS_BACKOFF_FIRST_S * 2**attempt)))
    raise RegistryError(
        f"registry {uri}: the champion pointer changed under every one of {CAS_ATTEMPTS} attempts "
        f"to set it to {version}; nothing was changed, try again"
    )


def champion_history(uri: str) -> list[dict]:
    """Every move of the champion pointer, oldest first: ``{"version", "previous", "set_utc", "id"}``."""
    return _read_champion(backend_for(uri)).get("history", [])


@_counted("gc")
def gc(uri: str, older_than_hours: float = GC_OLDER_THAN_HOURS, delete: bool = False) -> list[dict]:
    """Orphaned partial uploads older than ``older_than_hours``: listed (dry run), or removed with ``delete``.

    A partial upload is a version folder with no manifest at all (a ``register`` that died before
    its last object), or on ``file://`` a staging folder a killed process left behind. Never
    touched: anything with a manifest (a verified version, or one that no longer verifies, which
    needs a person, not a sweeper), the champion and every version in its history, and anything
    changed within ``older_than_hours`` (an upload may still be writing it). Returns one
    ``{"prefix", "objects", "age_hours", "removed"}`` per partial upload found, oldest first.
    """
    if older_than_hours < 0:
        raise RegistryError(f"gc: --older-than must be >= 0 hours, not {older_than_hours}")
    backend = backend_for(uri)
    pointer = _read_champion(backend)
    protected = {pointer.get("version")} | {h.get("version") for h in pointer.get("history", [])}
    cutoff = time.time() - older_than_hours * 3600
    found = []
    for area in (VERSIONS, STAGING):
        groups: dict[str, dict[str, float]] = {}
        for key, when in backend.modified(f"{area}/").items():
            parts = key.split("/", 2)
            if len(parts) == 3:
                groups.setdefault(parts[1], {})[key] = when
        for name, objects in sorted(groups.items()):
            newest = max(objects.values())
            if area == VERSIONS and (name in protected or f"{VERSIONS}/{name}/{MANIFEST}" in objects):
                continue
            if newest >= cutoff:
                continue
            found.append({"prefix": f"{area}/{name}", "objects": sorted(objects), "age_hours": _hours(newest)})
    found.sort(key=lambda f: -f["age_hours"])
    for partial in found:
        partial["removed"] = False
        if delete and _still_orphaned(backend, partial, protected):
            backend.remove(partial["objects"])
            partial["removed"] = True
            log.info("gc: removed %s (%d objects)", partial["prefix"], len(partial["objects"]))
    return found


def _hours(epoch_s: float) -> float:
    return round((time.time() - epoch_s) / 3600, 3)


def _still_orphaned(backend: Backend, partial: dict, protected: set) -> bool:
    """Re-read just before removing: a manifest that landed since, or a new champion, keeps the folder."""
    prefix = partial["prefix"]
    if prefix.startswith(f"{VERSIONS}/"):
        if f"{prefix}/{MANIFEST}" in backend.list(f"{prefix}/"):
            return False
        pointer = _read_champion(backend)
        now = {pointer.get("version")} | {h.get("version") for h in pointer.get("history", [])}
        if prefix.removeprefix(f"{VERSIONS}/") in protected | now:
            return False
    return True
