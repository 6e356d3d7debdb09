"""Query strategies: choose which pool items to ask the oracle about.

A strategy is one class plus one YAML file in ``conf/strategy/``. It receives a
:class:`~exil.common.strategies.context.QueryContext` (the model, the data module, the
candidate pool indices after optional subsampling, the device and a seeded
generator) and returns a :class:`Selection` of pool indices.

Most strategies are a pure *heuristic* (a function of model outputs, see
``heuristics.py``) ranked by :class:`ScoreStrategy`; set-based ones (core-set,
BADGE) implement :meth:`QueryStrategy.select` directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from exil.common.strategies.context import QueryContext


@dataclass
class Selection:
    """Chosen pool indices, in the order they were chosen, and their scores (NaN where a strategy has none)."""

    indices: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if len(np.unique(self.indices)) != len(self.indices):
            raise ValueError("a selection must not repeat a pool index")


class QueryStrategy(ABC):
    """Chooses ``k`` items from ``ctx.candidates``."""

    name: str = "strategy"

    @abstractmethod
    def select(self, ctx: QueryContext, k: int) -> Selection: ...


class ScoreStrategy(QueryStrategy):
    """Ranks candidates by a score, highest first (``torch.topk``: deterministic for a given device)."""

    @abstractmethod
    def score(self, ctx: QueryContext) -> torch.Tensor:
        """One score per candidate, higher = more useful to label, on any device."""

    def select(self, ctx: QueryContext, k: int) -> Selection:
        scores = self.score(ctx)
        k = min(k, scores.numel())
        top = torch.topk(scores, k, sorted=True).indices
        return Selection(ctx.candidates[top.cpu().numpy()], scores[top].double().cpu().numpy())
