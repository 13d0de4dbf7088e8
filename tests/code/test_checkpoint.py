"""The checkpoint formats: what encoder.pt records, which encoders this code refuses, and the resumable state."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from isoclr import __version__, checkpoint
from isoclr.artifacts import MODEL_CHECKPOINT, MODEL_META
from isoclr.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    IncompatibleModelError,
    checkpoint_header,
    read_encoder,
    rng_state,
    set_rng_state,
    write_encoder,
)
from isoclr.embed import random_encoder
from isoclr.errors import IsoclrError, MissingInputError
from tests.helpers import tiny_config, train_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model folder written by the train stage (2 steps of the tiny config)."""
    return train_tiny_model(tmp_path_factory.mktemp("trained"))[0]


def _resave(model_dir, folder, **changes):
    """The checkpoint in ``model_dir`` with ``changes`` (None: the key removed), saved in ``folder``."""
    saved = torch.load(model_dir / MODEL_CHECKPOINT, weights_only=True)
    saved.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del saved[key]
    folder.mkdir(exist_ok=True)
    torch.save(saved, folder / MODEL_CHECKPOINT)
    return folder


def test_the_train_stage_writes_what_rebuilds_the_encoder(model_dir):
    saved = torch.load(model_dir / MODEL_CHECKPOINT, weights_only=True)
    assert {k: saved[k] for k in checkpoint_header()} == checkpoint_header()
    needed = {"state_dict", "model_config", "channels", "track_layout", "format_version", "isoclr_version"}
    assert needed <= set(saved)
    meta = json.loads((model_dir / MODEL_META).read_text())
    assert meta == json.loads(json.dumps({k: v for k, v in saved.items() if k != "state_dict"}))
    encoder, read_meta = read_encoder(model_dir)
    assert not encoder.training and read_meta.keys() == meta.keys()
    assert all(torch.equal(v, saved["state_dict"][k]) for k, v in encoder.state_dict().items())


def test_write_encoder_round_trips(tmp_path):
    cfg = tiny_config()
    encoder = random_encoder(cfg.model, seed=3)
    meta = write_encoder(tmp_path / "m", encoder, cfg.model, final_loss=1.5)
    assert list(meta)[: len(checkpoint_header()) + 1] == [*checkpoint_header(), "model_config"]
    assert meta["final_loss"] == 1.5
    loaded, read_meta = read_encoder(tmp_path / "m")
    assert read_meta == meta
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([MODEL_CHECKPOINT, MODEL_META])


def test_a_missing_or_unfit_checkpoint_is_a_clear_error(model_dir, tmp_path):
    with pytest.raises(MissingInputError, match=MODEL_CHECKPOINT):
        read_encoder(tmp_path)
    saved = torch.load(model_dir / MODEL_CHECKPOINT, weights_only=True)
    wider = _resave(
        model_dir, tmp_path / "wider", model_config=dict(saved["model_config"], stage_filters=[8, 8, 16, 32])
    )
    with pytest.raises(CheckpointError, match="do not match"):
        read_encoder(wider)
    unknown = _resave(model_dir, tmp_path / "unknown", model_config=dict(saved["model_config"], attention_heads=4))
    with pytest.raises(CheckpointError, match="model_config"):
        read_encoder(unknown)
    with pytest.raises(IncompatibleModelError, match="channels"):
        read_encoder(_resave(model_dir, tmp_path / "channels", channels=["A", "C", "G", "T"]))
    with pytest.raises(CheckpointError, match="not an isoclr encoder"):
        read_encoder(_resave(model_dir, tmp_path / "bare", model_config=None))
    # One base class for the CLI's error line; ValueError for callers that caught it before.
    assert issubclass(IncompatibleModelError, CheckpointError)
    assert issubclass(CheckpointError, IsoclrError) and issubclass(CheckpointError, ValueError)


def test_incompatible_checkpoints_fail_clearly(model_dir, tmp_path):
    newer = _resave(model_dir, tmp_path / "newer", format_version=FORMAT_VERSION + 1, isoclr_version="0.9.0")
    with pytest.raises(IncompatibleModelError, match=rf"checkpoint format {FORMAT_VERSION + 1}.*isoclr 0\.9\.0"):
        read_encoder(newer)
    major = int(__version__.split(".")[0]) + 1
    with pytest.raises(IncompatibleModelError, match="compatible within a major version"):
        read_encoder(_resave(model_dir, tmp_path / "major", isoclr_version=f"{major}.0.0"))
    with pytest.raises(IncompatibleModelError, match="track layout"):
        read_encoder(_resave(model_dir, tmp_path / "layout", track_layout={"n_bit": 8}))
    with pytest.raises(IncompatibleModelError, match="not an isoclr encoder"):
        read_encoder(_resave(model_dir, tmp_path / "format", format="other"))
    # Written before the format fields existed (format 1 layout): still loads, to the same weights.
    legacy = _resave(model_dir, tmp_path / "legacy", format=None, format_version=None, track_layout=None)
    expected = read_encoder(model_dir)[0].state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in read_encoder(legacy)[0].state_dict().items())


def test_the_rng_state_restores_every_stream_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    torch.save(rng_state(), tmp_path / "rng.pt")
    draws = torch.rand(3), np.random.rand(3), random.random()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]


def test_resumable_changes_do_not_change_the_result():
    # Only settings that leave the weights alone may change between a checkpoint and its resumption.
    assert set(tiny_config().train.model_dump()) >= checkpoint.RESUMABLE_CHANGES
    assert not {"steps", "learning_rate", "seed", "batch_genes"} & checkpoint.RESUMABLE_CHANGES


class _Payload:
    """What a hostile checkpoint hides: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["state_dict", "model_config"])
def test_a_checkpoint_with_pickled_code_is_refused_without_running_it(model_dir, tmp_path, where):
    marker = tmp_path / "ran"
    hostile = _resave(model_dir, tmp_path / "hostile", **{where: _Payload(marker)})
    with pytest.raises(CheckpointError, match="refused: it holds objects other than tensors") as caught:
        read_encoder(hostile)
    assert isinstance(caught.value, IsoclrError)
    torch.save({"model_config": {}, "payload": _Payload(marker)}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load_training_state(tmp_path / "last.pt", tiny_config())
    assert not marker.exists()  # nothing was executed ...
    torch.load(hostile / MODEL_CHECKPOINT, weights_only=False)  # ... though the payload is live (the control)
    assert marker.exists()
