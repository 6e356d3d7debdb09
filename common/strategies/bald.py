"""BALD with MC dropout (Houlsby et al. 2011; Gal, Islam & Ghahramani 2017)."""

from __future__ import annotations

import torch

from exil.common.strategies import heuristics
from exil.common.strategies.base import ScoreStrategy
from exil.common.strategies.context import QueryContext


class BALD(ScoreStrategy):
    """Mutual information between the label and the weights, ``H(E_t p_t) − E_t H(p_t)``, over ``passes`` dropout passes.

    Args:
        passes: number T of stochastic forward passes (dropout on). Each batch's masks come from a forked RNG
            seeded from the stage's seed, T and the batch's position (:class:`~exil.common.pool_map.PoolOutput`),
            so they do not depend on the order of calls or on the number of processes.
    """

    name = "bald"

    def __init__(self, passes: int = 10):
        if passes < 1:
            raise ValueError(f"BALD needs at least one pass, got passes={passes}")
        self.passes = passes

    def score(self, ctx: QueryContext) -> torch.Tensor:
        return heuristics.bald(ctx.mc_probs(self.passes))
