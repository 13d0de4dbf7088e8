"""One registry suite, two backends: file:// and gs:// against a real GCS API server (fake-gcs-server).

The concurrency test races 20 registrations + promotions and shows one
consistent champion history: no lost update, never a partial version visible.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from isoclr import registry, stage
from isoclr.artifacts import Paths
from isoclr.registry import (
    ABSENT,
    FileBackend,
    GCSBackend,
    RegistryError,
    backend_for,
    champion,
    champion_history,
    download,
    list_versions,
    register,
    set_champion,
    verify,
)
from tests.helpers import MODEL_FILES, make_model, registry_config, write_inputs

N_RACERS = 20


@pytest.fixture(params=["file", pytest.param("gs", marks=pytest.mark.integration)])
def uri(request, tmp_path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'registry'}"
    return f"gs://{request.getfixturevalue('gcs_bucket')}/models/isoclr"


class UploadDied(Exception):
    """Stands for the process dying between two uploads."""


def overwrite(uri: str, key: str, data: bytes) -> None:
    """Change an object behind the registry's back (as a buggy tool or an attacker would)."""
    backend = backend_for(uri)
    if isinstance(backend, FileBackend):
        (backend.root / key).parent.mkdir(parents=True, exist_ok=True)
        (backend.root / key).write_bytes(data)
    else:
        backend.bucket.blob(backend._name(key)).upload_from_string(data)


def test_register_list_fetch_rollback(uri, tmp_path):
    assert list_versions(uri) == [] and champion(uri) is None
    v1 = register(uri, make_model(tmp_path / "m1", "1"), {}, {"note": "first"})
    v2 = register(uri, make_model(tmp_path / "m2", "2"), {}, {"note": "second"})
    assert [v["version"] for v in list_versions(uri)] == [v1, v2]
    assert set(list_versions(uri)[0]["files"]) == {f"model/{n}" for n in MODEL_FILES} | {"metadata.json"}
    set_champion(uri, v2)
    set_champion(uri, v1)  # rollback
    assert champion(uri) == v1
    assert [(h["version"], h["previous"]) for h in champion_history(uri)] == [(v2, None), (v1, v2)]
    fetched = download(uri, v2, tmp_path / "fetched")
    assert (fetched / "sub" / "extra.txt").read_bytes() == MODEL_FILES["sub/extra.txt"] + b"2"


def test_swap_is_compare_and_swap(uri):
    backend = backend_for(uri)
    assert backend.read("cas.json") == (None, ABSENT)
    assert backend.swap("cas.json", b"1", ABSENT)
    assert not backend.swap("cas.json", b"2", ABSENT)  # 0 / ABSENT: create only
    data, generation = backend.read("cas.json")
    assert data == b"1"
    assert backend.swap("cas.json", b"3", generation)
    assert not backend.swap("cas.json", b"4", generation)  # stale: the server refuses (HTTP 412 on gs://)
    assert backend.get("cas.json") == b"3"


def test_concurrent_registrations_keep_one_consistent_history(uri, tmp_path):
    models = [make_model(tmp_path / f"m{i}", str(i)) for i in range(N_RACERS)]
    start = threading.Barrier(N_RACERS)
    done = threading.Event()
    seen: list[str] = []
    reader_errors: list[str] = []

    def race(model: Path) -> str:
        start.wait()
        version = register(uri, model, {}, {"model": model.name})
        set_champion(uri, version)
        return version

    def read_while_racing() -> None:
        # What a deployment would see meanwhile: only complete versions, and a champion that verifies.
        while not done.is_set():
            try:
                for entry in list_versions(uri):
                    if len(entry["files"]) != len(MODEL_FILES) + 1:
                        reader_errors.append(f"partial version visible: {entry['version']} {entry['files']}")
                current = champion(uri)  # raises if it pointed at a partial or missing version
                if current is not None:
                    seen.append(current)
            except RegistryError as err:
                reader_errors.append(str(err))

    reader = threading.Thread(target=read_while_racing)
    reader.start()
    try:
        with ThreadPoolExecutor(N_RACERS) as pool:
            versions = list(pool.map(race, models))
    finally:
        done.set()
        reader.join()

    assert reader_errors == []
    assert len(set(versions)) == N_RACERS
    history = champion_history(uri)
    # every promotion is in the history exactly once (no lost update) ...
    assert sorted(h["version"] for h in history) == sorted(versions)
    # ... as one chain: each entry's previous is the entry before it
    assert [h["previous"] for h in history] == [None] + [h["version"] for h in history[:-1]]
    assert champion(uri) == history[-1]["version"]
    assert {v["version"] for v in list_versions(uri)} == set(versions)
    assert set(seen) <= set(versions)
    for version in versions:
        verify(uri, version)


@pytest.mark.parametrize("fail_after", [0, 2])
def test_an_upload_dying_half_way_leaves_no_version(uri, tmp_path, monkeypatch, fail_after):
    model = make_model(tmp_path / "m", "x")
    calls = {"n": 0}
    originals = {FileBackend: FileBackend._copy, GCSBackend: GCSBackend._upload_file}

    def dying(cls):
        original = originals[cls]

        def upload(*args):
            if calls["n"] == fail_after:
                raise UploadDied("the process died mid-upload")
            calls["n"] += 1
            return original(*args)

        return upload

    with monkeypatch.context() as patched:
        patched.setattr(FileBackend, "_copy", staticmethod(dying(FileBackend)))
        patched.setattr(GCSBackend, "_upload_file", dying(GCSBackend))
        with pytest.raises(UploadDied):
            register(uri, model, {}, {})
    assert calls["n"] == fail_after
    assert list_versions(uri) == [] and champion(uri) is None

    retried = register(uri, model, {}, {})  # the retry after the crash
    assert [v["version"] for v in list_versions(uri)] == [retried]


def test_a_manifest_less_version_is_invisible_and_cannot_be_promoted(uri, tmp_path):
    good = register(uri, make_model(tmp_path / "m", "g"), {}, {})
    overwrite(uri, "versions/20990101T000000000000Z-deadbeef/model/encoder.pt", b"half")
    assert [v["version"] for v in list_versions(uri)] == [good]
    with pytest.raises(RegistryError, match="MANIFEST"):
        set_champion(uri, "20990101T000000000000Z-deadbeef")


def test_a_changed_file_makes_the_version_untrusted(uri, tmp_path):
    v1 = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    set_champion(uri, v1)
    overwrite(uri, f"versions/{v1}/model/meta.json", b'{"out_dim": 99}')
    with pytest.raises(RegistryError, match=r"model/meta\.json has sha256"):
        verify(uri, v1)
    assert list_versions(uri) == []
    with pytest.raises(RegistryError):
        champion(uri)


def test_register_stage_retry_is_idempotent(uri, tmp_path):
    paths = Paths.under(tmp_path / "outputs")
    make_model(paths.model, "r")
    _, decision = write_inputs(paths.probe, passed=True)
    decision.rename(paths.decision)
    cfg = registry_config(uri)
    first = stage.run("register", cfg, paths)
    again = stage.run("register", cfg, paths)
    assert again.version == first.version and again.note.startswith("same model")
    assert len(list_versions(uri)) == 1
    assert [h["version"] for h in champion_history(uri)] == [first.version]
    assert json.loads(paths.registration.read_text())["registry"] == uri


def test_versions_are_immutable(uri, tmp_path):
    v1 = register(uri, make_model(tmp_path / "m", "1"), {}, {})
    backend = backend_for(uri)
    with pytest.raises(RegistryError, match="immutable"):
        files = {"model/x": tmp_path / "m" / "meta.json"}
        backend.publish(f"{registry.VERSIONS}/{v1}", files, (registry.MANIFEST, b"{}"))
    verify(uri, v1)
