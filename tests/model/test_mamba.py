"""The Mamba encoder and its selective scan: the scan against the step-by-step definition, padding invariance in
both directions, bidirectionality, shapes, gradients, determinism, preset sizes, and the CUDA kernel path."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from isoclr import scan as ssm
from isoclr.mamba import MAMBA_PRESETS, MambaBlock, MambaEncoder, real_positions, reverse_within
from isoclr.models import DilatedResNet, count_parameters

CHANNELS = 6
TINY = {"d_model": 16, "n_layers": 2, "d_state": 4}


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


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: a second OpenMP thread only adds a barrier per op (seconds on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _encoder(bidirectional: bool = False, seed: int = 0, method: str = "auto") -> MambaEncoder:
    torch.manual_seed(seed)
    encoder = MambaEncoder(**TINY, bidirectional=bidirectional).eval()
    encoder.scan_options["method"] = method
    return encoder


def _scan_inputs(length: int, dtype: torch.dtype, seed: int = 0, batch: int = 2, d: int = 3, n: int = 4):
    """x, delta, A, B, C, D with requires_grad: deltas around softplus(-1), A = -exp(normal)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, d, generator=g, dtype=dtype)
    delta = F.softplus(torch.randn(batch, length, d, generator=g, dtype=dtype) - 1)
    A = -torch.exp(torch.randn(d, n, generator=g, dtype=dtype))
    B, C = (torch.randn(batch, length, n, generator=g, dtype=dtype) for _ in range(2))
    D = torch.randn(d, generator=g, dtype=dtype)
    return [t.requires_grad_() for t in (x, delta, A, B, C, D)]


# --- the scan ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sequential", "parallel"])
@pytest.mark.parametrize("length", [1, 16, 45, 100])
def test_chunked_scan_equals_the_step_by_step_reference(method, length):
    # chunk 16: one chunk, an exact multiple, and non-multiples of the chunk
    inputs = _scan_inputs(length, torch.float64, seed=length)
    expected = ssm.selective_scan_reference(*inputs)
    upstream = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, inputs, upstream)
    got = ssm.selective_scan(*inputs, chunk=16, method=method)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)
    grads = torch.autograd.grad(got, inputs, upstream)
    for name, g, e in zip(["x", "delta", "A", "B", "C", "D"], grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, atol=1e-11, rtol=1e-9, msg=f"gradient of {name}")


def test_scan_is_stable_when_decays_underflow():
    # log-decays of -50 per step: exp(-cumsum) would overflow within two steps; every decay here is in [0, 1]
    x, delta, A, B, C, D = (t.detach() for t in _scan_inputs(100, torch.float32))
    delta = delta + 50.0
    for method in ("sequential", "parallel"):
        y = ssm.selective_scan(x, delta, A, B, C, D, chunk=32, method=method)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y, ssm.selective_scan_reference(x, delta, A, B, C, D), atol=1e-4, rtol=1e-5)


def test_zero_delta_makes_a_position_invisible():
    # What padding relies on: delta = 0 leaves the state unchanged, so the other positions' outputs are those
    # of the sequence without it.
    x, delta, A, B, C, D = (t.detach().double() for t in _scan_inputs(30, torch.float64))
    holes = torch.zeros(30, dtype=torch.bool)
    holes[[3, 10, 11, 29]] = True
    y = ssm.selective_scan(x, delta.masked_fill(holes[None, :, None], 0.0), A, B, C, D, chunk=8)
    keep = ~holes
    y_without = ssm.selective_scan(x[:, keep], delta[:, keep], A, B[:, keep], C[:, keep], D, chunk=8)
    torch.testing.assert_close(y[:, keep], y_without)


def test_scan_rejects_unknown_method_and_chunk():
    inputs = [t.detach() for t in _scan_inputs(5, torch.float32)]
    with pytest.raises(ValueError, match="method"):
        ssm.selective_scan(*inputs, method="fast")
    with pytest.raises(ValueError, match="chunk"):
        ssm.selective_scan(*inputs, chunk=0)


def test_reverse_within_reverses_each_sequence_in_its_own_length():
    h = torch.arange(10.0).repeat(2, 1)[..., None]  # (batch 2, length 10, 1 channel): each position's index
    out = reverse_within(h, torch.tensor([10, 4]))
    assert out[0, :, 0].tolist() == list(range(9, -1, -1))
    assert out[1, :, 0].tolist() == [3, 2, 1, 0, 4, 5, 6, 7, 8, 9]  # padding stays after the sequence
    torch.testing.assert_close(reverse_within(out, torch.tensor([10, 4])), h)


# --- padding ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sequential", "parallel"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("length", [50, 333])
def test_padding_a_batch_does_not_change_an_embedding(bidirectional, length, method):
    encoder = _encoder(bidirectional, method=method)
    g = torch.Generator().manual_seed(length)
    seq = _tracks(length, g)
    with torch.no_grad():
        alone = encoder(*_pad([seq]))
        # the same sequence beside a much longer one and a short one
        padded = encoder(*_pad([_tracks(7, g), seq, _tracks(700, g)]))
    torch.testing.assert_close(padded[1], alone[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_values_are_never_read(bidirectional):
    encoder = _encoder(bidirectional)
    g = torch.Generator().manual_seed(1)
    x, lengths = _pad([_tracks(120, g), _tracks(400, g)])
    garbage = x.clone()
    garbage[0, :, 120:] = 7.0  # whatever sits in the padding must not matter
    with torch.no_grad():
        torch.testing.assert_close(encoder(garbage, lengths), encoder(x, lengths), atol=1e-6, rtol=0)


def test_a_block_never_lets_padded_activations_into_real_positions_in_either_direction():
    # Deeper than the input: garbage in the residual stream at padded positions (what a block could be handed
    # if a mask were missed) must not reach a real position through the conv window or the reverse scan.
    torch.manual_seed(0)
    block = MambaBlock(d_model=8, d_state=4, d_conv=4, expand=2, bidirectional=True)
    lengths = torch.tensor([9, 20])
    mask = real_positions(lengths, 20)
    h = torch.randn(2, 20, 8) * mask
    dirty = h + 100.0 * (1 - mask)
    with torch.no_grad():
        torch.testing.assert_close(block(dirty, mask, lengths), block(h, mask, lengths), atol=1e-6, rtol=0)


# --- direction --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_position_t_sees_later_positions_only_when_bidirectional(bidirectional):
    encoder = _encoder(bidirectional)
    g = torch.Generator().manual_seed(2)
    x, lengths = _pad([_tracks(80, g)])
    later, earlier = x.clone(), x.clone()
    later[0, :, 41:] = _tracks(39, g)  # change only positions after t = 40
    earlier[0, :, :40] = _tracks(40, g)  # change only positions before t = 40
    with torch.no_grad():
        h, _ = encoder.positions(x, lengths)
        h_later, _ = encoder.positions(later, lengths)
        h_earlier, _ = encoder.positions(earlier, lengths)
    future_effect = (h_later[0, :, 40] - h[0, :, 40]).abs().max().item()
    past_effect = (h_earlier[0, :, 40] - h[0, :, 40]).abs().max().item()
    assert past_effect > 1e-3
    if bidirectional:
        assert future_effect > 1e-3
    else:
        assert future_effect == 0.0


# --- interface --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_shapes_positions_and_pooling_agree(bidirectional):
    encoder = _encoder(bidirectional)
    x, lengths = _pad([_tracks(n, torch.Generator().manual_seed(n)) for n in (50, 300, 129)])
    with torch.no_grad():
        pooled = encoder(x, lengths)
        h, position_lengths = encoder.positions(x, lengths)
    assert encoder.out_dim == TINY["d_model"]
    assert pooled.shape == (3, TINY["d_model"]) and pooled.dtype == torch.float32
    assert h.shape == (3, TINY["d_model"], 300)
    assert torch.equal(position_lengths, lengths)
    assert (h[0, :, 50:] == 0).all() and (h[2, :, 129:] == 0).all()
    assert torch.isfinite(pooled).all()
    torch.testing.assert_close(encoder.pool_positions(h, position_lengths), pooled)
    # the same pooling as the CNN's, so embed's per-position code serves both
    torch.testing.assert_close(DilatedResNet.pool_positions(h, position_lengths), pooled)


def test_input_checks_match_the_cnn():
    encoder = _encoder()
    x, lengths = _pad([_tracks(20, torch.Generator().manual_seed(0))] * 2)
    bad = [
        (x[:, :5], lengths, "expected input"),
        (x[0], lengths, "expected input"),
        (x, lengths[:1], "expected lengths"),
        (x, torch.tensor([0, 20]), "at least 1"),
        (x, torch.tensor([21, 20]), "at most the padded length"),
    ]
    for inputs, lens, message in bad:
        with pytest.raises(ValueError, match=message):
            encoder(inputs, lens)
    with pytest.raises(ValueError, match="expected input"):
        encoder.positions(x[:, :5], lengths)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradients_reach_every_parameter(bidirectional):
    encoder = _encoder(bidirectional).train()
    x, lengths = _pad([_tracks(n, torch.Generator().manual_seed(n)) for n in (40, 90)])
    encoder(x, lengths).pow(2).sum().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_the_same_seed_builds_the_same_model_and_output():
    x, lengths = _pad([_tracks(n, torch.Generator().manual_seed(n)) for n in (30, 70)])
    first, second, other = _encoder(True, seed=3), _encoder(True, seed=3), _encoder(True, seed=4)
    with torch.no_grad():
        assert torch.equal(first(x, lengths), second(x, lengths))
        assert not torch.equal(first(x, lengths), other(x, lengths))


def test_bf16_autocast_stays_close_to_float32_and_trains():
    encoder = _encoder(True).train()
    x, lengths = _pad([_tracks(n, torch.Generator().manual_seed(n)) for n in (60, 150)])
    with torch.no_grad():
        full = encoder(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = encoder(x, lengths)
        half.pow(2).sum().backward()  # the scan runs in float32 inside autocast, forward and backward
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    torch.testing.assert_close(half.detach(), full, atol=0.05, rtol=0.05)
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())


def test_a_bf16_model_embeds():
    # isoclr.embed may cast the whole encoder to bf16 for inference (no autocast)
    encoder = _encoder(True).to(torch.bfloat16)
    x, lengths = _pad([_tracks(n, torch.Generator().manual_seed(n)) for n in (60, 150)])
    with torch.no_grad():
        h, position_lengths = encoder.positions(x.to(torch.bfloat16), lengths)
        pooled = encoder.pool_positions(h, position_lengths)
    assert h.dtype == torch.bfloat16 and pooled.dtype == torch.float32 and torch.isfinite(pooled).all()


# Orthrus's sizes, measured here (constructor defaults d_state 16, d_conv 4, expand 2); mamba_tiny (not an
# Orthrus size) is bounded by its purpose: fewer parameters than the default CNN's 218,400.
PRESET_PARAMETERS = {
    ("mamba_tiny", False, None): (65_920, 5.0e4, 1.0e5),
    ("mamba_tiny", True, None): (82_048, 6.0e4, 1.2e5),
    ("mamba_small", False, None): (1_316_096, 1.2e6, 1.5e6),
    ("mamba_small", True, None): (1_449_728, 1.3e6, 1.6e6),
    ("mamba_base", False, None): (6_785_024, 6.0e6, 7.5e6),
    ("mamba_base", False, 6): (10_175_488, 9.0e6, 11.0e6),
}


@pytest.mark.parametrize(("preset", "bidirectional", "n_layers"), sorted(PRESET_PARAMETERS, key=str))
def test_preset_parameter_counts(preset, bidirectional, n_layers):
    overrides = {"bidirectional": bidirectional} | ({"n_layers": n_layers} if n_layers else {})
    encoder = MambaEncoder.from_preset(preset, **overrides)
    n = count_parameters(encoder)
    exact, low, high = PRESET_PARAMETERS[(preset, bidirectional, n_layers)]
    print(f"{preset} {overrides}: {n:,} parameters")
    assert low < n < high
    assert n == exact
    assert encoder.out_dim == MAMBA_PRESETS[preset]["d_model"]
    assert len(encoder.blocks) == (n_layers or MAMBA_PRESETS[preset]["n_layers"])
    assert MambaEncoder(**encoder.hparams).hparams == encoder.hparams  # a checkpoint can rebuild it


def test_unknown_preset_and_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="unknown mamba preset"):
        MambaEncoder.from_preset("mamba_huge")
    with pytest.raises(ValueError, match="positive"):
        MambaEncoder(d_model=0)


# --- the CUDA kernels -------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not (torch.cuda.is_available() and ssm.HAS_MAMBA_SSM),
    reason="needs a CUDA device and the optional mamba-ssm kernels (pip install 'isoclr[gpu]')",
)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cuda_kernels_agree_with_the_pure_pytorch_scan(bidirectional):
    encoder = _encoder(bidirectional).cuda().train()
    x, lengths = _pad([_tracks(n, torch.Generator().manual_seed(n)) for n in (100, 700, 333)])
    x, lengths = x.cuda(), lengths.cuda()
    results = []
    for use_kernel in (True, False):
        encoder.scan_options["use_kernel"] = use_kernel
        encoder.zero_grad()
        out = encoder(x, lengths)
        out.pow(2).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in encoder.parameters()]))
    (kernel, kernel_grads), (pure, pure_grads) = results
    torch.testing.assert_close(kernel, pure, atol=1e-4, rtol=1e-4)
    for g_kernel, g_pure in zip(kernel_grads, pure_grads, strict=True):
        torch.testing.assert_close(g_kernel, g_pure, atol=1e-3, rtol=1e-3)
