"""Linear learners: logistic regression on a fixed feature map, with L1 and / or L2 penalties.

    L = Σ_i w_i CE(W φ(x_i) + b, y_i) / Σ_i w_i  +  l1 · ‖W‖₁  +  l2 · ‖W‖²₂

φ is the backbone (``mlp`` with ``hidden: []`` = the raw input, ``pairwise_equal`` for the colors
problem). CAIPI's colors results depend on sparsity (an L1-penalised model can single out the
4 corner features), hence the L1 option; trained with Adam like the other modules.
"""

from __future__ import annotations

from typing import Any

import torch

from exil.common.modules.classifier import Classifier


class LinearClassifier(Classifier):
    """:class:`~exil.common.modules.classifier.Classifier` without dropout, with L1 / L2 penalties on the head."""

    def __init__(self, *args: Any, l1: float = 0.0, l2: float = 0.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.l1, self.l2 = l1, l2

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        loss = super().loss(batch)
        w = self.head.weight
        if self.l1:
            loss = loss + self.l1 * w.abs().sum()
        if self.l2:
            loss = loss + self.l2 * w.pow(2).sum()
        return loss
