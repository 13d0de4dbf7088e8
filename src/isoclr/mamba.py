"""A Mamba (selective state-space) encoder over the 6-track input: a drop-in for ``isoclr.models.DilatedResNet``.

Orthrus-like: a linear stem (in_channels -> d_model per position), ``n_layers`` pre-norm residual Mamba
blocks, a final RMSNorm and a masked mean over the real positions. A block is RMSNorm -> in_proj to
2 * d_inner (x and gate z) -> short causal depthwise conv (d_conv) -> SiLU -> selective SSM with
input-dependent delta, B, C (dt_rank = ceil(d_model / 16)), A = -exp(A_log), D skip -> times SiLU(z)
-> out_proj -> residual. The scan is :mod:`isoclr.scan` (pure PyTorch, or mamba-ssm's kernel on CUDA).

``bidirectional=True`` adds, in every block, a second conv + SSM (own weights; in_proj and out_proj shared)
run over each sequence reversed within its own length; the two directions' outputs are summed before the
gate, so position t sees positions after t as well as before.

Padding (sequences end at ``lengths``, the rest is padding) never reaches a real position, so a
sequence's embedding does not depend on what it is batched with:

* the residual stream and the SSM input are zeroed at padded positions, and delta is 0 there, so the
  state passes through padding unchanged (decay 1, no input);
* the conv is causal and padding only ever follows a sequence, so a real position's conv window holds
  real positions or the conv's own left zero-padding, in both directions: the reverse direction reverses
  each sequence within its length, not the padded tensor, so its padding stays at the end too;
* norms are per position, and the pooling is masked.

Activations are channels-last inside, ``(batch, length, d_model)``; the interface is channels-first like
the CNN's. No down-sampling: ``positions`` gives one vector per nucleotide.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from isoclr import scan as ssm
from isoclr.config import MAMBA_PRESETS

try:  # the optional fused causal conv (pyproject extra "gpu")
    from causal_conv1d import causal_conv1d_fn
except ImportError:  # pragma: no cover - depends on the image
    causal_conv1d_fn = None

# delta's initial range (Mamba's): the bias of dt_proj is set so softplus(bias) is log-uniform in it.
DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4


def real_positions(lengths: Tensor, length: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(batch, length, 1)`` mask of ``dtype``: 1 at real positions, 0 at padding (channels-last)."""
    return (torch.arange(length, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(2).to(dtype)


def reverse_within(h: Tensor, lengths: Tensor) -> Tensor:
    """h (batch, length, channels) with each sequence's first ``lengths[i]`` positions reversed and its
    padding left where it is (so padding still follows the sequence). Its own inverse."""
    positions = torch.arange(h.shape[1], device=h.device)[None, :]
    index = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)
    return h.gather(1, index.unsqueeze(2).expand_as(h))


class SelectiveSSM(nn.Module):
    """One direction's causal conv and selective SSM: (batch, length, d_inner) -> (batch, length, d_inner)."""

    def __init__(self, d_inner: int, d_state: int, d_conv: int, dt_rank: int) -> None:
        super().__init__()
        self.d_state, self.dt_rank = d_state, dt_rank
        self.conv = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        # S4D-real A = -(1..d_state) per channel, kept as log(-A) so A stays negative under any update.
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        with torch.no_grad():
            nn.init.uniform_(self.dt_proj.weight, -(dt_rank**-0.5), dt_rank**-0.5)
            dt = torch.exp(torch.rand(d_inner) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
            dt = dt.clamp(min=DT_FLOOR)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)

    def forward(self, x: Tensor, mask: Tensor, options: dict[str, Any]) -> Tensor:
        """x (batch, length, d_inner), zero at padding; mask (batch, length, 1) -> y (batch, length, d_inner)
        float32, whose real positions never read padded ones. ``options``: :func:`isoclr.scan.scan`'s."""
        x = self._conv(x, options.get("use_kernel", True)) * mask
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        # delta in float32 (its bias is ~-7 at init, below bf16's resolution of small deltas); 0 at padding.
        delta = F.softplus(F.linear(dt, self.dt_proj.weight).float() + self.dt_proj.bias.float()) * mask
        A = -torch.exp(self.A_log.float())
        return ssm.scan(x, delta, A, B, C, self.D, **options)

    def _conv(self, x: Tensor, use_kernel: bool) -> Tensor:
        """Causal depthwise conv + SiLU: position t reads t - d_conv + 1 .. t (zeros before the start)."""
        length = x.shape[1]
        x = x.transpose(1, 2)
        if use_kernel and causal_conv1d_fn is not None and x.is_cuda:
            weight, bias = self.conv.weight.squeeze(1).to(x.dtype), self.conv.bias.to(x.dtype)
            return causal_conv1d_fn(x.contiguous(), weight, bias, activation="silu").transpose(1, 2)
        return F.silu(self.conv(x)[..., :length]).transpose(1, 2)


class MambaBlock(nn.Module):
    """Pre-norm residual Mamba block: (batch, length, d_model) -> same, zero at padding."""

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int, bidirectional: bool) -> None:
        super().__init__()
        d_inner = expand * d_model
        dt_rank = math.ceil(d_model / 16)
        self.norm = nn.RMSNorm(d_model, eps=1e-5)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.forward_ssm = SelectiveSSM(d_inner, d_state, d_conv, dt_rank)
        self.reverse_ssm = SelectiveSSM(d_inner, d_state, d_conv, dt_rank) if bidirectional else None
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, h: Tensor, mask: Tensor, lengths: Tensor, options: dict[str, Any] | None = None) -> Tensor:
        """h (batch, length, d_model), mask (batch, length, 1), lengths (batch,) -> (batch, length, d_model).
        ``options``: :func:`isoclr.scan.scan`'s keyword arguments."""
        options = options or {}
        xz = self.in_proj(self.norm(h))
        x, z = xz.chunk(2, dim=-1)
        x = x * mask
        y = self.forward_ssm(x, mask, options)
        if self.reverse_ssm is not None:
            backwards = self.reverse_ssm(reverse_within(x, lengths), mask, options)
            y = y + reverse_within(backwards, lengths)
        out = self.out_proj((y * F.silu(z.float())).to(xz.dtype))
        return (h + out) * mask


class MambaEncoder(nn.Module):
    """The Mamba trunk: ``(batch, in_channels, length)`` tracks -> ``(batch, out_dim)`` representation,
    with ``out_dim = d_model``. Same interface and input checks as ``DilatedResNet``."""

    # Nucleotides per position of :meth:`positions`: one (no pooling), for the reconstruction head.
    position_stride = 1

    def __init__(
        self,
        d_model: int = 256,
        n_layers: int = 3,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        bidirectional: bool = False,
        in_channels: int = 6,
    ) -> None:
        super().__init__()
        if min(d_model, n_layers, d_state, d_conv, expand, in_channels) < 1:
            raise ValueError("d_model, n_layers, d_state, d_conv, expand and in_channels must be positive")
        # Everything needed to rebuild the module: MambaEncoder(**encoder.hparams) (checkpoints record it).
        self.hparams = {
            "d_model": d_model,
            "n_layers": n_layers,
            "d_state": d_state,
            "d_conv": d_conv,
            "expand": expand,
            "bidirectional": bidirectional,
            "in_channels": in_channels,
        }
        self.in_channels = in_channels
        self.out_dim = d_model
        # isoclr.scan.scan's keywords, not weights: use_kernel=False runs the pure-PyTorch conv and scan even
        # where mamba-ssm and causal-conv1d are installed (tests); method and chunk pick the pure scan.
        self.scan_options: dict[str, Any] = {"use_kernel": True, "method": "auto", "chunk": None}
        self.stem = nn.Linear(in_channels, d_model)
        self.blocks = nn.ModuleList(
            MambaBlock(d_model, d_state, d_conv, expand, bidirectional) for _ in range(n_layers)
        )
        self.norm = nn.RMSNorm(d_model, eps=1e-5)
        with torch.no_grad():  # Mamba's pre-norm residual rescaling: each block adds ~1/sqrt(n_layers) of variance
            for block in self.blocks:
                block.out_proj.weight /= math.sqrt(n_layers)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MambaEncoder:
        """A preset of :data:`MAMBA_PRESETS` with any constructor argument overridden (e.g. ``n_layers=6``)."""
        if name not in MAMBA_PRESETS:
            raise ValueError(f"unknown mamba preset {name!r}; choose one of {sorted(MAMBA_PRESETS)}")
        return cls(**{**MAMBA_PRESETS[name], **overrides})

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: (batch, in_channels, length), lengths: (batch,) int -> (batch, out_dim) float32."""
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (batch, {self.in_channels}, length), got {tuple(x.shape)}")
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"expected lengths ({x.shape[0]},), got {tuple(lengths.shape)}")
        # Reading the lengths back to the host syncs the GPU and breaks a torch.compile graph: checked in eager only.
        if not torch.compiler.is_compiling() and (int(lengths.min()) < 1 or int(lengths.max()) > x.shape[2]):
            raise ValueError("every length must be at least 1 and at most the padded length")
        h, lengths = self.positions(x, lengths)
        return self.pool_positions(h, lengths)

    def positions(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The unpooled representation: x (batch, in_channels, length), lengths (batch,) int ->
        h (batch, out_dim, length), zero past each sequence's end, and its lengths (batch,) (one position
        per nucleotide: no down-sampling, unlike the CNN's stem pool).

        ``pool_positions(*positions(x, lengths))`` equals ``forward(x, lengths)``.
        """
        if x.ndim != 3 or x.shape[1] != self.in_channels or lengths.shape != (x.shape[0],):
            raise ValueError(
                f"expected input (batch, {self.in_channels}, length) and lengths (batch,), "
                f"got {tuple(x.shape)} and {tuple(lengths.shape)}"
            )
        lengths = lengths.to(x.device)
        mask = real_positions(lengths, x.shape[2], x.dtype)
        h = self.stem(x.transpose(1, 2) * mask) * mask
        for block in self.blocks:
            h = block(h, mask, lengths, self.scan_options)
        return (self.norm(h) * mask).transpose(1, 2), lengths

    @staticmethod
    def pool_positions(h: Tensor, lengths: Tensor) -> Tensor:
        """Masked global average: h (batch, out_dim, positions), lengths (batch,) -> (batch, out_dim) float32
        (a bf16 trunk's positions are summed in float32), as ``DilatedResNet.pool_positions``."""
        mask = real_positions(lengths, h.shape[2], h.dtype).transpose(1, 2)
        return (h * mask).sum(dim=2, dtype=torch.float32) / lengths[:, None].to(torch.float32)
