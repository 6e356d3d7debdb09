"""Right for the Right Reasons (Ross, Hughes & Doshi-Velez, IJCAI 2017), ``method=rrr``.

    L = Σ_i w_i CE(f(x_i), y_i) / Σ_i w_i  +  λ · 1/B Σ_i ‖A_i ⊙ ∂/∂x_i Σ_k log p(k | x_i)‖²

``A_i`` is the teacher's mask of irrelevant input of item ``i`` (the ``irrelevant`` annotation;
zero for items without one). The input gradient is taken with ``create_graph=True`` (double
backpropagation) from the same forward pass as the cross-entropy.

Scale of λ: Ross et al. sum both terms over the batch (their λ = 1000 for decoy MNIST). Here both
are means over the batch — their loss divided by the batch size B — so the ratio of the two terms,
and hence λ = 1000, carry over unchanged; only the loss's overall scale differs, which Adam
ignores.

λ is not scale-free: the input gradient grows as the input shrinks (8×8 digits against 28×28 MNIST), and
Ross et al. advise choosing λ so that both terms have the same order of magnitude. The default here, 10,
is that choice on 8×8 decoy digits (1000 makes the penalty ~1000× the cross-entropy there, and training
underfits); on decoy MNIST it gives the same accuracy as 1000 (``conf/method/rrr.yaml`` has the figures).
"""

from __future__ import annotations

from typing import Any

import torch

from exil.common.explain.gradients import log_prob_gradients_of
from exil.exbl.losses import rrr_penalty
from exil.exbl.penalised import PenalisedClassifier


class RRRClassifier(PenalisedClassifier):
    """:class:`~exil.common.modules.classifier.Classifier` trained with the RRR loss (module docstring).

    Args:
        l2_grads: λ, the weight of the input-gradient penalty (0 = plain cross-entropy).
        **kwargs: the Classifier's arguments.
    """

    weight_name, penalty_log = "l2_grads", "rrr_penalty"

    def __init__(self, *args: Any, l2_grads: float = 10.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.l2_grads = l2_grads

    def logits_and_penalty(self, x: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        logits = self(x)
        grads = log_prob_gradients_of(logits, x, create_graph=True)
        return logits, rrr_penalty(grads, batch["irrelevant"], batch.get("annotated")).mean()
