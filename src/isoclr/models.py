"""The IsoCLR encoder: a dilated residual CNN over per-nucleotide tracks, plus the training heads
(the projection head of contrastive training, the per-position head of the reconstruction baseline).

Model = trunk + head (gReLU style). Inputs are ``(batch, channels, length)``
padded to the batch's longest sequence; ``lengths`` says where each sequence
really ends. Two rules keep padding invisible, so a sequence's embedding does
not depend on what it is batched with:

* normalisation is per position over channels (no statistics across positions
  or sequences, unlike BatchNorm), and
* padded positions are set to zero after every conv unit, so the next conv
  (whose dilated kernel reaches past the end) reads the same zeros it would
  read at the end of an unpadded sequence; the max-pool and the global average
  pool are masked by the lengths.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from isoclr.alphabet import BASES
from isoclr.config import ModelConfig

# Max-pool after the stem: halves the length the tower works on.
STEM_POOL = 2


def length_mask(lengths: Tensor, length: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(batch, 1, length)`` mask of ``dtype``: 1 at real positions, 0 at padding."""
    positions = torch.arange(length, device=lengths.device)
    return (positions[None, :] < lengths[:, None]).unsqueeze(1).to(dtype)


class Padding(NamedTuple):
    """Where a padded batch's padding is: ``mask`` (batch, 1, length), 1 at real positions, 0 at
    padding; every position before ``start`` is real in every sequence of the batch."""

    mask: Tensor
    start: int

    @classmethod
    def of(cls, lengths: Tensor, length: int, dtype: torch.dtype) -> Padding:
        # The shortest length read back to the host: one GPU sync per forward, none in a compiled graph.
        start = 0 if torch.compiler.is_compiling() else int(lengths.min())
        return cls(length_mask(lengths, length, dtype), start)

    def zero(self, h: Tensor) -> Tensor:
        """h (batch, channels, length) with padded positions set to 0, in place from ``start`` on.

        A length-sorted batch is padded only near its end, so touching only that
        tail instead of multiplying the whole activation saves ~10% of a bf16
        forward pass. Safe in place: ``h`` is always a fresh GELU output, and GELU's
        backward reads its input, not its output.
        """
        if self.start == 0:
            return h * self.mask
        h[..., self.start :] *= self.mask[..., self.start :]
        return h


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels at each position of ``(batch, channels, length)``.

    Each position is normalised on its own, so padding can never leak into the
    statistics of a real position (the BatchNorm trap).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, channels, length) -> same shape (a transposed view; convs take it as it is).

        The fused ``layer_norm`` over the channels-last view is ~4x faster on CPU
        than mean/var over the channel axis (benchmarks/embed.py) and equal to it
        to float rounding (~1e-6).
        """
        return F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.weight, self.bias, self.eps).transpose(1, 2)


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` (same parameters and state dict) run as a channels-last 2-D convolution.

    A plain conv1d returns ``(batch, channels, length)`` contiguous, so every
    channel norm after it had to copy the activations to channels-last and back;
    that copying took about a third of a CPU forward pass. Run as conv2d over a
    ``(batch, channels, 1, length)`` channels-last view, the output stays
    channels-last and the norm reads it in place (benchmarks/embed.py).
    """

    def forward(self, x: Tensor) -> Tensor:
        """x: (batch, in, length) -> (batch, out, length), channels-last in memory."""
        out = F.conv2d(
            x.unsqueeze(2).contiguous(memory_format=torch.channels_last),
            self.weight.unsqueeze(2),
            self.bias,
            stride=(1, self.stride[0]),
            padding=(0, self.padding[0]),
            dilation=(1, self.dilation[0]),
            groups=self.groups,
        )
        return out.squeeze(2)


class ConvUnit(nn.Module):
    """Conv -> norm -> GELU, with padded positions zeroed afterwards."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = Conv1d(
            in_channels, out_channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size // 2)
        )
        self.norm = ChannelLayerNorm(out_channels)

    def forward(self, x: Tensor, padding: Padding) -> Tensor:
        """x: (batch, in, length) -> (batch, out, length)."""
        return padding.zero(F.gelu(self.norm(self.conv(x))))


class ResidualBlock(nn.Module):
    """Two dilated convs with a skip connection (1x1 conv where the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = ConvUnit(in_channels, out_channels, kernel_size, dilation)
        self.conv2 = Conv1d(
            out_channels, out_channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size // 2)
        )
        self.norm2 = ChannelLayerNorm(out_channels)
        self.skip = nn.Identity() if in_channels == out_channels else Conv1d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, padding: Padding) -> Tensor:
        """x: (batch, in, length) -> (batch, out, length)."""
        h = self.norm2(self.conv2(self.conv1(x, padding)))
        return padding.zero(F.gelu(h + self.skip(x)))


class DilatedResNet(nn.Module):
    """The encoder trunk: ``(batch, in_channels, length)`` tracks -> ``(batch, out_dim)`` representation."""

    # Nucleotides per position of :meth:`positions` (the stem's max-pool).
    position_stride = STEM_POOL

    def __init__(self, cfg: ModelConfig, in_channels: int = 6) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_channels = in_channels
        # stem: conv + norm, then max-pool (in forward, masked)
        self.stem = ConvUnit(in_channels, cfg.stem_filters, cfg.stem_kernel)
        # conv tower: stages of residual blocks, one dilation per stage
        blocks: list[nn.Module] = []
        width = cfg.stem_filters
        for filters, n_blocks, dilation in zip(cfg.stage_filters, cfg.stage_blocks, cfg.dilations, strict=True):
            for _ in range(n_blocks):
                blocks.append(ResidualBlock(width, filters, cfg.kernel_size, dilation))
                width = filters
        self.tower = nn.ModuleList(blocks)
        # pool: masked global average over the real length
        self.out_dim = width

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: (batch, in_channels, length), lengths: (batch,) int -> (batch, out_dim)."""
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (batch, {self.in_channels}, length), got {tuple(x.shape)}")
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"expected lengths ({x.shape[0]},), got {tuple(lengths.shape)}")
        # Reading the lengths back to the host syncs the GPU and breaks a torch.compile graph: checked in eager only.
        if not torch.compiler.is_compiling() and (int(lengths.min()) < 1 or int(lengths.max()) > x.shape[2]):
            raise ValueError("every length must be at least 1 and at most the padded length")
        h, lengths = self._trunk(x, lengths.to(x.device))
        return self.pool_positions(h, lengths)

    def positions(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The unpooled representation: x (batch, in_channels, length), lengths (batch,) int ->
        h (batch, out_dim, ceil(length / STEM_POOL)), zero past each sequence's end, and its lengths (batch,)
        ``ceil(lengths / STEM_POOL)`` (one position per STEM_POOL nucleotides, after the stem's max-pool).

        ``pool_positions(*positions(x, lengths))`` equals ``forward(x, lengths)``.
        """
        if x.ndim != 3 or x.shape[1] != self.in_channels or lengths.shape != (x.shape[0],):
            raise ValueError(
                f"expected input (batch, {self.in_channels}, length) and lengths (batch,), "
                f"got {tuple(x.shape)} and {tuple(lengths.shape)}"
            )
        return self._trunk(x, lengths.to(x.device))

    @staticmethod
    def pool_positions(h: Tensor, lengths: Tensor) -> Tensor:
        """Masked global average: h (batch, out_dim, positions), lengths (batch,) -> (batch, out_dim) float32
        (a bf16 trunk's positions are summed in float32)."""
        mask = length_mask(lengths, h.shape[2], h.dtype)
        return (h * mask).sum(dim=2, dtype=torch.float32) / lengths[:, None].to(torch.float32)

    def _trunk(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Stem, masked max-pool, tower: (batch, in_channels, length) -> (batch, out_dim, positions), lengths."""
        padding = Padding.of(lengths, x.shape[2], x.dtype)
        h = self.stem(x * padding.mask, padding)
        h, lengths = self._pool(h, lengths)
        padding = Padding.of(lengths, h.shape[2], h.dtype)
        for block in self.tower:
            h = block(h, padding)
        return h, lengths

    @staticmethod
    def _pool(h: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Masked max-pool: padding is -inf inside the pool, so a sequence's last (odd) window
        holds only its own last position, exactly as when it is pooled unpadded."""
        mask = length_mask(lengths, h.shape[2])
        h = h.masked_fill(mask == 0, float("-inf"))
        h = F.max_pool1d(h, STEM_POOL, ceil_mode=True)
        lengths = torch.div(lengths + STEM_POOL - 1, STEM_POOL, rounding_mode="floor")
        return h.masked_fill(length_mask(lengths, h.shape[2]) == 0, 0.0), lengths


class ProjectionHead(nn.Module):
    """MLP over ``cfg.projection_dims`` (training only): ``(batch, in_dim)`` -> ``(batch, projection_dims[-1])``."""

    def __init__(self, in_dim: int, dims: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for i, dim in enumerate(dims):
            layers.append(nn.Linear(width, dim))
            if i < len(dims) - 1:
                layers.append(nn.GELU())
            width = dim
        self.mlp = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, h: Tensor) -> Tensor:
        """h: (batch, in_dim) -> (batch, out_dim)."""
        return self.mlp(h)


def build_encoder(cfg: ModelConfig, in_channels: int = 6) -> nn.Module:
    """The encoder ``cfg.arch`` names: the dilated residual CNN, or Mamba (``isoclr.mamba``). Both map
    ``(batch, in_channels, length)`` tracks and ``(batch,)`` lengths to a ``(batch, out_dim)`` representation."""
    if cfg.arch == "mamba":
        from isoclr.mamba import MambaEncoder

        return MambaEncoder(**cfg.mamba.encoder_arguments(), in_channels=in_channels)
    return DilatedResNet(cfg, in_channels)


class ContrastiveModel(nn.Module):
    """Trunk (the encoder) + head (the projection, training only); only the encoder is kept.

    ``head`` swaps in any module mapping ``(batch, encoder.out_dim)`` to projections;
    by default the MLP over ``cfg.projection_dims``.
    """

    def __init__(self, cfg: ModelConfig, in_channels: int = 6, head: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = build_encoder(cfg, in_channels)
        self.head = head if head is not None else ProjectionHead(self.encoder.out_dim, cfg.projection_dims)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: (batch, in_channels, length), lengths: (batch,) ->
        representation (batch, out_dim), projection (batch, head output)."""
        h = self.encoder(x, lengths)
        return h, self.head(h)


class ReconstructionHead(nn.Module):
    """Per-position base logits (training only): a two-layer MLP applied at each position.

    A position of the trunk stands for ``stride`` nucleotides (the CNN's stem max-pool), so it
    predicts ``stride`` bases: ``(batch, in_dim, positions)`` -> ``(batch, bases, positions * stride)``.
    """

    def __init__(self, in_dim: int, stride: int, bases: int = len(BASES)) -> None:
        super().__init__()
        self.stride = stride
        self.bases = bases
        self.mlp = nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, stride * bases))

    def forward(self, h: Tensor) -> Tensor:
        """h: (batch, in_dim, positions) -> (batch, bases, positions * stride)."""
        batch, _, positions = h.shape
        out = self.mlp(h.transpose(1, 2))  # (batch, positions, stride * bases)
        return out.reshape(batch, positions * self.stride, self.bases).transpose(1, 2)


class ReconstructionModel(nn.Module):
    """Trunk (the encoder) + per-position reconstruction head (training only); only the encoder is kept.

    The masked-nucleotide baseline: the same encoder as :class:`ContrastiveModel`, trained to predict
    the masked bases from its unpooled representation (:meth:`DilatedResNet.positions`).
    """

    def __init__(self, cfg: ModelConfig, in_channels: int = 6) -> None:
        super().__init__()
        self.encoder = build_encoder(cfg, in_channels)
        stride = getattr(self.encoder, "position_stride", None)
        if stride is None or not hasattr(self.encoder, "positions"):
            raise ValueError(
                f"encoder {type(self.encoder).__name__} has no per-position representation "
                "(positions() and position_stride): it cannot be trained with the reconstruction objective"
            )
        self.head = ReconstructionHead(self.encoder.out_dim, stride)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: (batch, in_channels, length), lengths: (batch,) -> base logits (batch, bases, length)."""
        h, _ = self.encoder.positions(x, lengths)
        return self.head(h)[..., : x.shape[2]]


def build_model(cfg: ModelConfig, objective: str, in_channels: int = 6) -> nn.Module:
    """The training model of ``objective``: :class:`ContrastiveModel` or :class:`ReconstructionModel`."""
    if objective == "reconstruction":
        return ReconstructionModel(cfg, in_channels)
    if objective == "contrastive":
        return ContrastiveModel(cfg, in_channels)
    raise ValueError(f"unknown training objective {objective!r}; objectives are contrastive, reconstruction")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
