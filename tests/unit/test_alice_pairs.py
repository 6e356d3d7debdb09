"""ALICE's pair selection: Ledoit–Wolf against scikit-learn, the low-rank JSD against the dense
formula and a 1-D hand computation, and the selection of the most confusable pair."""

import math

import numpy as np
import pytest
import torch
from sklearn.covariance import ledoit_wolf_shrinkage as sk_shrinkage

from alice.pairs import class_gaussians, jsd_dense, ledoit_wolf_shrinkage, most_confusable_pairs, pair_jsd


def test_ledoit_wolf_matches_scikit_learn():
    x = np.random.default_rng(0).normal(size=(15, 40))
    xc = x - x.mean(0)
    assert ledoit_wolf_shrinkage(torch.from_numpy(xc)).item() == pytest.approx(sk_shrinkage(xc, assume_centered=True),
                                                                               rel=1e-9)


def test_jsd_in_one_dimension_by_hand():
    """P = N(0, 1), Q = N(2, 1): Σ_m = 1 + 1 = 2, JSD = 4/2/16 + ½ ln 2."""
    mu_p, mu_q, one = torch.zeros(1, dtype=torch.double), torch.full((1,), 2.0, dtype=torch.double), torch.eye(1).double()
    assert jsd_dense(mu_p, one, mu_q, one).item() == pytest.approx(4 / 2 / 16 + 0.5 * math.log(2))


def test_low_rank_jsd_equals_the_dense_formula_for_every_pair():
    g = torch.Generator().manual_seed(0)
    c, n, d = 6, 5, 30
    labels = torch.arange(c).repeat_interleave(n)
    feats = torch.randn(c * n, d, generator=g) + torch.randn(c, d, generator=g).repeat_interleave(n, 0) * 2
    labels[-1] = 0  # unequal class sizes (class 5 has 4 items, class 0 has 6)
    gs = class_gaussians(feats, labels, c)
    pairs = torch.combinations(torch.arange(c), 2)
    fast = pair_jsd(gs, pairs, chunk=4)
    dense = torch.stack([jsd_dense(gs.means[p], gs.covariance(p), gs.means[q], gs.covariance(q)) for p, q in pairs.tolist()])
    assert torch.allclose(fast, dense, rtol=1e-8, atol=1e-8)
    assert (fast > 0).all() and (gs.shrinkage > 0).all() and (gs.shrinkage < 1).all()


def test_most_confusable_pair_is_the_closest_and_excluded_pairs_are_skipped():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.5, 0.0], [0.0, 10.0]]).repeat(1, 4)  # d = 8
    labels = torch.arange(4).repeat_interleave(12)
    feats = centres[labels] + torch.randn(48, 8, generator=g)
    pairs, jsd = most_confusable_pairs(feats, labels, 4, budget=2)
    assert pairs[0] == (1, 2) and jsd[0] < jsd[1]
    pairs, _ = most_confusable_pairs(feats, labels, 4, budget=1, exclude={(1, 2)})
    assert pairs != [(1, 2)]
