"""CAL: active learning by acquiring contrastive examples (Margatina et al. 2021, §2)."""

from __future__ import annotations

import torch

from exil.common.strategies import heuristics
from exil.common.strategies.base import ScoreStrategy
from exil.common.strategies.context import QueryContext


class CAL(ScoreStrategy):
    """Candidates whose predictions diverge most from those of their nearest labelled neighbours.

    ``s(x) = 1/k Σ_{j ∈ kNN(x)} KL(p(y|x_j^l) ‖ p(y|x))`` over the ``k`` labelled items nearest to
    ``x`` in feature space (see :func:`~exil.common.strategies.heuristics.contrastive_scores`).

    Args:
        neighbours: k, the number of labelled neighbours (fewer if fewer are labelled).
        chunk_size: candidates (and labelled items) per block of the nearest-neighbour search.
    """

    name = "cal"

    def __init__(self, neighbours: int = 10, chunk_size: int = 4096):
        if neighbours < 1:
            raise ValueError(f"CAL needs at least one neighbour, got neighbours={neighbours}")
        self.neighbours = neighbours
        self.chunk_size = chunk_size

    def score(self, ctx: QueryContext) -> torch.Tensor:
        if not len(ctx.datamodule.labelled_indices):
            raise ValueError("CAL compares candidates with labelled neighbours: label some items first")
        h, p = ctx.features_and_probs("pool")
        h_l, p_l = ctx.features_and_probs("labelled")
        return heuristics.contrastive_scores(h, p, h_l, p_l, self.neighbours, self.chunk_size)
