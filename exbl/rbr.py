"""Right for Better Reasons (Shao, Skryagin, Stammer, Schramowski & Kersting, AAAI 2021), ``method=rbr``.

RBR constrains the influence function (Koh & Liang 2017) instead of the input gradient. The
influence of perturbing a training input ``x`` on the loss at ``z_test`` is
``I_pert,loss(z, z_test) = −∇_θ L(z_test)ᵀ H⁻¹ ∇_x ∇_θ L(z)`` (Koh & Liang, §2.2); RBR penalises it on
the item itself (``z_test = z``) in the annotated irrelevant region:

    L = Σ_i w_i CE(f(x_i), y_i) / Σ_i w_i  +  λ · 1/B Σ_i ‖A_i ⊙ I_i‖²,
    I_i = ∇_x ½‖∇_θ CE(f(x_i), y_i)‖² = (∇_x ∇_θ CE_i)ᵀ ∇_θ CE_i        (= −I_pert,loss(z_i, z_i), H = I)

Choices, and why:

* ``H = I``, as the XIL typology's implementation does ("identity matrix instead of hessian"): an
  inverse-Hessian-vector product per step (LiSSA, conjugate gradients) would multiply the cost of
  a training step by its iteration count.
* ``θ`` is the classifier head (``W``, ``b`` of ``logits = W a + b``, ``a`` the head's input), where
  the per-item parameter gradient has the closed form ``∇_W CE = (p − e_y) aᵀ``, ``∇_b CE = p − e_y``,
  so ``‖∇_θ CE_i‖² = ‖p_i − e_{y_i}‖² (‖a_i‖² + 1)`` (:func:`~exil.exbl.losses.head_gradient_sq_norm`):
  one double backward per step, as RRR. Every parameter would need per-item gradients of the
  whole network (B copies of it) and a third-order graph. Koh & Liang, too, take the influence
  w.r.t. the top layer only for their Inception experiments.
* The typology's code differs: it differentiates ``Σ_j (∇_θ L_batch)_j`` (a vector of ones in place
  of ``∇_θ L(z_test)``, every parameter, the batch loss) w.r.t. the input and multiplies the result
  element-wise by the input gradient ``∂/∂x Σ_k log p_k`` before masking. We keep the influence
  function's own form above.

The penalty is squared and masked as RRR's (:func:`~exil.exbl.losses.rrr_penalty`); items without an
annotation contribute 0.
"""

from __future__ import annotations

from typing import Any

import torch

from exil.exbl.losses import head_gradient_sq_norm, rrr_penalty
from exil.exbl.penalised import PenalisedClassifier


class RBRClassifier(PenalisedClassifier):
    """:class:`~exil.common.modules.classifier.Classifier` trained with the RBR loss (module docstring).

    Args:
        l2_influence: λ, the weight of the influence penalty (0 = plain cross-entropy).
        **kwargs: the Classifier's arguments.
    """

    weight_name, penalty_log = "l2_influence", "rbr_penalty"

    def __init__(self, *args: Any, l2_influence: float = 3.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.l2_influence = l2_influence

    def logits_and_penalty(self, x: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        head_input = self.dropout(self.features(x))
        logits = self.head(head_input)
        sq_norm = head_gradient_sq_norm(head_input, torch.softmax(logits, -1), batch["y"])
        (influence,) = torch.autograd.grad(0.5 * sq_norm.sum(), x, create_graph=True)
        return logits, rrr_penalty(influence, batch["irrelevant"], batch.get("annotated")).mean()
