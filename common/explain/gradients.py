"""Input gradients (saliency), batched and differentiable.

* :func:`log_prob_gradients` — ``∂/∂x Σ_k log p(k | x)``, the input gradient that Ross, Hughes &
  Doshi-Velez (2017, "Right for the Right Reasons", eq. 1) constrain: the log-probabilities of all
  classes summed, so the explanation does not depend on a label.
* :func:`score_gradients` — ``∂ s_c(x) / ∂x`` for a target class ``c`` (the logit, or the
  log-probability), the gradient saliency of Simonyan et al. (2014); :func:`saliency_map` is its
  channel-wise maximum of absolute values.

Samples do not interact in a forward pass (in eval mode), so the gradient of a sum over the batch
is every sample's own gradient: one backward pass explains the whole batch. With
``create_graph=True`` the result can enter a training loss (double backpropagation).
"""

from __future__ import annotations

from typing import Callable

import torch


def _input(x: torch.Tensor) -> torch.Tensor:
    return x.detach().requires_grad_(True) if not x.requires_grad else x


def log_prob_gradients(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       create_graph: bool = False) -> torch.Tensor:
    """``∂/∂x Σ_k log softmax(model(x))_k`` per sample, the shape of ``x``."""
    x = _input(x)
    return log_prob_gradients_of(model(x), x, create_graph)


def log_prob_gradients_of(logits: torch.Tensor, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """As :func:`log_prob_gradients`, from logits already computed from ``x`` (which requires grad):
    a training step reuses its forward pass for the cross-entropy and the penalty."""
    (g,) = torch.autograd.grad(torch.log_softmax(logits, dim=-1).sum(), x, create_graph=create_graph)
    return g


def score_gradients(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: torch.Tensor,
                    create_graph: bool = False, log_prob: bool = False) -> torch.Tensor:
    """``∂ s_{target_i}(x_i) / ∂x_i`` per sample; ``s`` is the logit, or the log-probability if ``log_prob``."""
    x = _input(x)
    out = model(x)
    if log_prob:
        out = torch.log_softmax(out, dim=-1)
    score = out.gather(1, target.view(-1, 1).to(out.device)).sum()
    (g,) = torch.autograd.grad(score, x, create_graph=create_graph)
    return g


def saliency_map(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Simonyan et al. (2014): ``max_channel |∂ logit_target / ∂x|``, shape (B, H, W) for images."""
    return score_gradients(model, x, target).abs().amax(dim=1)
