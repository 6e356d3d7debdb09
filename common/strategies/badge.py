"""BADGE: batch active learning by diverse gradient embeddings (Ash et al. 2020, Algorithm 1)."""

from __future__ import annotations

import numpy as np
import torch

from common.strategies import heuristics
from common.strategies.base import QueryStrategy, Selection
from common.strategies.context import QueryContext


def gradient_kmeans_pp(
    a: torch.Tensor, h: torch.Tensor, k: int, generator: torch.Generator
) -> tuple[list[int], list[float]]:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) on gradient embeddings ``g_i = a_i ⊗ h_i``, never built.

    The first centre is the largest ``‖g_i‖`` (as in the BADGE code); every next one is drawn with
    probability ∝ ``D²(i)``, the squared distance to the nearest centre so far (drawn on the CPU
    with ``generator``; uniformly among the rest if every ``D²`` is 0). Distances to a new centre
    use :func:`~common.strategies.heuristics.gradient_sq_distances`: O(N·(C + d)) per step.

    Returns:
        positions in ``a`` / ``h`` in the order chosen, and ``D²`` at the time of choice (``‖g‖²`` for the first).
    """
    n = len(a)
    k = min(k, n)
    if k == 0:
        return [], []
    g_sq = heuristics.sq_norms(a) * heuristics.sq_norms(h)
    i = int(g_sq.argmax())
    chosen, scores = [i], [float(g_sq[i])]
    free = torch.ones(n, dtype=torch.bool)
    d2 = torch.full((n,), float("inf"), dtype=a.dtype, device=a.device)
    while True:
        free[i] = False
        new = heuristics.gradient_sq_distances(a, h, a[i : i + 1], h[i : i + 1], g_sq)[:, 0]
        torch.minimum(d2, new, out=d2)
        d2[i] = 0.0
        if len(chosen) == k:
            return chosen, scores
        w = d2.double().cpu()  # the draw happens on the CPU, with the strategy's generator
        if not w.sum() > 0:
            w = free.double()
        i = int(torch.multinomial(w, 1, generator=generator))
        chosen.append(i)
        scores.append(float(d2[i]))


class BADGE(QueryStrategy):
    """Uncertain *and* diverse batches: k-means++ on the last-layer gradient embeddings of the predicted labels."""

    name = "badge"

    def select(self, ctx: QueryContext, k: int) -> Selection:
        h, p = ctx.features_and_probs("pool")
        chosen, scores = gradient_kmeans_pp(heuristics.gradient_embedding_factors(p), h, k, ctx.generator)
        return Selection(ctx.candidates[np.asarray(chosen, dtype=np.int64)], scores)
