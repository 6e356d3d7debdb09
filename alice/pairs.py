"""ALICE's class-pair selection (Liang, Zou & Yu 2020, section 3.1): the most confusable class pairs,
by the Jensen–Shannon divergence between per-class Gaussians of the pooled features.

**Per-class Gaussians.** With n_c ≈ 15 images per class and d ≈ 1,280 feature dimensions, the sample
covariance S_c (rank ≤ n_c − 1) is singular. Each class gets the Ledoit–Wolf (2004) estimate, the
convex combination with the scaled identity that minimises the expected Frobenius error, with the
shrinkage intensity estimated in closed form from the data (no tuning, always positive definite):

    Σ_c = (1 − s_c) S_c + s_c ν_c I,   ν_c = tr(S_c) / d.

**JSD.** As in the paper, each KL is taken to the moment-matched Gaussian of the mixture,
M = N(μ_m, Σ_m) with μ_m = (μ_p + μ_q)/2 and Σ_m = (Σ_p + Σ_q)/2 + ΔΔᵀ/4, Δ = μ_p − μ_q. With the
Gaussian KL, KL(P‖M) = ½[tr(Σ_m⁻¹Σ_p) + ΔᵀΣ_m⁻¹Δ/4 − d + ln det Σ_m − ln det Σ_p], and the same for Q.
Since Σ_p + Σ_q = 2Σ_m − ΔΔᵀ/2, the two trace terms sum to 2d − ΔᵀΣ_m⁻¹Δ/2 and the two mean terms to
+ΔᵀΣ_m⁻¹Δ/2: the quadratic form cancels, and

    JSD(P, Q) = ½KL(P‖M) + ½KL(Q‖M) = ½ ln det Σ_m − ¼ (ln det Σ_p + ln det Σ_q).

The means enter only through Σ_m (P = N(0, 1), Q = N(2, 1): Σ_m = 2, JSD = ½ ln 2). The tests check it
against a Monte-Carlo estimate of the two KLs.

**Two forms, chosen by size.** Per pair the cost is O(min(d, r)³) with r = n_p + n_q + 1:

* *low rank* (d ≥ r, the paper's few images in many dimensions): Σ_c = a_c I + U_c U_cᵀ with
  U_c = √((1 − s_c)/n_c) X_cᵀ (X_c the centred features, d × n_c) and a_c = s_c ν_c, so
  Σ_m = a I + W Wᵀ with a = (a_p + a_q)/2 and W = [U_p/√2, U_q/√2, Δ/2] of rank ≤ r; by the
  determinant lemma ln det Σ_m = (d − r) ln a + ln det(a I_r + WᵀW). WᵀW is assembled from the Gram
  of all classes' factors and their products with the means when that Gram fits in ``chunk_bytes``
  (CUB: 200 × 15 columns), else from each class's own Gram U_cᵀU_c and, per chunk of pairs, the cross
  Grams U_pᵀU_q and U_pᵀΔ; no d × d matrix either way, and memory is bounded by ``chunk_bytes``;
* *dense* (d < r, many images in few dimensions — principal components, or thousands of images per
  class): the d × d covariances, each formed once from the features (O(n d²)), and a batched d × d
  Cholesky per chunk of pairs.

:func:`jsd_dense` is the straightforward per-pair formula (the reference in the bench).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: the memory a chunk of pairs may use for its batched matrices (bytes)
CHUNK_BYTES = 256 << 20


@dataclass
class ClassGaussians:
    """Per-class Gaussians, either in low-rank form Σ_c = a_c I + U_c U_cᵀ (``factors``) or dense (``dense``)."""

    means: torch.Tensor  # (C, d)
    scale: torch.Tensor  # (C,) a_c = s_c ν_c
    shrinkage: torch.Tensor  # (C,) s_c
    factors: torch.Tensor | None = None  # (C, d, n) U_c, zero-padded to the largest class (low-rank form)
    dense: torch.Tensor | None = None  # (C, d, d) Σ_c (dense form)

    @property
    def low_rank(self) -> bool:
        return self.factors is not None

    def covariance(self, c: int) -> torch.Tensor:
        if self.dense is not None:
            return self.dense[c]
        u = self.factors[c]
        return self.scale[c] * torch.eye(u.shape[0], dtype=u.dtype, device=u.device) + u @ u.T

    def logdet(self) -> torch.Tensor:
        """ln det Σ_c for every class (C,) (by the determinant lemma in the low-rank form)."""
        if self.dense is not None:
            return _logdet(self.dense)
        u, a = self.factors, self.scale
        d, n = u.shape[1], u.shape[2]
        k = a.view(-1, 1, 1) * torch.eye(n, dtype=u.dtype, device=u.device) + u.transpose(1, 2) @ u
        return (d - n) * torch.log(a) + _logdet(k)


def _logdet(m: torch.Tensor) -> torch.Tensor:
    """ln det of (batched) symmetric positive definite matrices, by Cholesky."""
    return 2 * torch.log(torch.diagonal(torch.linalg.cholesky(m), dim1=-2, dim2=-1)).sum(-1)


def ledoit_wolf_shrinkage(x: torch.Tensor) -> torch.Tensor:
    """The Ledoit–Wolf intensity s ∈ [0, 1] for centred samples x (n, d) (as scikit-learn's
    ``ledoit_wolf_shrinkage``), with ‖S‖_F² from the smaller of the n × n and d × d Grams."""
    n, d = x.shape
    emp_trace = (x ** 2).sum(0) / n  # diagonal of S
    mu = emp_trace.sum() / d
    beta_ = ((x ** 2).sum(1) ** 2).sum()  # Σ of the entries of X2ᵀX2 (X2 = x²) = Σ_k (Σ_i x_ki²)²
    gram = x @ x.T if n <= d else x.T @ x
    delta_ = (gram ** 2).sum() / n ** 2  # ‖S‖_F² = ‖X Xᵀ‖_F² / n² = ‖XᵀX‖_F² / n²
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * emp_trace.sum() + d * mu ** 2) / d
    beta = torch.minimum(beta, delta)
    return torch.where(beta > 0, beta / delta, torch.zeros_like(beta))


def class_gaussians(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                    shrinkage: float | None = None, form: str = "auto") -> ClassGaussians:
    """Per-class means and Ledoit–Wolf covariances (or a fixed ``shrinkage``).

    ``form``: ``low_rank`` | ``dense`` | ``auto`` (dense where d < 2 n_max + 1, the rank of a pair's Σ_m)."""
    feats = features.double()
    counts = torch.bincount(labels, minlength=num_classes)
    if int(counts.min()) < 2:
        raise ValueError(f"every class needs at least 2 items for a covariance; counts: {counts.tolist()}")
    d, n_max = feats.shape[1], int(counts.max())
    if form == "auto":
        form = "dense" if d < 2 * n_max + 1 else "low_rank"
    if form not in ("dense", "low_rank"):
        raise ValueError(f"form must be auto, dense or low_rank, got {form!r}")
    kw = {"dtype": feats.dtype, "device": feats.device}
    means, scale, shrink = torch.zeros(num_classes, d, **kw), torch.zeros(num_classes, **kw), torch.zeros(num_classes, **kw)
    factors = torch.zeros(num_classes, d, n_max, **kw) if form == "low_rank" else None
    dense = torch.zeros(num_classes, d, d, **kw) if form == "dense" else None
    for c in range(num_classes):  # C small loops of n × d work; the pairs are what is vectorised
        x = feats[labels == c]
        means[c] = x.mean(0)
        xc = x - means[c]
        n = len(x)
        s = ledoit_wolf_shrinkage(xc) if shrinkage is None else torch.tensor(float(shrinkage), **kw)
        nu = (xc ** 2).sum() / (n * d)
        shrink[c], scale[c] = s, (s * nu).clamp_min(1e-12)
        if factors is not None:
            factors[c, :, :n] = torch.sqrt((1 - s) / n) * xc.T
        else:
            dense[c] = (1 - s) * (xc.T @ xc) / n + scale[c] * torch.eye(d, **kw)
    return ClassGaussians(means, scale, shrink, factors=factors, dense=dense)


def pair_jsd(g: ClassGaussians, pairs: torch.Tensor, chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """JSD of the class pairs (P, 2), in chunks of pairs whose batched matrices fit in ``chunk_bytes``."""
    logdet = g.logdet()
    d = g.means.shape[1]
    if g.dense is not None:
        per_pair = 3 * d * d * g.dense.element_size()
        return torch.cat([_dense_chunk(g, pairs[s:s + b], logdet)
                          for b in [max(1, chunk_bytes // per_pair)] for s in range(0, len(pairs), b)])
    c, _, n = g.factors.shape
    r, size = 2 * n + 1, g.factors.element_size()
    grams = None
    if (c * n) ** 2 * size <= chunk_bytes:  # the Gram of all classes' factors fits: one product for every pair
        flat = g.factors.transpose(1, 2).reshape(c * n, d)
        grams = ((flat @ flat.T).view(c, n, c, n), (flat @ g.means.T).view(c, n, c))  # U_iᵀU_j, U_iᵀμ_k
        per_pair = 4 * r * r * size
    else:
        per_pair = (2 * d * n + 4 * r * r) * size
    own = g.factors.transpose(1, 2) @ g.factors  # U_cᵀU_c (C, n, n)
    return torch.cat([_low_rank_chunk(g, pairs[s:s + b], logdet, own, grams)
                      for b in [max(1, chunk_bytes // per_pair)] for s in range(0, len(pairs), b)])


def _dense_chunk(g: ClassGaussians, pairs: torch.Tensor, logdet: torch.Tensor) -> torch.Tensor:
    p, q = pairs[:, 0], pairs[:, 1]
    delta = g.means[p] - g.means[q]
    cov_m = (g.dense[p] + g.dense[q]) / 2 + delta.unsqueeze(2) * delta.unsqueeze(1) / 4
    return _logdet(cov_m) / 2 - (logdet[p] + logdet[q]) / 4


def _low_rank_chunk(g: ClassGaussians, pairs: torch.Tensor, logdet: torch.Tensor, own: torch.Tensor,
                    grams: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    p, q = pairs[:, 0], pairs[:, 1]
    u, a = g.factors, g.scale
    d, n = u.shape[1], u.shape[2]
    b, r = len(p), 2 * n + 1
    dd = ((g.means[p] - g.means[q]) ** 2).sum(1)  # ΔᵀΔ
    if grams is not None:
        gram, um = grams
        up_d, uq_d = um[p, :, p] - um[p, :, q], um[q, :, p] - um[q, :, q]  # U_pᵀΔ, U_qᵀΔ (b, n)
        cross = gram[p, :, q, :]  # U_pᵀU_q (b, n, n)
    else:
        up, uq = u[p], u[q]  # (b, d, n)
        delta = (g.means[p] - g.means[q]).unsqueeze(2)  # (b, d, 1)
        up_d, uq_d = (up.transpose(1, 2) @ delta).squeeze(2), (uq.transpose(1, 2) @ delta).squeeze(2)
        cross = up.transpose(1, 2) @ uq
    # WᵀW for W = [U_p/√2, U_q/√2, Δ/2]
    wtw = torch.empty(b, r, r, dtype=u.dtype, device=u.device)
    wtw[:, :n, :n] = own[p] / 2
    wtw[:, :n, n:2 * n] = cross / 2
    wtw[:, n:2 * n, :n] = cross.transpose(1, 2) / 2
    wtw[:, n:2 * n, n:2 * n] = own[q] / 2
    col = torch.cat([up_d, uq_d], 1) / (2 * math.sqrt(2))  # (U/√2)ᵀ(Δ/2)
    wtw[:, :2 * n, 2 * n] = col
    wtw[:, 2 * n, :2 * n] = col
    wtw[:, 2 * n, 2 * n] = dd / 4
    am = (a[p] + a[q]) / 2
    m = wtw + am.view(-1, 1, 1) * torch.eye(r, dtype=u.dtype, device=u.device)
    logdet_m = (d - r) * torch.log(am) + _logdet(m)
    return logdet_m / 2 - (logdet[p] + logdet[q]) / 4


def jsd_dense(mu_p: torch.Tensor, cov_p: torch.Tensor, mu_q: torch.Tensor, cov_q: torch.Tensor) -> torch.Tensor:
    """The same JSD from the d × d covariances of one pair (the straightforward reference)."""
    delta = mu_p - mu_q
    cov_m = (cov_p + cov_q) / 2 + torch.outer(delta, delta) / 4
    return _logdet(cov_m) / 2 - (_logdet(cov_p) + _logdet(cov_q)) / 4


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
