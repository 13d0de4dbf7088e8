"""`model.arch: mamba` trains, saves, loads and embeds through the same stage, checkpoint and Encoder API as the CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from isoclr import registry, stage
from isoclr.checkpoint import read_encoder, write_encoder
from isoclr.cli import app
from isoclr.config import Config, ModelConfig
from isoclr.embed import Encoder, random_encoder
from isoclr.embedding_files import read_embeddings
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


def test_a_registered_mamba_loads_from_the_registry_and_embeds_as_before(tmp_path):
    """mamba_tiny through a file:// registry: Encoder.from_registry and `isoclr embed` give the embedding the
    model gave before it was saved and registered (a CNN rebuilt from its weights could not)."""
    cfg = ModelConfig(arch="mamba", mamba={"size": "mamba_tiny"})
    model = random_encoder(cfg, seed=5)
    seqs = {"a": "ACGTACGTTTGACCA" * 7, "b": "GGGCCCAAATTT" * 3, "c": "ATGC" * 40}
    before = Encoder(model).embed(seqs).pooled
    write_encoder(tmp_path / "model", model, cfg)
    uri = f"file://{tmp_path / 'registry'}"
    version = registry.register(uri, tmp_path / "model", {}, {"note": "mamba_tiny"})
    registry.set_champion(uri, version)

    encoder = Encoder.from_registry(uri)
    assert isinstance(encoder.model, MambaEncoder) and encoder.version == version
    assert encoder.out_dim == 64 and encoder.meta["model_config"]["mamba"]["size"] == "mamba_tiny"
    np.testing.assert_array_equal(encoder.embed(seqs).pooled, before)

    fasta = tmp_path / "mine.fa"
    fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in seqs.items()))
    out = tmp_path / "e.parquet"
    result = CliRunner().invoke(app, ["embed", "--model", uri, "--fasta", str(fasta), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ids, cli = read_embeddings(out)
    assert ids == list(seqs)
    np.testing.assert_array_equal(cli, before)
