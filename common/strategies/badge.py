"""BADGE: batch active learning by diverse gradient embeddings (Ash et al. 2020, Algorithm 1)."""

from __future__ import annotations

import numpy as np
import torch

from exil.common.strategies import heuristics
from exil.common.strategies.base import QueryStrategy, Selection
from exil.common.strategies.context import QueryContext


def gradient_kmeans_pp(
    a: torch.Tensor, h: torch.Tensor, k: int, generator: torch.Generator, block_rows: int = 32768
) -> tuple[list[int], list[float]]:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) on gradient embeddings ``g_i = a_i ⊗ h_i``, never built.

    The first centre is the largest ``‖g_i‖`` (as in the BADGE code); every next one is drawn with
    probability ∝ ``D²(i)``, the squared distance to the nearest centre so far (drawn on the CPU
    with ``generator``; uniformly among the rest if every ``D²`` is 0). Distances to a new centre
    use :func:`~exil.common.strategies.heuristics.gradient_sq_distances`: O(N·(C + d)) per step.

    ``h`` may be compact (float16, a read-only memory map): it is then read ``block_rows`` rows at a time
    in float32 (:class:`~exil.common.strategies.heuristics.RowBlocks`), so the extra memory is O(N·C) + O(N) +
    O(block_rows × d), never a float32 copy of ``h``; a float32 ``h`` is used as it is.

    Returns:
        positions in ``a`` / ``h`` in the order chosen, and ``D²`` at the time of choice (``‖g‖²`` for the first).
    """
    n = len(a)
    k = min(k, n)
    if k == 0:
        return [], []
    blocks = heuristics.RowBlocks(h, block_rows)
    a = a.to(h.device, blocks.dtype)
    g_sq = heuristics.sq_norms(a) * blocks.sq_norms()
    i = int(g_sq.argmax())
    chosen, scores = [i], [float(g_sq[i])]
    free = torch.ones(n, dtype=torch.bool)
    d2 = torch.full((n,), float("inf"), dtype=blocks.dtype, device=h.device)
    while True:
        free[i] = False
        a_c, h_c = a[i : i + 1], blocks.rows(torch.tensor([i]))
        for s, block in blocks:
            e = s + len(block)
            new = heuristics.gradient_sq_distances(a[s:e], block, a_c, h_c, g_sq[s:e])[:, 0]
            torch.minimum(d2[s:e], new, out=d2[s:e])
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
    """Uncertain *and* diverse batches: k-means++ on the last-layer gradient embeddings of the predicted labels.

    Args:
        block_rows: rows of compact (float16 / memory-mapped) features converted to float32 at a time.
    """

    name = "badge"

    def __init__(self, block_rows: int = 32768):
        self.block_rows = block_rows

    def select(self, ctx: QueryContext, k: int) -> Selection:
        h, p = ctx.features_and_probs("pool")
        a = heuristics.gradient_embedding_factors(p.to(heuristics.compute_dtype(p)))  # (N, C): small, float32
        chosen, scores = gradient_kmeans_pp(a, h, k, ctx.generator, self.block_rows)
        return Selection(ctx.candidates[np.asarray(chosen, dtype=np.int64)], scores)
