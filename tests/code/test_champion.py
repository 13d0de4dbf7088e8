"""Which champion a stage compares with: the one passed in, or the registry's read when the stage runs."""

from __future__ import annotations

import pytest

from isoclr import champion
from isoclr.config import Config
from tests.conftest import tiny_params


def config(uri: str, compare: bool = True) -> Config:
    params = tiny_params()
    params["registry"] = {"uri": uri}
    params["probe"]["compare_champion"] = compare
    return Config.model_validate(params)


@pytest.fixture
def registry_with_champion(tmp_path) -> tuple[str, str, str]:
    """A file registry with two versions, the first of them champion: (uri, champion, other)."""
    from isoclr.registry import register, set_champion

    uri = f"file://{tmp_path / 'registry'}"
    versions = []
    for tag in ("a", "b"):
        model = tmp_path / f"model_{tag}"
        model.mkdir()
        (model / "encoder.pt").write_bytes(tag.encode())
        versions.append(register(uri, model, {}, {"metrics": {}}))
    set_champion(uri, versions[0])
    return uri, versions[0], versions[1]


def test_a_given_version_is_taken_as_it_is_and_the_registry_is_not_read(registry_with_champion, monkeypatch):
    uri, current, other = registry_with_champion
    cfg = config(uri)
    assert champion.resolve(cfg) == current  # RESOLVE: read now
    monkeypatch.setattr(champion, "current", lambda uri: pytest.fail("the registry was read"))
    assert champion.resolve(cfg, other) == other
    assert champion.resolve(cfg, None) is None and champion.resolve(cfg, "") is None  # "": a pipeline's "none"


def test_no_champion_when_the_comparison_is_off_or_the_registry_has_none(registry_with_champion, tmp_path):
    uri, current, _ = registry_with_champion
    assert champion.resolve(config(uri, compare=False)) is None
    assert champion.resolve(config(uri, compare=False), current) is None
    assert champion.resolve(config(f"file://{tmp_path / 'empty'}")) is None
    assert repr(champion.RESOLVE) == "RESOLVE"
