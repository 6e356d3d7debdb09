"""ALICE's class-pair selection (Liang, Zou & Yu 2020, section 3.1): the most confusable class pairs,
by the Jensen–Shannon divergence between per-class Gaussians of the pooled features.

**Per-class Gaussians.** With n_c ≈ 15 images per class and d ≈ 1,280 feature dimensions, the sample
covariance S_c (rank ≤ n_c − 1) is singular. Each class gets the Ledoit–Wolf (2004) estimate, the
convex combination with the scaled identity that minimises the expected Frobenius error, with the
shrinkage intensity estimated in closed form from the data (no tuning, always positive definite):

    Σ_c = (1 − s_c) S_c + s_c ν_c I,   ν_c = tr(S_c) / d.

**JSD.** As in the paper, each KL is taken to the moment-matched Gaussian of the mixture,
M = N(μ_m, Σ_m) with μ_m = (μ_p + μ_q)/2 and Σ_m = (Σ_p + Σ_q)/2 + ΔΔᵀ/4, Δ = μ_p − μ_q; with the
closed-form Gaussian KL, ½KL(P‖M) + ½KL(Q‖M) simplifies (the trace and mean terms cancel to one
quadratic form) to

    JSD(P, Q) = ΔᵀΣ_m⁻¹Δ / 16 + ½ ln det Σ_m − ¼ (ln det Σ_p + ln det Σ_q).

**Low rank, all pairs at once.** Σ_c = a_c I + U_c U_cᵀ with U_c = √((1 − s_c)/n_c) X_cᵀ (X_c the
centred features, d × n_c) and a_c = s_c ν_c, so Σ_m = a I + W Wᵀ with a = (a_p + a_q)/2 and
W = [U_p/√2, U_q/√2, Δ/2] of rank r ≤ n_p + n_q + 1. The determinant lemma and Woodbury's identity
turn every d × d operation into an r × r one:

    ln det Σ_m = (d − r) ln a + ln det(a I_r + WᵀW),
    ΔᵀΣ_m⁻¹Δ   = (ΔᵀΔ − (WᵀΔ)ᵀ (a I_r + WᵀW)⁻¹ (WᵀΔ)) / a,

with WᵀW and WᵀΔ assembled from one Gram matrix of all classes' U and their products with the
means. The r × r systems of a chunk of pairs are solved together by a batched Cholesky (they are
≥ a I, so well conditioned); no d × d matrix is ever formed or inverted. Cost per pair O(r³ + r²),
versus O(d³) for the dense formula (kept as :func:`jsd_dense`, the reference in tests and the bench).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class ClassGaussians:
    """Per-class Gaussians in low-rank form: Σ_c = a_c I + U_c U_cᵀ."""

    means: torch.Tensor  # (C, d)
    factors: torch.Tensor  # (C, d, n) U_c, zero-padded to the largest class
    scale: torch.Tensor  # (C,) a_c = s_c ν_c
    shrinkage: torch.Tensor  # (C,) s_c

    def covariance(self, c: int) -> torch.Tensor:
        u = self.factors[c]
        return self.scale[c] * torch.eye(u.shape[0], dtype=u.dtype, device=u.device) + u @ u.T

    def logdet(self) -> torch.Tensor:
        """ln det Σ_c for every class (C,), by the determinant lemma."""
        u, a = self.factors, self.scale
        d, n = u.shape[1], u.shape[2]
        k = a.view(-1, 1, 1) * torch.eye(n, dtype=u.dtype, device=u.device) + u.transpose(1, 2) @ u
        return (d - n) * torch.log(a) + 2 * torch.log(torch.diagonal(torch.linalg.cholesky(k), dim1=1, dim2=2)).sum(1)


def ledoit_wolf_shrinkage(x: torch.Tensor) -> torch.Tensor:
    """The Ledoit–Wolf intensity s ∈ [0, 1] for centred samples x (n, d) (as scikit-learn's
    ``ledoit_wolf_shrinkage``, computed without forming the d × d products: n × n Grams instead)."""
    n, d = x.shape
    emp_trace = (x ** 2).sum(0) / n  # diagonal of S
    mu = emp_trace.sum() / d
    beta_ = ((x ** 2).sum(1) ** 2).sum()  # Σ of the entries of X2ᵀX2 (X2 = x²) = Σ_k (Σ_i x_ki²)²
    delta_ = ((x @ x.T) ** 2).sum() / n ** 2  # ‖S‖_F² = ‖X Xᵀ‖_F² / n²
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * emp_trace.sum() + d * mu ** 2) / d
    beta = torch.minimum(beta, delta)
    return torch.where(beta > 0, beta / delta, torch.zeros_like(beta))


def class_gaussians(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                    shrinkage: float | None = None) -> ClassGaussians:
    """Per-class means and Ledoit–Wolf covariances (or a fixed ``shrinkage``) in low-rank form."""
    feats = features.double()
    counts = torch.bincount(labels, minlength=num_classes)
    if int(counts.min()) < 2:
        raise ValueError(f"every class needs at least 2 items for a covariance; counts: {counts.tolist()}")
    d, n_max = feats.shape[1], int(counts.max())
    means = torch.zeros(num_classes, d, dtype=feats.dtype, device=feats.device)
    factors = torch.zeros(num_classes, d, n_max, dtype=feats.dtype, device=feats.device)
    scale = torch.zeros(num_classes, dtype=feats.dtype, device=feats.device)
    shrink = torch.zeros(num_classes, dtype=feats.dtype, device=feats.device)
    for c in range(num_classes):  # C small loops of n × d work; the pairs are what is vectorised
        x = feats[labels == c]
        means[c] = x.mean(0)
        xc = x - means[c]
        n = len(x)
        s = ledoit_wolf_shrinkage(xc) if shrinkage is None else torch.tensor(float(shrinkage), dtype=feats.dtype)
        nu = (xc ** 2).sum() / (n * d)
        shrink[c], scale[c] = s, (s * nu).clamp_min(1e-12)
        factors[c, :, :n] = torch.sqrt((1 - s) / n) * xc.T
    return ClassGaussians(means, factors, scale, shrink)


def pair_jsd(g: ClassGaussians, pairs: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """JSD of the class pairs (P, 2), vectorised in chunks (module docstring)."""
    u, mu, a = g.factors, g.means, g.scale
    c, d, n = u.shape
    flat = u.transpose(1, 2).reshape(c * n, d)  # all classes' factor columns
    gram = (flat @ flat.T).view(c, n, c, n)  # U_iᵀ U_j blocks
    um = (flat @ mu.T).view(c, n, c)  # U_iᵀ μ_k
    mm = mu @ mu.T  # μ_iᵀ μ_k
    logdet = g.logdet()
    out = []
    for start in range(0, len(pairs), chunk):
        p, q = pairs[start:start + chunk, 0], pairs[start:start + chunk, 1]
        b = len(p)
        # WᵀW for W = [U_p/√2, U_q/√2, Δ/2]
        up_d = um[p, :, p] - um[p, :, q]  # U_pᵀΔ (b, n)
        uq_d = um[q, :, p] - um[q, :, q]  # U_qᵀΔ
        dd = mm[p, p] - 2 * mm[p, q] + mm[q, q]  # ΔᵀΔ
        r = 2 * n + 1
        wtw = torch.empty(b, r, r, dtype=u.dtype, device=u.device)
        wtw[:, :n, :n] = gram[p, :, p, :] / 2
        wtw[:, :n, n:2 * n] = gram[p, :, q, :] / 2
        wtw[:, n:2 * n, :n] = gram[q, :, p, :] / 2
        wtw[:, n:2 * n, n:2 * n] = gram[q, :, q, :] / 2
        col = torch.cat([up_d / (2 * math.sqrt(2)), uq_d / (2 * math.sqrt(2))], 1)  # (U/√2)ᵀ(Δ/2)
        wtw[:, :2 * n, 2 * n] = col
        wtw[:, 2 * n, :2 * n] = col
        wtw[:, 2 * n, 2 * n] = dd / 4
        wtd = torch.cat([up_d / math.sqrt(2), uq_d / math.sqrt(2), (dd / 2).unsqueeze(1)], 1)  # WᵀΔ (b, r)
        am = (a[p] + a[q]) / 2
        m = wtw + am.view(-1, 1, 1) * torch.eye(r, dtype=u.dtype, device=u.device)
        chol = torch.linalg.cholesky(m)
        logdet_m = (d - r) * torch.log(am) + 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)
        sol = torch.cholesky_solve(wtd.unsqueeze(2), chol).squeeze(2)
        quad = (dd - (wtd * sol).sum(1)) / am
        out.append(quad / 16 + logdet_m / 2 - (logdet[p] + logdet[q]) / 4)
    return torch.cat(out)


def jsd_dense(mu_p: torch.Tensor, cov_p: torch.Tensor, mu_q: torch.Tensor, cov_q: torch.Tensor) -> torch.Tensor:
    """The same JSD with d × d Cholesky factorisations (the straightforward reference)."""
    delta = mu_p - mu_q
    cov_m = (cov_p + cov_q) / 2 + torch.outer(delta, delta) / 4
    lm, lp, lq = (torch.linalg.cholesky(c) for c in (cov_m, cov_p, cov_q))
    logdet = lambda l: 2 * torch.log(torch.diagonal(l)).sum()  # noqa: E731
    quad = (torch.linalg.solve_triangular(lm, delta.unsqueeze(1), upper=False) ** 2).sum()
    return quad / 16 + logdet(lm) / 2 - (logdet(lp) + logdet(lq)) / 4


def most_confusable_pairs(features: torch.Tensor, labels: torch.Tensor, num_classes: int, budget: int,
                          exclude: set[tuple[int, int]] = frozenset(), shrinkage: float | None = None
                          ) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """The ``budget`` pairs (p < q) with the lowest JSD that are not in ``exclude``, and their JSDs."""
    g = class_gaussians(features, labels, num_classes, shrinkage)
    pairs = torch.combinations(torch.arange(num_classes, device=features.device), 2)
    jsd = pair_jsd(g, pairs)
    blocked = torch.zeros(num_classes, num_classes, dtype=torch.bool, device=jsd.device)
    if exclude:
        e = torch.tensor(sorted(exclude), device=jsd.device)
        blocked[e[:, 0], e[:, 1]] = True
    keep = ~blocked[pairs[:, 0], pairs[:, 1]]
    order = torch.argsort(torch.where(keep, jsd, torch.full_like(jsd, float("inf"))))[:budget]
    order = order[keep[order]]
    return [tuple(int(v) for v in pairs[i]) for i in order], jsd[order]
