"""ALICE's pair selection: Ledoit–Wolf against scikit-learn; the JSD against the 1-D closed form and a
Monte-Carlo estimate of ½KL(P‖M) + ½KL(Q‖M) (independent of the closed form's derivation); the low-rank and
dense forms against each other; many images per class in bounded memory; the most confusable pair chosen."""

import math

import numpy as np
import pytest
import torch
from sklearn.covariance import ledoit_wolf_shrinkage as sk_shrinkage
from torch.distributions import MultivariateNormal

from exil.alice.pairs import class_gaussians, jsd_dense, ledoit_wolf_shrinkage, most_confusable_pairs, pair_jsd


@pytest.mark.parametrize("n, d", [(15, 40), (400, 6)])
def test_ledoit_wolf_matches_scikit_learn(n, d):
    x = np.random.default_rng(0).normal(size=(n, d)) * np.linspace(0.5, 3, d)
    xc = x - x.mean(0)
    assert ledoit_wolf_shrinkage(torch.from_numpy(xc)).item() == pytest.approx(sk_shrinkage(xc, assume_centered=True),
                                                                               rel=1e-9)


def test_jsd_in_one_dimension_by_hand():
    """P = N(0, 1), Q = N(2, 1): Σ_m = 1 + 2²/4 = 2; the KLs' quadratic terms cancel: JSD = ½ ln 2 = 0.3466."""
    mu_p, mu_q, one = torch.zeros(1, dtype=torch.double), torch.full((1,), 2.0, dtype=torch.double), torch.eye(1).double()
    assert jsd_dense(mu_p, one, mu_q, one).item() == pytest.approx(0.5 * math.log(2), abs=1e-12)
    # by hand in general 1-D: Σ_m = (σp² + σq²)/2 + Δ²/4
    sp, sq, delta = 0.7, 2.5, 3.0
    sm = (sp + sq) / 2 + delta ** 2 / 4
    dbl = {"dtype": torch.double}
    got = jsd_dense(torch.zeros(1, **dbl), torch.full((1, 1), sp, **dbl), torch.full((1,), delta, **dbl),
                    torch.full((1, 1), sq, **dbl))
    assert got.item() == pytest.approx(0.5 * math.log(sm) - 0.25 * (math.log(sp) + math.log(sq)), abs=1e-12)


def monte_carlo_jsd(mu_p, cov_p, mu_q, cov_q, samples: int, gen: torch.Generator) -> tuple[float, float]:
    """½E_P[ln p − ln m] + ½E_Q[ln q − ln m] by sampling, M the moment-matched Gaussian; (estimate, std error)."""
    delta = mu_p - mu_q
    m = MultivariateNormal((mu_p + mu_q) / 2, (cov_p + cov_q) / 2 + torch.outer(delta, delta) / 4)
    terms = []
    for mu, cov in ((mu_p, cov_p), (mu_q, cov_q)):
        dist = MultivariateNormal(mu, cov)
        x = mu + torch.randn(samples, len(mu), generator=gen, dtype=mu.dtype) @ torch.linalg.cholesky(cov).T
        terms.append(dist.log_prob(x) - m.log_prob(x))
    est = 0.5 * terms[0].mean() + 0.5 * terms[1].mean()
    se = math.sqrt(0.25 * terms[0].var().item() / samples + 0.25 * terms[1].var().item() / samples)
    return float(est), se


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5])
def test_jsd_matches_a_monte_carlo_estimate(d):
    gen = torch.Generator().manual_seed(d)
    for _ in range(3):  # several random pairs per dimension
        mus = [torch.randn(d, generator=gen, dtype=torch.double) * 1.5 for _ in range(2)]
        covs = []
        for _ in range(2):
            a = torch.randn(d, d, generator=gen, dtype=torch.double)
            covs.append(a @ a.T / d + 0.3 * torch.eye(d, dtype=torch.double))
        est, se = monte_carlo_jsd(mus[0], covs[0], mus[1], covs[1], 200_000, gen)
        closed = jsd_dense(mus[0], covs[0], mus[1], covs[1]).item()
        assert abs(closed - est) < 5 * se + 1e-4, (d, closed, est, se)


def test_the_fitted_class_gaussians_match_monte_carlo_in_both_forms():
    gen = torch.Generator().manual_seed(7)
    c, n, d = 3, 6, 4  # 2n + 1 = 13 > d: auto is dense; the low-rank form is forced for comparison
    labels = torch.arange(c).repeat_interleave(n)
    feats = torch.randn(c * n, d, generator=gen, dtype=torch.double) + torch.randn(c, d, generator=gen).double()[labels]
    pairs = torch.combinations(torch.arange(c), 2)
    dense, low = class_gaussians(feats, labels, c, form="dense"), class_gaussians(feats, labels, c, form="low_rank")
    assert not dense.low_rank and low.low_rank and class_gaussians(feats, labels, c).dense is not None
    jd, jl = pair_jsd(dense, pairs), pair_jsd(low, pairs)
    assert torch.allclose(jd, jl, rtol=1e-10, atol=1e-12)
    for (p, q), v in zip(pairs.tolist(), jd):
        est, se = monte_carlo_jsd(dense.means[p], dense.covariance(p), dense.means[q], dense.covariance(q), 200_000, gen)
        assert abs(v.item() - est) < 5 * se + 1e-4


def test_low_rank_and_dense_forms_agree_for_every_pair_in_chunks():
    g = torch.Generator().manual_seed(0)
    c, n, d = 6, 5, 30  # d ≥ 2n + 1: auto is low rank
    labels = torch.arange(c).repeat_interleave(n)
    feats = torch.randn(c * n, d, generator=g) + torch.randn(c, d, generator=g).repeat_interleave(n, 0) * 2
    labels[-1] = 0  # unequal class sizes (class 5 has 4 items, class 0 has 6)
    gs = class_gaussians(feats, labels, c)
    assert gs.low_rank
    pairs = torch.combinations(torch.arange(c), 2)
    fast = pair_jsd(gs, pairs, chunk_bytes=1)  # one pair per chunk, cross Grams per chunk
    assert torch.allclose(fast, pair_jsd(gs, pairs), rtol=1e-12)  # one Gram of all classes
    dense = torch.stack([jsd_dense(gs.means[p], gs.covariance(p), gs.means[q], gs.covariance(q)) for p, q in pairs.tolist()])
    assert torch.allclose(fast, dense, rtol=1e-8, atol=1e-8)
    assert torch.allclose(pair_jsd(class_gaussians(feats, labels, c, form="dense"), pairs), dense, rtol=1e-8)
    assert (fast > 0).all() and (gs.shrinkage > 0).all() and (gs.shrinkage < 1).all()


def test_many_images_per_class_in_one_dimension():
    """Two 1-D classes of 20,000 points (the Gram of all samples would be 40,000² doubles, 12.8 GB): the dense
    form is used, and the value is the closed form of the two fitted variances (in 1-D Ledoit–Wolf's target is
    the sample variance itself, so the shrinkage changes nothing)."""
    gen = torch.Generator().manual_seed(3)
    n = 20_000
    x = torch.cat([torch.randn(n, 1, generator=gen, dtype=torch.double),
                   2 + 1.5 * torch.randn(n, 1, generator=gen, dtype=torch.double)])
    labels = torch.arange(2).repeat_interleave(n)
    g = class_gaussians(x, labels, 2)
    assert not g.low_rank and g.dense.shape == (2, 1, 1)
    vp, vq = x[:n].var(unbiased=False).item(), x[n:].var(unbiased=False).item()
    delta = (x[:n].mean() - x[n:].mean()).item()
    sm = (vp + vq) / 2 + delta ** 2 / 4
    got = pair_jsd(g, torch.tensor([[0, 1]])).item()
    assert got == pytest.approx(0.5 * math.log(sm) - 0.25 * (math.log(vp) + math.log(vq)), rel=1e-9)


def test_all_of_fashion_mnist_sized_classes_run_in_bounded_memory():
    """10 classes × 6,000 images in 64 dimensions: 45 pairs of 64 × 64 Cholesky factorisations."""
    gen = torch.Generator().manual_seed(4)
    labels = torch.arange(10).repeat_interleave(6000)
    feats = torch.randn(60_000, 64, generator=gen) + torch.randn(10, 64, generator=gen)[labels]
    pairs, jsd = most_confusable_pairs(feats, labels, 10, budget=3)
    assert len(pairs) == 3 and (jsd[:-1] <= jsd[1:]).all() and (jsd > 0).all()


def test_most_confusable_pair_is_the_closest_and_excluded_pairs_are_skipped():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.5, 0.0], [0.0, 10.0]]).repeat(1, 4)  # d = 8
    labels = torch.arange(4).repeat_interleave(12)
    feats = centres[labels] + torch.randn(48, 8, generator=g)
    pairs, jsd = most_confusable_pairs(feats, labels, 4, budget=2)
    assert pairs[0] == (1, 2) and jsd[0] < jsd[1]
    pairs, _ = most_confusable_pairs(feats, labels, 4, budget=1, exclude={(1, 2)})
    assert pairs != [(1, 2)]
