"""The reconstruct stage: masked-base targets, learning on planted motifs (and nothing on noise), outputs, the
Encoder API on its checkpoint, and the per-position head of both encoder architectures."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr import stage
from isoclr.alphabet import BASES
from isoclr.artifacts import LAST_CHECKPOINT, MODEL_META
from isoclr.checkpoint import CheckpointError
from isoclr.config import Config, ModelConfig
from isoclr.embed import Encoder, random_encoder
from isoclr.losses import IGNORE
from isoclr.metrics import StageRun
from isoclr.models import ReconstructionHead, ReconstructionModel, build_model
from isoclr.reconstruct import reconstruction_config
from isoclr.sampling import PairSampler
from isoclr.schemas import GROUPS, TRANSCRIPTS, with_cds_source
from isoclr.train import ACCURACY, train_loop
from tests.helpers import synthetic_annotation, tiny_config, train_paths, write_tables

CHANCE = 1 / len(BASES)
WINDOW = 10  # steps averaged at the start and the end of a run (one step's loss is noisy)


def reconstruction(cfg: Config) -> Config:
    return reconstruction_config(cfg)


# --------------------------------------------------------------------------- targets


def test_a_reconstruction_batch_is_the_contrastive_batch_plus_the_hidden_bases():
    transcripts, groups = synthetic_annotation()
    table = transcripts.drop(columns=["gene_id", "gene_name"]).merge(groups[groups["split"] == "train"])
    cfg = tiny_config(max_length=4096, batch_genes=6, mask_prob=0.2)  # no crop: views are whole transcripts
    contrastive = PairSampler(table, cfg.train, seed=3).sample(5)
    sampler = PairSampler(table, reconstruction(cfg).train, seed=3)
    batch = sampler.sample(5)

    assert contrastive.targets is None
    assert torch.equal(batch.x, contrastive.x) and torch.equal(batch.lengths, contrastive.lengths)
    first, second, _ = sampler.batch_rows(5)
    seqs = sampler.table["seq"].to_numpy()[np.concatenate([first, second])]
    for i, seq in enumerate(seqs):
        length = len(seq)
        assert int(batch.lengths[i]) == length
        masked = (batch.x[i, : len(BASES), :length] == CHANCE).all(dim=0).numpy()
        real = np.array([base in BASES for base in seq])
        expected = np.where(masked & real, [BASES.index(b) if b in BASES else IGNORE for b in seq], IGNORE)
        assert np.array_equal(batch.targets[i, :length].numpy(), expected)
        assert (batch.targets[i, length:] == IGNORE).all()  # padding
    share = float((batch.targets != IGNORE).sum() / batch.lengths.sum())
    assert 0.1 < share < 0.3  # about mask_prob of the real positions


# --------------------------------------------------------------------------- learning


def planted_world(kind: str, n_genes: int = 12, seed: int = 0) -> pd.DataFrame:
    """Train-split transcripts whose bases are a gene's permutation of ACGT repeated (``motif``): every base
    is as common as any other, so only context predicts a masked one; or uniform random bases (``noise``),
    where nothing does."""
    rng = np.random.default_rng(seed)
    motifs = ["".join(p) for p in itertools.permutations(BASES)]
    transcripts, groups = [], []
    for gene in range(n_genes):
        for isoform in range(3):
            length = int(rng.integers(60, 120))
            if kind == "motif":
                start = int(rng.integers(0, len(BASES)))
                seq = (motifs[gene % len(motifs)] * (length // len(BASES) + 2))[start : start + length]
            else:
                seq = "".join(rng.choice(list(BASES), length))
            tid = f"T{gene:02d}_{isoform}"
            transcripts.append(
                dict(
                    transcript_id=tid,
                    gene_id=f"G{gene:02d}",
                    gene_name=f"GENE{gene}",
                    annotation="planted",
                    species="homo_sapiens",
                    assembly="none",
                    biotype="protein_coding",
                    seq=seq,
                    length=length,
                    cds_start=None,
                    cds_end=None,
                    exon_ends=[length - 1],
                )
            )
            groups.append(
                dict(
                    transcript_id=tid,
                    gene_id=f"G{gene:02d}",
                    gene_name=f"GENE{gene}",
                    n_isoforms=3,
                    homology_group=f"hg{gene}",
                    split="train",
                    species="homo_sapiens",
                    orthologs=[],
                )
            )
    transcripts = TRANSCRIPTS.validate(with_cds_source(pd.DataFrame(transcripts)))
    groups = GROUPS.validate(pd.DataFrame(groups))
    return transcripts.drop(columns=["gene_id", "gene_name"]).merge(groups)


def train_reconstruction(kind: str) -> pd.DataFrame:
    """The step log of a short reconstruction run on a planted world."""
    cfg = reconstruction(tiny_config(steps=40, batch_genes=6, learning_rate=0.01, warmup_steps=2)).train
    torch.manual_seed(0)
    model = build_model(tiny_config().model, cfg.objective)
    return pd.DataFrame(train_loop(model, PairSampler(planted_world(kind), cfg, seed=0), cfg))


@pytest.mark.slow
def test_the_loss_falls_and_masked_bases_are_predicted_above_chance_on_planted_motifs(one_thread):
    log = train_reconstruction("motif")
    assert log["loss"].tail(WINDOW).mean() < log["loss"].head(WINDOW).mean() - 0.1
    assert log["loss"].tail(WINDOW).mean() < math.log(len(BASES)) - 0.1
    assert log[ACCURACY].tail(WINDOW).mean() > CHANCE + 0.15


@pytest.mark.slow
def test_on_random_bases_nothing_is_learned_so_the_masked_base_is_not_read_from_the_input(one_thread):
    log = train_reconstruction("noise")
    assert log[ACCURACY].tail(WINDOW).mean() < CHANCE + 0.05
    assert log["loss"].tail(WINDOW).mean() > math.log(len(BASES)) - 0.05


# --------------------------------------------------------------------------- the stage


def test_the_stage_writes_the_reconstruction_paths_and_an_encoder_the_api_loads(tmp_path, one_thread):
    cfg = tiny_config(steps=3, checkpoint_every=2)
    paths = train_paths(tmp_path / "run", write_tables(tmp_path))
    result = stage.run("reconstruct", cfg, paths, tracks=False, progress=False)

    assert not paths.model.exists() and not paths.train_log.exists()  # the contrastive model's places stay free
    meta = json.loads((paths.reconstruction_model / MODEL_META).read_text())
    assert meta["objective"] == meta["train_config"]["objective"] == "reconstruction"
    assert meta["train_config"]["steps"] == cfg.train.steps and meta["train_config"]["seed"] == cfg.train.seed
    assert "git_commit" in meta["provenance"]
    log = pd.read_csv(paths.reconstruction_log)
    assert list(log.columns) == ["step", "loss", "lr", "samples_per_s", ACCURACY] and len(log) == 3
    summary = json.loads(paths.reconstruction_summary.read_text())
    assert summary["objective"] == "reconstruction" and summary["final_masked_accuracy"] == result.final_masked_accuracy
    assert 0 <= result.final_masked_accuracy <= 1 and result.final_loss > 0
    assert (paths.reconstruction_checkpoints / LAST_CHECKPOINT).is_file()

    encoder = Encoder.from_dir(paths.reconstruction_model)  # the head was training-only: the encoder alone
    embeddings = encoder.embed(["ACGTACGTAC", "GGGCCCAAATTT"])
    assert embeddings.pooled.shape == (2, encoder.out_dim) and np.isfinite(embeddings.pooled).all()
    saved = torch.load(paths.reconstruction_model / "encoder.pt", weights_only=True)["state_dict"]
    assert set(saved) == set(random_encoder(cfg.model, seed=0).state_dict())

    meter = StageRun(cfg.metrics, "reconstruct")
    result.record(meter)
    assert meter.registry.get_sample_value("isoclr_train_masked_accuracy") == result.final_masked_accuracy


def test_a_contrastive_checkpoint_is_not_resumed_as_reconstruction(tmp_path, one_thread):
    cfg = tiny_config(steps=2, checkpoint_every=1)
    paths = train_paths(tmp_path / "run", write_tables(tmp_path))
    stage.run("train", cfg, paths, tracks=False, progress=False)
    shared = paths.replace(reconstruction_checkpoints=paths.checkpoints)  # pointed at train's checkpoints
    with pytest.raises(CheckpointError, match="objective"):
        stage.run("reconstruct", cfg, shared, resume=True, tracks=False, progress=False)


def test_the_objective_is_a_setting_and_reconstruction_needs_masking():
    cfg = tiny_config()
    assert cfg.train.objective == "contrastive"
    rebuilt = reconstruction_config(cfg, batch_processes=4)
    assert rebuilt.train.objective == "reconstruction" and rebuilt.train.batch_genes == 4 * cfg.train.batch_genes
    assert rebuilt.model == cfg.model and rebuilt.train.steps == cfg.train.steps
    with pytest.raises(ValueError, match="mask_prob"):
        tiny_config(objective="reconstruction", mask_prob=0.0)
    with pytest.raises(ValueError, match="batch_processes"):
        reconstruction_config(cfg, batch_processes=0)


# --------------------------------------------------------------------------- the per-position head


def test_each_predicted_nucleotide_comes_from_its_own_position():
    """Stride 2: nucleotides 2p and 2p+1 are read from position p and from no other."""
    torch.manual_seed(0)
    head = ReconstructionHead(in_dim=3, stride=2)
    h = torch.randn(1, 3, 5, requires_grad=True)
    logits = head(h)
    assert logits.shape == (1, len(BASES), 10)
    for j in range(10):
        (grad,) = torch.autograd.grad(logits[0, :, j].sum(), h, retain_graph=True)
        touched = (grad[0].abs().sum(dim=0) > 0).nonzero().flatten().tolist()
        assert touched == [j // 2], j


def test_the_cnn_predicts_every_nucleotide_of_a_padded_batch_as_of_each_sequence_alone(one_thread):
    torch.manual_seed(0)
    model = ReconstructionModel(tiny_config().model).eval()
    generator = torch.Generator().manual_seed(1)
    lengths = [7, 12]
    x = torch.zeros(2, 6, 12)
    for i, length in enumerate(lengths):
        x[i, torch.randint(0, 4, (length,), generator=generator), torch.arange(length)] = 1.0
    with torch.no_grad():
        batched = model(x, torch.tensor(lengths))
        alone = model(x[:1, :, :7], torch.tensor([7]))
    assert batched.shape == (2, len(BASES), 12) and alone.shape == (1, len(BASES), 7)
    assert torch.allclose(batched[0, :, :7], alone[0], atol=1e-5)


def test_the_mamba_encoder_trains_on_reconstruction_too(one_thread):
    cfg = ModelConfig(arch="mamba", mamba={"d_model": 8, "n_layers": 1, "d_state": 4})
    torch.manual_seed(0)
    model = build_model(cfg, "reconstruction")
    model.encoder.scan_options["use_kernel"] = False
    x = torch.zeros(2, 6, 9)
    x[:, 0] = 1.0
    logits = model(x, torch.tensor([9, 5]))
    assert logits.shape == (2, len(BASES), 9)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_an_encoder_without_positions_is_refused_with_a_reason(monkeypatch):
    from isoclr import models

    monkeypatch.setattr(models, "build_encoder", lambda cfg, in_channels: torch.nn.Linear(in_channels, 4))
    with pytest.raises(ValueError, match="reconstruction objective"):
        ReconstructionModel(tiny_config().model)
    with pytest.raises(ValueError, match="objectives are"):
        build_model(tiny_config().model, "autoregressive")
