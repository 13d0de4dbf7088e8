"""`model.arch: mamba` trains, saves, loads and embeds through the same stage, checkpoint and Encoder API as the CNN."""

from __future__ import annotations

import pytest
import torch

from isoclr import stage
from isoclr.checkpoint import read_encoder
from isoclr.config import Config, ModelConfig
from isoclr.embed import Encoder, random_encoder
from isoclr.mamba import MambaEncoder
from isoclr.models import ContrastiveModel, DilatedResNet
from tests.helpers import tiny_config, train_paths, write_tables

TINY_MAMBA = {"d_model": 16, "n_layers": 1, "d_state": 4}


def mamba_config(**train) -> Config:
    cfg = tiny_config(**train)
    model = cfg.model.model_copy(update={"arch": "mamba", "mamba": cfg.model.mamba.model_copy(update=TINY_MAMBA)})
    return Config.model_validate({**cfg.to_dict(), "model": model.model_dump(mode="json", exclude_none=True)})


def test_the_arch_switch_picks_the_encoder():
    assert isinstance(ContrastiveModel(ModelConfig()).encoder, DilatedResNet)
    cfg = ModelConfig(arch="mamba", mamba={"size": "mamba_small", "n_layers": 1})
    encoder = ContrastiveModel(cfg).encoder
    assert isinstance(encoder, MambaEncoder) and encoder.out_dim == 256 and len(encoder.blocks) == 1
    with pytest.raises(ValueError, match="model.mamba.size"):
        ModelConfig(arch="mamba", mamba={"size": "huge"})


def test_random_init_baseline_is_a_seeded_mamba(tmp_path):
    cfg = mamba_config().model
    a, b = random_encoder(cfg, seed=3), random_encoder(cfg, seed=3)
    assert isinstance(a, MambaEncoder)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.slow
def test_mamba_trains_through_the_stage_and_round_trips_the_checkpoint(tmp_path):
    cfg = mamba_config(steps=2)
    paths = train_paths(tmp_path, write_tables(tmp_path))
    result = stage.run("train", cfg, paths, tracks=False, progress=False)
    assert result.steps == 2
    encoder, meta = read_encoder(paths.model)
    assert isinstance(encoder, MambaEncoder) and meta["model_config"]["arch"] == "mamba"
    seqs = ["ACGTACGTTTGACCA" * 5, "GGGCCCAAATTT" * 3]
    a = Encoder.from_dir(paths.model).embed(seqs).pooled
    b = Encoder.from_dir(paths.model).embed(seqs).pooled
    assert a.shape == (2, TINY_MAMBA["d_model"]) and torch.equal(torch.as_tensor(a), torch.as_tensor(b))
