"""Core-set selection by greedy k-center (Sener & Savarese 2018, §4.2, Algorithm 1)."""

from __future__ import annotations

import torch

from exil.common.strategies import heuristics
from exil.common.strategies.base import QueryStrategy, Selection
from exil.common.strategies.context import QueryContext


def k_center_greedy(
    x: torch.Tensor,
    centres: torch.Tensor | None,
    k: int,
    generator: torch.Generator,
    chunk_size: int = 4096,
    block_rows: int = 32768,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy k-center: repeatedly pick ``u = argmax_i min_j ‖x_i − c_j‖`` and add it to the centres.

    Args:
        x: (N, d) candidate embeddings: float32 / float64, or compact (float16, a read-only memory map).
        centres: (M, d) embeddings of the labelled set, or ``None`` / empty: the first centre is
            then drawn uniformly with ``generator``.
        k: how many to pick (at most N).
        generator: CPU generator for the first draw when there are no centres.
        chunk_size: block size of the initial N × M distances (never held at once).
        block_rows: rows of a compact ``x`` converted to float32 at a time (see
            :class:`~exil.common.strategies.heuristics.RowBlocks`); a float32 ``x`` is used as it is.

    Returns:
        (k,) positions in ``x`` in the order chosen, and (k,) their distance to the nearest centre
        when chosen (NaN for a first centre drawn at random). Both on ``x.device``, the scores in
        float32 (float64 for a float64 ``x``).

    Each step costs one matrix-vector product (distances to the new centre only); the loop never
    leaves the device (no host synchronisation). Extra memory: O(N) (the running minimum and the
    squared norms) + O(chunk_size²) + O(block_rows × d), never a float32 copy of a compact ``x``.
    The step is memory-bound (it reads the whole of ``x`` once), so float16 halves what it reads.
    """
    n = len(x)
    k = min(k, n)
    blocks = heuristics.RowBlocks(x, block_rows)
    dtype = blocks.dtype
    x_sq = blocks.sq_norms()
    chosen = torch.empty(k, dtype=torch.long, device=x.device)
    scores = torch.empty(k, dtype=dtype, device=x.device)
    if centres is not None and len(centres):
        centres = centres.to(x.device, dtype)
        if blocks.direct:
            min_d = heuristics.min_sq_distances(x, centres, chunk_size)
        else:
            min_d = torch.empty(n, dtype=dtype, device=x.device)
            for s, block in blocks:
                min_d[s : s + len(block)] = heuristics.min_sq_distances(block, centres, chunk_size)
        start = 0
    else:
        if k == 0:
            return chosen, scores
        first = torch.randint(n, (1,), generator=generator).to(x.device)
        min_d = torch.full((n,), float("inf"), dtype=dtype, device=x.device)
        chosen[:1], scores[:1] = first, float("nan")
        start = 1
    for t in range(k):
        if t >= start:
            i = min_d.argmax().view(1)
            chosen[t : t + 1] = i
            scores[t : t + 1] = min_d.index_select(0, i)
        i = chosen[t : t + 1]
        c, c_sq = blocks.rows(i)[0], x_sq.index_select(0, i)
        for s, block in blocks:
            # ‖x_j − c‖² = ‖x_j‖² − 2 x_j·c + ‖c‖²: one matrix-vector product per step
            e = s + len(block)
            d = torch.addmv(x_sq[s:e], block, c, alpha=-2.0).add_(c_sq)
            torch.minimum(min_d[s:e], d, out=min_d[s:e])
        min_d.index_fill_(0, i, float("-inf"))  # never chosen twice, even if its own distance does not round to 0
    return chosen, scores.clamp_min_(0.0).sqrt_()


class CoreSet(QueryStrategy):
    """Candidates that best cover the pool: greedy k-center over ``ctx.embeddings`` with the labelled set as initial centres.

    Args:
        chunk_size: block size (rows and columns) of the initial candidate × labelled distances.
        block_rows: rows of compact (float16 / memory-mapped) embeddings converted to float32 at a time.
    """

    name = "coreset"

    def __init__(self, chunk_size: int = 4096, block_rows: int = 32768):
        self.chunk_size = chunk_size
        self.block_rows = block_rows

    def select(self, ctx: QueryContext, k: int) -> Selection:
        x = ctx.embeddings("pool")
        centres = ctx.embeddings("labelled") if len(ctx.datamodule.labelled_indices) else None
        chosen, scores = k_center_greedy(x, centres, k, ctx.generator, self.chunk_size, self.block_rows)
        return Selection(ctx.candidates[chosen.cpu().numpy()], scores.double().cpu().numpy())
