"""Uncertainty sampling on the predictive distribution p(y|x) (Settles 2009, §3.1).

Three classic scores of the softmax output, each a :mod:`~exil.common.strategies.heuristics`
function ranked by :class:`~exil.common.strategies.base.ScoreStrategy` (highest first).
"""

from __future__ import annotations

import torch

from exil.common.strategies import heuristics
from exil.common.strategies.base import ScoreStrategy
from exil.common.strategies.context import QueryContext


class Entropy(ScoreStrategy):
    """Maximum entropy: ``H(p) = −Σ_c p_c log p_c``."""

    name = "entropy"

    def score(self, ctx: QueryContext) -> torch.Tensor:
        return heuristics.entropy(ctx.probs("pool"))


class Margin(ScoreStrategy):
    """Smallest margin, a.k.a. breaking ties: ``−(p_(1) − p_(2))``."""

    name = "margin"

    def score(self, ctx: QueryContext) -> torch.Tensor:
        return heuristics.margin(ctx.probs("pool"))


class LeastConfidence(ScoreStrategy):
    """Least confidence: ``1 − max_c p_c``."""

    name = "least_confidence"

    def score(self, ctx: QueryContext) -> torch.Tensor:
        return heuristics.least_confidence(ctx.probs("pool"))
