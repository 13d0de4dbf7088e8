"""Behavioural tests of the encoder: padding invariance, shapes, short inputs, gradients."""

from __future__ import annotations

import pytest
import torch

from isoclr.config import MODEL_PRESETS, ModelConfig
from isoclr.models import (
    ContrastiveModel,
    Conv1d,
    DilatedResNet,
    Padding,
    ProjectionHead,
    count_parameters,
)

CHANNELS = 6
TINY = ModelConfig(stem_filters=8, stage_filters=[8, 16, 16, 24], projection_dims=[32, 16])


def _tracks(length: int, generator: torch.Generator) -> torch.Tensor:
    """(6, length) one-hot bases plus sparse CDS and splice marks, like real tracks."""
    x = torch.zeros(CHANNELS, length)
    x[torch.randint(0, 4, (length,), generator=generator), torch.arange(length)] = 1.0
    x[4:] = (torch.rand(2, length, generator=generator) < 0.05).float()
    return x


def _pad(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(t.shape[1] for t in items)
    x = torch.zeros(len(items), CHANNELS, longest)
    for i, t in enumerate(items):
        x[i, :, : t.shape[1]] = t
    return x, torch.tensor([t.shape[1] for t in items])


@pytest.fixture
def encoder() -> DilatedResNet:
    torch.manual_seed(0)
    return DilatedResNet(TINY).eval()


@pytest.mark.parametrize("length", [50, 51, 333])
def test_padding_a_batch_does_not_change_an_embedding(encoder, length):
    g = torch.Generator().manual_seed(length)
    seq = _tracks(length, g)
    alone = encoder(*_pad([seq]))
    # The same sequence beside a much longer one (batch padded to 2,000) and a short one.
    padded = encoder(*_pad([_tracks(7, g), seq, _tracks(2000, g)]))
    torch.testing.assert_close(padded[1], alone[0], atol=1e-5, rtol=0)


def test_padding_values_are_never_read(encoder):
    g = torch.Generator().manual_seed(1)
    x, lengths = _pad([_tracks(120, g), _tracks(400, g)])
    garbage = x.clone()
    garbage[0, :, 120:] = 7.0  # whatever sits in the padding must not matter
    torch.testing.assert_close(encoder(garbage, lengths), encoder(x, lengths), atol=1e-6, rtol=0)


def test_output_shapes_and_dimensions():
    torch.manual_seed(0)
    model = ContrastiveModel(TINY)
    x, lengths = _pad([_tracks(n, torch.Generator().manual_seed(n)) for n in (50, 300, 1000)])
    h, z = model(x, lengths)
    assert model.encoder.out_dim == TINY.stage_filters[-1]
    assert h.shape == (3, TINY.stage_filters[-1])
    assert z.shape == (3, TINY.projection_dims[-1])
    assert torch.isfinite(h).all() and torch.isfinite(z).all()


def test_parameter_count_is_reported_and_grows_with_width():
    small = count_parameters(DilatedResNet(TINY))
    wide = count_parameters(DilatedResNet(TINY.model_copy(update={"stage_filters": [8, 16, 16, 48]})))
    assert small == sum(p.numel() for p in DilatedResNet(TINY).parameters())
    assert 0 < small < wide
    # The shipped default is the "small" regime of the published sizes (well under a million).
    assert 1e5 < count_parameters(DilatedResNet(ModelConfig())) < 1e6


@pytest.mark.parametrize("length", [1, 2, 3, 50])
def test_short_inputs_work(encoder, length):
    x, lengths = _pad([_tracks(length, torch.Generator().manual_seed(length))])
    h = encoder(x, lengths)
    assert h.shape == (1, encoder.out_dim)
    assert torch.isfinite(h).all()


def test_different_sequences_get_different_embeddings(encoder):
    g = torch.Generator().manual_seed(3)
    h = encoder(*_pad([_tracks(50, g), _tracks(50, g)]))
    assert not torch.allclose(h[0], h[1], atol=1e-4)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = ContrastiveModel(TINY)
    x, lengths = _pad([_tracks(n, torch.Generator().manual_seed(n)) for n in (50, 400)])
    _, z = model(x, lengths)
    z.pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_bad_lengths_are_rejected(encoder):
    x, _ = _pad([_tracks(10, torch.Generator().manual_seed(0))])
    with pytest.raises(ValueError, match="length"):
        encoder(x, torch.tensor([11]))
    with pytest.raises(ValueError, match="expected input"):
        encoder(x[:, :4], torch.tensor([10]))


@pytest.mark.parametrize("size, low, high, out_dim", [("small", 0.7e6, 1.0e6, 256), ("medium", 5e6, 10e6, 512)])
def test_published_sizes_are_presets(size, low, high, out_dim):
    cfg = ModelConfig(size=size)
    encoder = DilatedResNet(cfg)
    assert low < count_parameters(encoder) < high and encoder.out_dim == out_dim
    assert cfg.stage_filters == MODEL_PRESETS[size]["stage_filters"]
    # Keys beside the preset override it, and a saved config round-trips (embed reloads it).
    assert ModelConfig(size=size, kernel_size=7).kernel_size == 7
    assert ModelConfig.model_validate(cfg.model_dump(mode="json")) == cfg


def test_the_head_is_swappable():
    model = ContrastiveModel(TINY, head=ProjectionHead(TINY.stage_filters[-1], [8]))
    x, lengths = _pad([_tracks(60, torch.Generator().manual_seed(0))])
    assert model(x, lengths)[1].shape == (1, 8)


@pytest.mark.parametrize("dilation, kernel", [(1, 7), (4, 5), (1, 1)])
def test_channels_last_conv_is_a_conv1d(dilation, kernel):
    """models.Conv1d: the same parameters, state dict and output as nn.Conv1d; output stays channels-last."""
    torch.manual_seed(dilation)
    ours = Conv1d(8, 16, kernel, dilation=dilation, padding=dilation * (kernel // 2))
    plain = torch.nn.Conv1d(8, 16, kernel, dilation=dilation, padding=dilation * (kernel // 2))
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(3, 8, 101)
    out = ours(x)
    torch.testing.assert_close(out, plain(x), atol=1e-5, rtol=1e-5)
    assert out.shape == (3, 16, 101) and out.transpose(1, 2).is_contiguous()
    out.sum().backward()
    assert ours.weight.grad is not None and ours.weight.grad.shape == ours.weight.shape


def test_bf16_weights_run_and_stay_close_to_fp32(encoder):
    """The bf16 inference path (Encoder(precision='bf16')): masks follow the input's dtype."""
    g = torch.Generator().manual_seed(2)
    x, lengths = _pad([_tracks(90, g), _tracks(300, g)])
    exact = encoder(x, lengths)
    fast = DilatedResNet(TINY).eval()
    fast.load_state_dict(encoder.state_dict())
    fast = fast.to(torch.bfloat16)
    h, position_lengths = fast.positions(x.to(torch.bfloat16), lengths)
    assert h.dtype == torch.bfloat16
    pooled = DilatedResNet.pool_positions(h, position_lengths)
    assert pooled.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(pooled, exact).min() > 0.99


def test_padding_is_zeroed_from_the_shortest_length_on():
    padding = Padding.of(torch.tensor([5, 9, 7]), 9, torch.float32)
    assert padding.start == 5
    h = torch.randn(3, 4, 9)
    torch.testing.assert_close(padding.zero(h.clone()), h * padding.mask, atol=0, rtol=0)
    unpadded = Padding.of(torch.tensor([9, 9]), 9, torch.float32)
    h = torch.randn(2, 4, 9)
    torch.testing.assert_close(unpadded.zero(h.clone()), h, atol=0, rtol=0)
