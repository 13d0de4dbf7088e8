"""Training losses: decoupled contrastive loss (DCL) and NT-Xent (SimCLR); masked-base reconstruction.

The math lives in pure functions; the nn.Modules only check hyper-parameters
(lightly / solo-learn style). Both losses

* L2-normalise the projections,
* are symmetric: every item of both views is an anchor once, and
* optionally mask same-group items out of the negatives: transcripts of the
  same gene or homology group are never pushed apart, and
* optionally weight each pair (both of its anchors) by a per-gene positive
  weight, :func:`positive_weight` = log(n_isoforms + 0.4) / 0.802, so genes
  with many isoforms count more, and/or by a weight of its pair type
  (:func:`pair_weights`); the loss is then the mean of weighted terms (a pair
  of weight 0 adds nothing to the sum but still counts in the mean, and its
  items stay negatives of the other anchors).

For anchor ``a`` with positive ``p`` and cosine similarities ``s`` divided by
the temperature, over the ``2 * batch`` items of both views:

    NT-Xent: -s(a, p) + log sum_{k != a, not masked} exp s(a, k)     (positive in the denominator)
    DCL:     -s(a, p) + log sum_{k != a, k != p, not masked} exp s(a, k)

An anchor left with no negative at all (every other item is in its group) has
no DCL term; it is left out of the mean. NT-Xent gives it zero.

Under DDP the caller gathers ``z1``, ``z2``, ``groups`` and ``weights`` from all
ranks first (:func:`isoclr.distributed.gather`), so negatives span the global batch.

The reconstruction baseline (:func:`masked_base_loss`) is cross-entropy over the four
bases at the masked positions of real bases only: unmasked positions, N and padding
carry the target :data:`IGNORE` and add nothing (unmasked bases are visible in the
input, so predicting them would reward copying).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# Per-gene positive weight log(n + ISOFORM_OFFSET) / ISOFORM_SCALE: a single-isoform
# gene weighs 0.42, a gene with two isoforms 1.09, with ten 2.92.
ISOFORM_OFFSET = 0.4
ISOFORM_SCALE = 0.802
# Reconstruction target of a position the loss skips (unmasked, N, padding): F.cross_entropy's ignore_index.
IGNORE = -100


def positive_weight(n_isoforms: Tensor) -> Tensor:
    """(batch,) isoform counts (>= 1) -> (batch,) float weights log(n + 0.4) / 0.802."""
    if bool((n_isoforms < 1).any()):
        raise ValueError("isoform counts must be at least 1")
    return torch.log(n_isoforms.to(torch.float32) + ISOFORM_OFFSET) / ISOFORM_SCALE


def pair_weights(
    pair_types: Tensor, n_isoforms: Tensor, type_weights: Sequence[float] | None, isoform_weighted: bool
) -> Tensor | None:
    """(n,) float32 weight of each pair: ``type_weights[pair_types]`` (one weight per pair type, indexed by the
    type), times :func:`positive_weight` of ``n_isoforms`` when ``isoform_weighted``. None (the unweighted
    path, bit-identical to no weights) when neither applies: no isoform weighting and every type weight 1.

    pair_types, n_isoforms: (n,) int64.
    """
    if type_weights is None or all(w == 1 for w in type_weights):
        return positive_weight(n_isoforms) if isoform_weighted else None
    types = pair_types.to(torch.int64)
    if len(types) and not 0 <= int(types.min()) <= int(types.max()) < len(type_weights):
        raise ValueError(f"pair types must index the {len(type_weights)} type weights, got {types.tolist()}")
    weights = torch.as_tensor(list(type_weights), dtype=torch.float32, device=types.device)[types]
    return weights * positive_weight(n_isoforms).to(weights.device) if isoform_weighted else weights


def _logits_and_masks(z1: Tensor, z2: Tensor, temperature: float, groups: Tensor | None):
    """Similarities of all ``2 * batch`` items, the index of each anchor's positive and the
    negatives mask ``(2 * batch, 2 * batch)`` (True = used as a negative)."""
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (batch, dim), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    batch = z1.shape[0]
    if batch < 1:
        raise ValueError("empty batch")
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    n = 2 * batch
    index = torch.arange(n, device=z.device)
    positive = (index + batch) % n
    negatives = ~torch.eye(n, dtype=torch.bool, device=z.device)
    negatives[index, positive] = False
    if groups is not None:
        if groups.shape != (batch,):
            raise ValueError(f"groups must be ({batch},), got {tuple(groups.shape)}")
        g = torch.cat([groups, groups]).to(z.device)
        negatives &= g[:, None] != g[None, :]
    return logits, positive, negatives


def _anchor_weights(weights: Tensor | None, batch: int, like: Tensor) -> Tensor | None:
    """(batch,) pair weights -> (2 * batch,) anchor weights (both views of a pair share it)."""
    if weights is None:
        return None
    if weights.shape != (batch,):
        raise ValueError(f"weights must be ({batch},), got {tuple(weights.shape)}")
    return torch.cat([weights, weights]).to(device=like.device, dtype=like.dtype)


def dcl_loss(
    z1: Tensor, z2: Tensor, temperature: float, groups: Tensor | None = None, weights: Tensor | None = None
) -> Tensor:
    """Decoupled contrastive loss (Yeh et al. 2022): NT-Xent without the positive in the denominator.

    Args:
        z1, z2: (batch, dim) projections of the two views; row i of each is a positive pair.
        temperature: divides the cosine similarities.
        groups: (batch,) int group of each pair; same-group items are not negatives.
        weights: (batch,) float weight of each pair (e.g. :func:`positive_weight`); None = 1.
    Returns:
        scalar mean of (weighted) terms over the anchors that have at least one negative.
    """
    logits, positive, negatives = _logits_and_masks(z1, z2, temperature, groups)
    has_negative = negatives.any(dim=1)
    if not bool(has_negative.any()):
        raise ValueError("no anchor has a negative: every item of the batch is in one group")
    pos = logits.gather(1, positive[:, None]).squeeze(1)
    # Rows without negatives are computed over everything and then dropped: an all -inf
    # row would give NaN gradients even when it is not selected.
    in_denominator = negatives | ~has_negative[:, None]
    denom = torch.logsumexp(logits.masked_fill(~in_denominator, float("-inf")), dim=1)
    terms = denom - pos
    w = _anchor_weights(weights, z1.shape[0], terms)
    if w is not None:
        terms = terms * w
    return terms[has_negative].mean()


def ntxent_loss(
    z1: Tensor, z2: Tensor, temperature: float, groups: Tensor | None = None, weights: Tensor | None = None
) -> Tensor:
    """NT-Xent / InfoNCE (SimCLR): the positive is part of the denominator.

    Args:
        z1, z2: (batch, dim) projections of the two views; row i of each is a positive pair.
        temperature: divides the cosine similarities.
        groups: (batch,) int group of each pair; same-group items are not negatives.
        weights: (batch,) float weight of each pair (e.g. :func:`positive_weight`); None = 1.
    Returns:
        scalar mean of (weighted) terms over all ``2 * batch`` anchors.
    """
    logits, positive, negatives = _logits_and_masks(z1, z2, temperature, groups)
    in_denominator = negatives.clone()
    in_denominator[torch.arange(len(positive), device=logits.device), positive] = True
    pos = logits.gather(1, positive[:, None]).squeeze(1)
    denom = torch.logsumexp(logits.masked_fill(~in_denominator, float("-inf")), dim=1)
    terms = denom - pos
    w = _anchor_weights(weights, z1.shape[0], terms)
    return (terms if w is None else terms * w).mean()


def _check_temperature(temperature: float) -> float:
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


class DCLLoss(nn.Module):
    """Decoupled contrastive loss; see :func:`dcl_loss`."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)

    def forward(self, z1: Tensor, z2: Tensor, groups: Tensor | None = None, weights: Tensor | None = None) -> Tensor:
        """z1, z2: (batch, dim); groups: (batch,) int or None; weights: (batch,) or None -> scalar."""
        return dcl_loss(z1, z2, self.temperature, groups, weights)


class NTXentLoss(nn.Module):
    """NT-Xent (SimCLR) loss; see :func:`ntxent_loss`."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)

    def forward(self, z1: Tensor, z2: Tensor, groups: Tensor | None = None, weights: Tensor | None = None) -> Tensor:
        """z1, z2: (batch, dim); groups: (batch,) int or None; weights: (batch,) or None -> scalar."""
        return ntxent_loss(z1, z2, self.temperature, groups, weights)


def masked_base_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of the hidden base over the masked positions.

    Args:
        logits: (batch, bases, length) per-position base logits.
        targets: (batch, length) int64, the base (0..bases-1) hidden at a masked position, :data:`IGNORE` elsewhere.
    Returns:
        scalar mean over the positions with a target; 0 (with a graph) when the batch has none.
    """
    _check_targets(logits, targets)
    if not bool((targets != IGNORE).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), targets, ignore_index=IGNORE)


def masked_base_accuracy(logits: Tensor, targets: Tensor) -> Tensor:
    """Share of masked positions whose arg-max base is the hidden one (shapes as :func:`masked_base_loss`);
    NaN when the batch has no masked base. Chance is 1 / bases."""
    _check_targets(logits, targets)
    scored = targets != IGNORE
    if not bool(scored.any()):
        return torch.tensor(float("nan"))
    return (logits.argmax(dim=1)[scored] == targets[scored]).float().mean()


def _check_targets(logits: Tensor, targets: Tensor) -> None:
    if logits.ndim != 3 or targets.shape != (logits.shape[0], logits.shape[2]):
        raise ValueError(
            f"logits must be (batch, bases, length) and targets (batch, length), "
            f"got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )


class MaskedBaseLoss(nn.Module):
    """Masked-nucleotide reconstruction loss; see :func:`masked_base_loss`."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits: (batch, bases, length); targets: (batch, length) int64 -> scalar."""
        return masked_base_loss(logits, targets)


LOSSES: dict[str, type[nn.Module]] = {"dcl": DCLLoss, "ntxent": NTXentLoss}
