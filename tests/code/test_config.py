import pytest
import yaml

from isoclr.config import Config, load
from tests.conftest import ROOT


def test_shipped_params_load():
    cfg = load(ROOT / "params.yaml")
    assert {t.name for t in cfg.probe.tasks} >= {"halflife", "mrl"}
    assert cfg.train.temperature == 0.1


def test_round_trip_through_plain_dict():
    cfg = load(ROOT / "params.yaml")
    assert Config.model_validate(cfg.to_dict()) == cfg


def _raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_unknown_key_is_rejected_with_file_name(tmp_path):
    raw = _raw()
    raw["train"]["stpes"] = 10
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"params.yaml.*\n(.|\n)*stpes"):
        load(path)


def test_gate_rule_must_name_a_declared_task():
    raw = _raw()
    raw["gate"]["rules"].append({"task": "nonexistent", "metric": "pearson_r", "min": 0.1})
    with pytest.raises(ValueError, match="nonexistent"):
        Config.model_validate(raw)


def test_model_stages_must_agree():
    raw = _raw()
    raw["model"]["dilations"] = [1, 2]
    with pytest.raises(ValueError, match="one entry per stage"):
        Config.model_validate(raw)


def test_gtf_format_needs_gtf():
    raw = _raw()
    del raw["data"]["annotations"][1]["gtf"]
    with pytest.raises(ValueError, match="needs a gtf"):
        Config.model_validate(raw)


def test_compile_is_refused_when_it_would_meet_many_padded_lengths():
    raw = _raw()
    raw["train"].update(compile=True, max_length=2048, pad_multiple=1)
    with pytest.raises(ValueError, match="pad_multiple >= 256"):
        Config.model_validate(raw)
    raw["train"]["pad_multiple"] = 256
    assert Config.model_validate(raw).train.padded_lengths == 8
