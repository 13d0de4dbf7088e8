"""The contrastive and reconstruction losses against slow references written straight from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from isoclr.losses import (
    IGNORE,
    LOSSES,
    DCLLoss,
    MaskedBaseLoss,
    NTXentLoss,
    dcl_loss,
    masked_base_accuracy,
    masked_base_loss,
    ntxent_loss,
    pair_weights,
    positive_weight,
)
from isoclr.sampling import Batch
from isoclr.train import batch_loss


def _reference(z1, z2, temperature, groups=None, decoupled=True, n_isoforms=None) -> float:
    """Python loops over anchors and candidates; no vectorisation, no masking tricks.

    ``n_isoforms`` weights each anchor's term by log(n + 0.4) / 0.802 of its pair's gene.
    """
    z = torch.cat([z1, z2]).double()
    z = [v / v.norm() for v in z]
    n, batch = len(z), len(z1)
    group = None if groups is None else [int(g) for g in groups] * 2
    terms = []
    for a in range(n):
        p = (a + batch) % n
        positive = float(z[a] @ z[p]) / temperature
        denominator = 0.0 if decoupled else math.exp(positive)
        negatives = 0
        for k in range(n):
            if k in (a, p):
                continue
            if group is not None and group[k] == group[a]:
                continue
            denominator += math.exp(float(z[a] @ z[k]) / temperature)
            negatives += 1
        if decoupled and negatives == 0:
            continue  # no DCL term without negatives
        weight = 1.0 if n_isoforms is None else math.log(int(n_isoforms[a % batch]) + 0.4) / 0.802
        terms.append(weight * (-positive + math.log(denominator)))
    return sum(terms) / len(terms)


@pytest.fixture
def views():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, generator=g)
    return z1, z1 + 0.5 * torch.randn(6, 5, generator=g)


GROUPS = torch.tensor([0, 0, 1, 2, 2, 2])


@pytest.mark.parametrize("groups", [None, GROUPS], ids=["plain", "grouped"])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_dcl_matches_reference(views, groups, temperature):
    got = dcl_loss(*views, temperature, groups)
    assert got.item() == pytest.approx(_reference(*views, temperature, groups, decoupled=True), rel=1e-5)


@pytest.mark.parametrize("groups", [None, GROUPS], ids=["plain", "grouped"])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_ntxent_matches_reference(views, groups, temperature):
    got = ntxent_loss(*views, temperature, groups)
    assert got.item() == pytest.approx(_reference(*views, temperature, groups, decoupled=False), rel=1e-5)


@pytest.mark.parametrize("loss, decoupled", [(dcl_loss, True), (ntxent_loss, False)])
def test_group_masking_changes_the_value_exactly_as_the_reference(views, loss, decoupled):
    plain, grouped = loss(*views, 0.1), loss(*views, 0.1, GROUPS)
    assert abs(plain.item() - grouped.item()) > 1e-3  # masking same-group negatives matters
    expected = _reference(*views, 0.1, GROUPS, decoupled) - _reference(*views, 0.1, None, decoupled)
    assert grouped.item() - plain.item() == pytest.approx(expected, rel=1e-4)
    # All-distinct groups mask nothing.
    assert loss(*views, 0.1, torch.arange(6)).item() == pytest.approx(plain.item(), rel=1e-6)


def test_losses_are_symmetric_and_scale_invariant(views):
    z1, z2 = views
    for loss in (dcl_loss, ntxent_loss):
        assert loss(z2, z1, 0.1).item() == pytest.approx(loss(z1, z2, 0.1).item(), rel=1e-6)
        assert loss(3 * z1, z2, 0.1).item() == pytest.approx(loss(z1, z2, 0.1).item(), rel=1e-5)


def test_dcl_is_ntxent_without_the_positive(views):
    # Aligned views make the positive dominate the NT-Xent denominator, so the two differ.
    z1, _ = views
    assert dcl_loss(z1, z1, 0.1).item() < ntxent_loss(z1, z1, 0.1).item()


def test_anchor_without_negatives_is_left_out_without_nan_gradients():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(4, 3, generator=g, requires_grad=True)
    z2 = torch.randn(4, 3, generator=g)
    groups = torch.tensor([0, 0, 0, 1])  # pairs 0-2 still see pair 3 as a negative
    loss = dcl_loss(z1, z2, 0.1, groups)
    loss.backward()
    assert loss.item() == pytest.approx(_reference(z1.detach(), z2, 0.1, groups), rel=1e-5)
    assert torch.isfinite(z1.grad).all()
    with pytest.raises(ValueError, match="one group"):
        dcl_loss(z1, z2, 0.1, torch.zeros(4, dtype=torch.int64))


@pytest.mark.parametrize("module", [DCLLoss, NTXentLoss])
@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.1"])
def test_temperature_is_checked_in_init(module, bad):
    with pytest.raises(ValueError, match="temperature"):
        module(bad)


@pytest.mark.parametrize("module, fn", [(DCLLoss, dcl_loss), (NTXentLoss, ntxent_loss)])
def test_modules_wrap_the_functions(views, module, fn):
    assert module(0.2)(*views, GROUPS).item() == fn(*views, 0.2, GROUPS).item()


def test_shape_errors_are_clear(views):
    z1, z2 = views
    with pytest.raises(ValueError, match="z1 and z2"):
        dcl_loss(z1, z2[:3], 0.1)
    with pytest.raises(ValueError, match="groups"):
        ntxent_loss(z1, z2, 0.1, torch.zeros(3, dtype=torch.int64))


def test_positive_weight_is_the_published_formula():
    n = torch.tensor([1, 2, 3, 10])
    expected = [math.log(k + 0.4) / 0.802 for k in (1, 2, 3, 10)]
    assert positive_weight(n).tolist() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="at least 1"):
        positive_weight(torch.tensor([0, 2]))


@pytest.mark.parametrize("loss, decoupled", [(dcl_loss, True), (ntxent_loss, False)])
@pytest.mark.parametrize("groups", [None, GROUPS], ids=["plain", "grouped"])
def test_weighted_losses_match_reference(views, loss, decoupled, groups):
    n_isoforms = torch.tensor([1, 4, 2, 7, 1, 3])
    got = loss(*views, 0.1, groups, positive_weight(n_isoforms))
    expected = _reference(*views, 0.1, groups, decoupled, n_isoforms)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert abs(got.item() - loss(*views, 0.1, groups).item()) > 1e-3  # the weights matter
    with pytest.raises(ValueError, match="weights"):
        loss(*views, 0.1, groups, torch.ones(3))


def test_weighted_gradients_match_the_reference_autograd(views):
    # The reference in float64 with autograd gives the gradient the vectorised loss must give.
    z1, z2 = (v.clone().requires_grad_(True) for v in views)
    n_isoforms = torch.tensor([1, 4, 2, 7, 1, 3])
    dcl_loss(z1, z2, 0.1, GROUPS, positive_weight(n_isoforms)).backward()
    r1, r2 = (v.double().clone().requires_grad_(True) for v in views)
    z = torch.nn.functional.normalize(torch.cat([r1, r2]), dim=1)
    sims = z @ z.T / 0.1
    n, batch = len(z), len(r1)
    group = GROUPS.tolist() * 2
    terms = []
    for a in range(n):
        p = (a + batch) % n
        negatives = [k for k in range(n) if k not in (a, p) and group[k] != group[a]]
        if negatives:
            w = math.log(int(n_isoforms[a % batch]) + 0.4) / 0.802
            terms.append(w * (torch.logsumexp(sims[a, negatives], 0) - sims[a, p]))
    torch.stack(terms).mean().backward()
    torch.testing.assert_close(z1.grad, r1.grad.float(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(z2.grad, r2.grad.float(), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- masked-base reconstruction


def _masked_reference(logits, targets) -> tuple[float, float]:
    """Loops over positions: mean -log softmax of the hidden base, and the share predicted right, over the
    positions whose target is a base (IGNORE elsewhere)."""
    nll, right, n = 0.0, 0, 0
    for b in range(logits.shape[0]):
        for j in range(logits.shape[2]):
            target = int(targets[b, j])
            if target == IGNORE:
                continue
            column = [float(v) for v in logits[b, :, j]]
            top = max(column)
            nll += -(column[target] - top - math.log(sum(math.exp(v - top) for v in column)))
            right += int(column.index(top) == target)
            n += 1
    return nll / n, right / n


def test_masked_base_loss_and_accuracy_match_a_reference_over_masked_real_positions_only():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 11, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 4, (3, 11), generator=generator)
    ignored = torch.rand(3, 11, generator=generator) < 0.6  # unmasked positions, N, and padding
    ignored[2, 7:] = True  # the third sequence is padded from position 7
    targets[ignored] = IGNORE
    loss, accuracy = masked_base_loss(logits, targets), masked_base_accuracy(logits, targets)
    expected_loss, expected_accuracy = _masked_reference(logits, targets)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-6)
    assert float(accuracy) == pytest.approx(expected_accuracy)

    # whatever the logits say at ignored positions (unmasked, N, padding), the loss is the same and gets no gradient
    changed = logits.clone()
    changed[ignored.unsqueeze(1).expand_as(logits)] = 1e3 * torch.randn(int(ignored.sum()) * 4, dtype=torch.float64)
    assert float(masked_base_loss(changed, targets)) == pytest.approx(expected_loss, rel=1e-6)
    leaf = logits.clone().requires_grad_(True)
    masked_base_loss(leaf, targets).backward()
    assert (leaf.grad[ignored.unsqueeze(1).expand_as(logits)] == 0).all()
    assert (leaf.grad[~ignored.unsqueeze(1).expand_as(logits)] != 0).all()
    assert float(MaskedBaseLoss()(logits, targets)) == float(loss)


def test_a_batch_without_masked_bases_adds_nothing_and_bad_shapes_are_refused():
    logits = torch.randn(2, 4, 5, requires_grad=True)
    nothing = torch.full((2, 5), IGNORE)
    loss = masked_base_loss(logits, nothing)
    loss.backward()
    assert loss.item() == 0.0 and (logits.grad == 0).all()
    assert math.isnan(float(masked_base_accuracy(logits, nothing)))
    with pytest.raises(ValueError, match="targets"):
        masked_base_loss(logits, torch.zeros(2, 6, dtype=torch.int64))


# --------------------------------------------------------------------------- pair-type weights


def _naive_terms(z1, z2, temperature, groups, decoupled) -> list[float | None]:
    """Each anchor's unweighted term by explicit numpy sums (None: a DCL anchor without negatives)."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n, batch = len(z), len(z1)
    group = list(groups) * 2
    terms = []
    for a in range(n):
        p = (a + batch) % n
        positive = float(np.dot(z[a], z[p])) / temperature
        negatives = [
            math.exp(float(np.dot(z[a], z[k])) / temperature)
            for k in range(n)
            if k not in (a, p) and group[k] != group[a]
        ]
        if decoupled and not negatives:
            terms.append(None)
            continue
        denominator = sum(negatives) + (0.0 if decoupled else math.exp(positive))
        terms.append(math.log(denominator) - positive)
    return terms


def _naive_weighted(terms, pair_weight) -> float:
    """Mean over anchors with a term of weight * term; both anchors of pair i weigh ``pair_weight[i]``."""
    batch = len(terms) // 2
    kept = [(pair_weight[a % batch], t) for a, t in enumerate(terms) if t is not None]
    return sum(w * t for w, t in kept) / len(kept)


class _Identity(torch.nn.Module):
    """A 'model' whose projections are its input rows: batch_loss then sees the given z."""

    def forward(self, x, lengths):
        return None, x


PAIR_TYPE_ROWS = torch.tensor([3, 1, 2, 0, 3, 1])  # ortholog, isoform, paralog, self, ortholog, isoform
TYPE_WEIGHTS = (0.5, 1.0, 2.0, 3.0)  # self, isoform, paralog, ortholog (PAIR_TYPES order)


def _batch(z1, z2, n_isoforms):
    x = torch.cat([z1, z2])
    lengths = torch.ones(len(x), dtype=torch.int64)
    return Batch(x, lengths, GROUPS, n_isoforms, PAIR_TYPE_ROWS)


@pytest.mark.parametrize("loss_name", ["dcl", "ntxent"])
@pytest.mark.parametrize("isoform_weighted", [False, True])
def test_pair_type_weights_against_a_reference_loss(views, loss_name, isoform_weighted):
    z1, z2 = views
    n_isoforms = torch.tensor([1, 4, 2, 7, 1, 3])
    terms = _naive_terms(z1.numpy(), z2.numpy(), 0.1, GROUPS.tolist(), decoupled=loss_name == "dcl")
    iso = [math.log(int(k) + 0.4) / 0.802 if isoform_weighted else 1.0 for k in n_isoforms]
    per_pair = [TYPE_WEIGHTS[int(t)] * iso[i] for i, t in enumerate(PAIR_TYPE_ROWS)]
    loss = LOSSES[loss_name](0.1)
    got = batch_loss(_Identity(), loss, _batch(z1, z2, n_isoforms), isoform_weighted, TYPE_WEIGHTS)
    assert float(got) == pytest.approx(_naive_weighted(terms, per_pair), abs=1e-5)
    direct = (dcl_loss if loss_name == "dcl" else ntxent_loss)(
        z1, z2, 0.1, GROUPS, pair_weights(PAIR_TYPE_ROWS, n_isoforms, TYPE_WEIGHTS, isoform_weighted)
    )
    assert float(direct) == pytest.approx(_naive_weighted(terms, per_pair), abs=1e-5)

    # weight 0 for orthologs: their anchors' terms leave the sum (they still count in the mean and stay negatives)
    zero = (0.5, 1.0, 2.0, 0.0)
    dropped = batch_loss(_Identity(), loss, _batch(z1, z2, n_isoforms), isoform_weighted, zero)
    ortholog = [int(t) == 3 for t in PAIR_TYPE_ROWS]
    batch = len(ortholog)
    kept = [t for t in terms if t is not None]
    others = sum(
        TYPE_WEIGHTS[int(PAIR_TYPE_ROWS[a % batch])] * iso[a % batch] * t
        for a, t in enumerate(terms)
        if t is not None and not ortholog[a % batch]
    )
    assert float(dropped) == pytest.approx(others / len(kept), abs=1e-5)
    assert float(dropped) != pytest.approx(float(got), abs=1e-3)


def test_unit_type_weights_keep_the_unweighted_loss(views):
    z1, z2 = views
    n_isoforms = torch.tensor([1, 4, 2, 7, 1, 3])
    assert pair_weights(PAIR_TYPE_ROWS, n_isoforms, (1.0,) * 4, False) is None
    assert torch.equal(pair_weights(PAIR_TYPE_ROWS, n_isoforms, (1.0,) * 4, True), positive_weight(n_isoforms))
    for name in ("dcl", "ntxent"):
        loss = LOSSES[name](0.1)
        plain = batch_loss(_Identity(), loss, _batch(z1, z2, n_isoforms), False, (1.0,) * 4)
        assert torch.equal(plain, loss(z1, z2, GROUPS))  # bit-identical: no weights passed at all
    with pytest.raises(ValueError, match="index the 2 type weights"):
        pair_weights(PAIR_TYPE_ROWS, n_isoforms, (1.0, 2.0), False)
