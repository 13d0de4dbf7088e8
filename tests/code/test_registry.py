"""Model registry (file:// backend): immutable verified versions, atomic champion pointer, champion resolution."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from isoclr.config import Config
from isoclr.errors import IsoclrError
from isoclr.registry import (
    ABSENT,
    CHAMPION,
    POINTER,
    FileBackend,
    RegistryError,
    backend_for,
    champion,
    champion_history,
    download,
    list_versions,
    new_version_id,
    register,
    registered_version,
    resolve,
    set_champion,
    verify,
)
from tests.conftest import tiny_params
from tests.helpers import write_inputs  # noqa: F401 (tests/integration/test_pushgateway.py imports it from here)


@pytest.fixture
def model_dir(tmp_path) -> Path:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "encoder.pt").write_bytes(b"\x00weights\x01" * 100)
    (model / "meta.json").write_text('{"out_dim": 16}')
    (model / "sub" / "extra.txt").write_text("nested files are kept")
    return model


@pytest.fixture
def uri(tmp_path) -> str:
    return f"file://{tmp_path / 'registry'}"


def test_register_list_champion(uri, model_dir, tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"halflife": {}}')
    assert list_versions(uri) == [] and champion(uri) is None

    v1 = register(uri, model_dir, {"metrics": metrics}, {"note": "first"})
    v2 = register(uri, model_dir, {}, {"note": "second"})
    versions = list_versions(uri)
    assert [v["version"] for v in versions] == [v1, v2]  # oldest first
    assert "model/sub/extra.txt" in versions[0]["files"] and "attachments/metrics.json" in versions[0]["files"]
    assert versions[0]["metadata"]["note"] == "first" and versions[0]["metadata"]["version"] == v1
    assert champion(uri) is None  # registering does not promote

    set_champion(uri, v2)
    set_champion(uri, v1)  # rollback
    assert champion(uri) == v1
    assert [v["champion"] for v in list_versions(uri)] == [True, False]
    pointer = json.loads((Path(uri.removeprefix("file://")) / POINTER).read_text())
    assert [h["version"] for h in pointer["history"]] == [v2, v1] and pointer["history"][1]["previous"] == v2

    out = download(uri, v1, tmp_path / "fetched")
    assert (out / "encoder.pt").read_bytes() == (model_dir / "encoder.pt").read_bytes()
    assert (out / "sub" / "extra.txt").exists()


def test_a_corrupted_file_makes_the_version_untrusted(uri, model_dir):
    v1 = register(uri, model_dir, {}, {})
    set_champion(uri, v1)
    root = Path(uri.removeprefix("file://"))
    (root / "versions" / v1 / "model" / "encoder.pt").write_bytes(b"tampered")

    with pytest.raises(RegistryError, match=r"model/encoder\.pt has sha256 .* the manifest says"):
        verify(uri, v1)
    assert list_versions(uri) == []
    with pytest.raises(RegistryError, match="encoder.pt"):
        champion(uri)  # the pointer names a version that no longer verifies: loud, not silent
    with pytest.raises(RegistryError):
        set_champion(uri, v1)


def test_a_file_added_after_the_fact_is_not_trusted(uri, model_dir):
    v1 = register(uri, model_dir, {}, {})
    (Path(uri.removeprefix("file://")) / "versions" / v1 / "model" / "smuggled.bin").write_bytes(b"x")
    with pytest.raises(RegistryError, match="not in the manifest"):
        verify(uri, v1)


def test_a_version_without_manifest_is_invisible(uri, model_dir):
    good = register(uri, model_dir, {}, {})
    root = Path(uri.removeprefix("file://"))
    # a crash before the manifest: the files are there, the manifest is not
    crashed = new_version_id()
    shutil.copytree(root / "versions" / good / "model", root / "versions" / crashed / "model")
    # and a crash inside the file backend's staging area
    (root / ".staging" / "half").mkdir(parents=True)
    (root / ".staging" / "half" / "encoder.pt").write_bytes(b"partial")

    assert [v["version"] for v in list_versions(uri)] == [good]
    with pytest.raises(RegistryError, match="MANIFEST"):
        set_champion(uri, crashed)
    assert champion(uri) is None


def test_unknown_version_cannot_become_champion(uri, model_dir):
    v1 = register(uri, model_dir, {}, {})
    set_champion(uri, v1)
    with pytest.raises(RegistryError, match="no version 'nope'"):
        set_champion(uri, "nope")
    assert champion(uri) == v1


def test_version_ids_sort_by_time_and_are_unique():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    ids = [new_version_id(t0 + timedelta(microseconds=i)) for i in (0, 1, 10, 1_000_000)]
    assert ids == sorted(ids)
    assert len({new_version_id(t0) for _ in range(50)}) == 50


def test_uris(tmp_path, monkeypatch, model_dir):
    monkeypatch.chdir(tmp_path)
    v = register("file://rel/reg", model_dir, {}, {})
    assert (tmp_path / "rel" / "reg" / "versions" / v / "MANIFEST.json").exists()
    assert [x["version"] for x in list_versions("rel/reg")] == [v]  # a plain path is the same registry
    assert isinstance(backend_for(f"file://{tmp_path}/abs"), FileBackend)
    with pytest.raises(RegistryError, match="no backend for scheme 'nosuch'"):
        list_versions("nosuch://bucket/registry")


def test_file_backend_swap_is_compare_and_swap(tmp_path):
    backend = FileBackend(tmp_path)
    assert backend.read("a/b.json") == (None, ABSENT)
    assert backend.swap("a/b.json", b"1", ABSENT) is True
    assert backend.swap("a/b.json", b"2", ABSENT) is False  # ABSENT: only if absent
    data, generation = backend.read("a/b.json")
    assert data == b"1"
    assert backend.swap("a/b.json", b"3", generation) is True
    assert backend.swap("a/b.json", b"4", generation) is False  # stale generation: nothing written
    assert backend.get("a/b.json") == b"3" and backend.list("a/") == ["a/b.json"]
    assert backend.list("") == ["a/b.json"]  # the lock files stay hidden
    with pytest.raises(KeyError):
        backend.get("missing")


def test_set_champion_twice_is_a_no_op(uri, model_dir):
    v1 = register(uri, model_dir, {}, {})
    set_champion(uri, v1)
    set_champion(uri, v1)  # a retried promotion
    assert [h["version"] for h in champion_history(uri)] == [v1]


def test_registry_uri_is_checked_in_the_config():
    params = tiny_params()
    for bad in ("s3://bucket/models", "gs:///models"):
        params["registry"] = {"uri": bad}
        with pytest.raises(ValueError, match="registry.uri"):
            Config.model_validate(params)


def test_resolve_names_a_version_or_the_champion(uri, model_dir):
    with pytest.raises(RegistryError, match=rf"^{re.escape(uri)} has no champion yet$"):
        resolve(uri, CHAMPION)
    v1 = register(uri, model_dir, {}, {})
    v2 = register(uri, model_dir, {}, {})
    assert resolve(uri, v1) == v1  # a version id is taken as it is (readers verify it when they fetch)
    set_champion(uri, v2)
    assert resolve(uri, CHAMPION) == resolve(uri) == v2
    set_champion(uri, v1)
    assert resolve(uri, "champion") == v1


def test_registry_errors_are_project_errors():
    assert issubclass(RegistryError, IsoclrError)
    with pytest.raises(IsoclrError, match="no backend for scheme"):
        backend_for("nosuch://x")


def test_registered_version_finds_the_same_files(uri, model_dir, tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text("{}")
    assert registered_version(uri, model_dir, {"metrics": metrics}) is None
    v1 = register(uri, model_dir, {"metrics": metrics}, {"note": "metadata does not count"})
    assert registered_version(uri, model_dir, {"metrics": metrics}) == v1
    assert registered_version(uri, model_dir, {}) is None  # the attachments are part of the identity
    metrics.write_text('{"changed": 1}')
    assert registered_version(uri, model_dir, {"metrics": metrics}) is None
