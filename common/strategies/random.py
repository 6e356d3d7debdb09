"""Random sampling: the baseline every active-learning curve is compared with."""

from __future__ import annotations

import numpy as np
import torch

from exil.common.strategies.base import QueryStrategy, Selection
from exil.common.strategies.context import QueryContext


class RandomSampling(QueryStrategy):
    """``k`` candidates uniformly without replacement, drawn with ``ctx.generator``; no model output, scores NaN."""

    name = "random"

    def select(self, ctx: QueryContext, k: int) -> Selection:
        k = min(k, len(ctx))
        pick = torch.randperm(len(ctx), generator=ctx.generator)[:k].numpy()
        return Selection(ctx.candidates[pick], np.full(k, np.nan))
